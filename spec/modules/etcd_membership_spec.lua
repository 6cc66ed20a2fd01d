-- etcd_membership decides from the member list and each member's health as
-- the cluster reports them, against the inventory: no cluster needed. The
-- lab scenarios (spec/membership_spec.lua) run the plans it makes.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_membership"))

local function m(name, id, ip, learner)
   return { name = name, id = id, peer_urls = { ("https://%s:2380"):format(ip) },
      client_urls = { ("https://%s:2379"):format(ip) }, is_learner = learner or false }
end

local function h(name, ip, data)
   return { name = name, peer_url = ("https://%s:2380"):format(ip), client_url = ("https://%s:2379"):format(ip),
      has_data = data ~= false, running = data ~= false }
end

-- a cluster of etcd1..n (10.0.0.i), every member healthy unless `dead` says
local function cluster(n, dead, extra)
   local s = { members = {}, health = {}, leader = "1", via = "https://10.0.0.1:2379" }
   for i = 1, n do
      s.members[i] = m("etcd" .. i, tostring(i), "10.0.0." .. i)
      s.health[tostring(i)] = (dead and dead[i]) and "connection refused" or true
   end
   for _, x in ipairs(extra or {}) do
      s.members[#s.members + 1] = x
      s.health[x.id] = "never started"
   end
   return s
end

local function inventory(from, to, wiped)
   local t = {}
   for i = from, to do
      t[#t + 1] = h("etcd" .. i, "10.0.0." .. i, not (wiped and wiped[i]))
   end
   return t
end

local function args(hosts, over)
   local a = { hosts = hosts, ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key" }
   for k, v in pairs(over or {}) do
      a[k] = v
   end
   return a
end

local function plan(state, a)
   return module.plan(mod, state, a)
end

describe("etcd_membership plan", function()
   it("has nothing to plan without a running cluster (a first install)", function()
      local p = plan({ no_client = "/p/admin.crt" }, args(inventory(1, 3, { true, true, true })))
      assert.is_false(p.changed)
      assert.is_false(p.result.exists)
      assert.are.same({}, p.result.joins)
   end)

   it("changes nothing when the inventory is the member list", function()
      local p = plan(cluster(3), args(inventory(1, 3)))
      assert.is_nil(p.failed)
      assert.are.equal(0, p.result.changes)
      assert.are.equal("3 members: etcd1 (leader), etcd2, etcd3; 3 voters, quorum 2", p.msg)
   end)

   it("grows 3 -> 5 one learner at a time, with the quorum at each step, from a snapshot", function()
      local p = plan(cluster(3), args(inventory(1, 5, { [4] = true, [5] = true })))
      assert.are.same({ "etcd4", "etcd5" }, p.result.joins)
      assert.are.equal(2, p.result.changes)
      assert.are.equal("etcd1", p.result.snapshot_from)
      assert.are.same({
         "1. add etcd4 (https://10.0.0.4:2380) as a learner, start it, promote it once in sync: 4 voters, quorum 3,"
            .. " 4 healthy",
         "2. add etcd5 (https://10.0.0.5:2380) as a learner, start it, promote it once in sync: 5 voters, quorum 3,"
            .. " 5 healthy",
      }, p.result.lines)
      assert.are.same({}, p.result.aside)
   end)

   it("moves aside the data of a node that joins but was a member of something else", function()
      local p = plan(cluster(3), args(inventory(1, 4)))
      assert.are.same({ "etcd4" }, p.result.joins)
      assert.is_true(p.result.aside.etcd4)
      assert.matches("the data dir it has is moved aside first", p.result.lines[1], 1, true)
   end)

   it("goes on with a join that was interrupted: a learner, started or not", function()
      local unstarted = m("", "9", "10.0.0.4", true)
      local p = plan(cluster(3, nil, { unstarted }), args(inventory(1, 4, { [4] = true })))
      assert.is_nil(p.failed)
      assert.are.same({ "etcd4" }, p.result.joins)
      local started = cluster(3)
      started.members[4] = m("etcd4", "9", "10.0.0.4", true)
      started.health["9"] = true
      p = plan(started, args(inventory(1, 4)))
      assert.are.same({ "etcd4" }, p.result.joins)
      assert.is_nil(p.result.aside.etcd4) -- a learner's own data is kept
   end)

   it("never removes a member implicitly: not in the inventory is a refusal that says how", function()
      local p = plan(cluster(5), args(inventory(1, 3)))
      assert.is_true(p.failed)
      assert.matches("etcd4 %(https://10.0.0.4:2380%) is a member but not in the inventory: it is left alone", p.msg)
      assert.matches("-e etcd_remove=etcd5", p.msg, 1, true)
      assert.matches("nothing was changed", p.msg, 1, true)
   end)

   it("shrinks 5 -> 3 when the operator names the members, after any joins", function()
      local p = plan(cluster(5), args(inventory(1, 3), { remove = { "etcd4", "etcd5" } }))
      assert.is_nil(p.failed)
      assert.are.same({}, p.result.remove_first)
      assert.are.equal(2, #p.result.remove_last)
      assert.are.same({
         "1. remove etcd4 (named in etcd_remove): 4 voters, quorum 3, 4 healthy",
         "2. remove etcd5 (named in etcd_remove): 3 voters, quorum 2, 3 healthy",
      }, p.result.lines)
   end)

   it("says when leadership moves away from a member that leaves", function()
      local s = cluster(4)
      s.leader = "4"
      local p = plan(s, args(inventory(1, 3), { remove = { "etcd4" } }))
      assert.matches("leadership moved away first", p.result.lines[1], 1, true)
   end)

   it("refuses a removal named in etcd_remove of a host still in the group", function()
      local p = plan(cluster(3), args(inventory(1, 3), { remove = { "etcd3" } }))
      assert.is_true(p.failed)
      assert.matches("etcd3 is named in etcd_remove but is still in the inventory's group", p.msg, 1, true)
   end)

   it("refuses a removal that would lose quorum, whatever the operator says", function()
      -- 3 members, etcd2 dead: removing the healthy etcd3 leaves 1 of 2 healthy
      local p = plan(cluster(3, { [2] = true }), args(inventory(1, 2), { remove = { "etcd3" } }))
      assert.is_true(p.failed)
      assert.matches("leaves 1 healthy of 2 voters, below the quorum of 2", p.msg, 1, true)
   end)

   it("replaces a dead member: removed first (the cluster stays writable), then joined again", function()
      local p = plan(cluster(3, { [3] = true }), args(inventory(1, 3, { [3] = true }), { replace = { "etcd3" } }))
      assert.is_nil(p.failed)
      assert.are.equal("etcd3", p.result.remove_first[1].name)
      assert.is_true(p.result.remove_first[1].dead)
      assert.are.same({ "etcd3" }, p.result.joins)
      assert.are.same({
         "1. remove etcd3 (replaced, does not answer): 2 voters, quorum 2, 2 healthy",
         "2. add etcd3 (https://10.0.0.3:2380) as a learner, start it, promote it once in sync: 3 voters, quorum 2,"
            .. " 3 healthy",
      }, p.result.lines)
   end)

   it("replaces a member whose node is gone by a new node at another address", function()
      local hosts = inventory(1, 2)
      hosts[3] = h("etcd3", "10.0.0.33", false)
      local p = plan(cluster(3, { [3] = true }), args(hosts, { replace = { "etcd3" } }))
      assert.is_nil(p.failed)
      assert.are.equal("3", p.result.remove_first[1].id)
      assert.matches("add etcd3 (https://10.0.0.33:2380)", p.result.lines[2], 1, true)
   end)

   it("names etcd_replace for a member whose node lost its data, and changes nothing", function()
      local p = plan(cluster(3, { [3] = true }), args(inventory(1, 3, { [3] = true })))
      assert.is_true(p.failed)
      assert.matches("etcd3 is a member, but its node has no data .* %-e etcd_replace=etcd3", p.msg)
   end)

   it("starts a bootstrap member that never ran (a name from initial-cluster, no client URL yet)", function()
      local s = cluster(3, { [3] = true })
      s.members[3].client_urls = {}
      local p = plan(s, args(inventory(1, 3, { [3] = true })))
      assert.is_nil(p.failed)
      assert.are.equal(0, p.result.changes)
   end)

   it("lets nobody join a cluster with an unhealthy voter", function()
      local p = plan(cluster(3, { [2] = true }), args(inventory(1, 4, { [4] = true })))
      assert.is_true(p.failed)
      assert.matches("1 of 3 voters are unhealthy: a member joins only a healthy cluster", p.msg, 1, true)
   end)

   it("moves a member whose address changed, counting it out while it moves", function()
      local hosts = inventory(1, 3)
      hosts[2] = h("etcd2", "10.0.0.22")
      local p = plan(cluster(3), args(hosts))
      assert.is_nil(p.failed)
      assert.are.same({ name = "etcd2", id = "2", from = "https://10.0.0.2:2380", to = "https://10.0.0.22:2380",
         from_ip = "10.0.0.2", dead = false }, p.result.move.etcd2)
      assert.are.same({ "1. move etcd2 from https://10.0.0.2:2380 to https://10.0.0.22:2380 (member update, restart on"
         .. " the new address; its certificate names both until the move is done): 3 voters, quorum 2, 2 healthy" },
         p.result.lines)
      -- with another member down, moving one more would leave 1 of 3
      p = plan(cluster(3, { [3] = true }), args(hosts))
      assert.is_true(p.failed)
      assert.matches("leaves 1 healthy of 3 voters, below the quorum of 2", p.msg, 1, true)
   end)

   it("refuses removals and replacements when the cluster does not answer", function()
      local p = plan({ why = "connection refused" }, args(inventory(1, 2), { remove = { "etcd3" } }))
      assert.is_true(p.failed)
      assert.matches("the cluster does not answer (connection refused)", p.msg, 1, true)
   end)
end)
