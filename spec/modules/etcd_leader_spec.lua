-- etcd_leader decides from the member list and each member's status.
local plancases = require("support.plancases")

local ARGS = { name = "etcd1", endpoints = { "https://a:2379" }, ca = "/p/ca.crt", cert = "/p/admin.crt",
   key = "/p/admin.key" }

local function members(leader, idx, vers)
   local t = {}
   for i = 1, 3 do
      t[i] = { name = "etcd" .. i, id = tostring(i), url = "https://" .. i .. ":2379", learner = false,
         leader = leader == i, raft_index = idx and idx[i] or 100, version = vers and vers[i] or "3.4.23" }
   end
   return { members = t }
end

describe("etcd_leader plan", function()
   plancases.run(it, "etcd_leader", {
      { name = "leaves a follower alone", state = members(2), args = ARGS,
         want = { changed = false, msg = "etcd1 does not lead" } },
      { name = "hands a leader's role to the most caught-up voter", state = members(1, { 100, 90, 99 }), args = ARGS,
         want = { changed = true, to = "3", leader_url = "https://1:2379",
            msg = "would move leadership from etcd1 to etcd3" } },
      { name = "hands over to a member of the old minor half-way through an upgrade",
         state = members(1, { 100, 100, 90 }, { "3.4.23", "3.5.16", "3.4.23" }), args = ARGS,
         want = { changed = true, to = "3", msg = "would move leadership from etcd1 to etcd3" } },
      { name = "takes leadership from a new-minor leader while old members remain, whoever restarts",
         state = members(2, nil, { "3.4.23", "3.5.16", "3.4.23" }), args = ARGS,
         want = { changed = true, to = "3", leader_url = "https://2:2379", msg = "would move leadership from etcd2"
            .. " to etcd3 (it runs 3.5.16, etcd3 3.4.23: the old minor leads until the last old member is"
            .. " upgraded)" } },
      { name = "keeps a lone leader", state = { members = { members(1).members[1] } }, args = ARGS,
         want = { changed = false, msg = "etcd1 leads and no other voter answers: it keeps leading" } },
      { name = "fails for a name that is no member", state = members(1), args = plancases.merge(ARGS, { name = "x" }),
         want = { failed = true, msg = "x is not a member" } },
   })
end)
