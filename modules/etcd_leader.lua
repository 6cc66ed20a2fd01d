-- etcd_leader: leadership moved away from a member before it restarts (an
-- upgrade, a new setting): the leader hands over, so the cluster elects
-- nobody while the member is down. The new leader is a voter running the
-- oldest etcd in the cluster (then the one whose log is furthest along): in
-- a cluster half-way through a minor upgrade a leader of the new minor can
-- move the cluster version on while old members remain, and they then panic
-- on entries they cannot apply (etcd-io/etcd#12987); so a new-minor leader
-- hands over to an old member too, even when it is not the one restarting.
-- Through the cluster's API from the controller.
local etcd = require("etcdrun.etcd")
local versions = require("etcdrun.etcd_versions")

local M = {
   doc = "Move etcd's leadership away from a member (to the most caught-up voter) before it restarts.",
   args = {
      name = { type = "string", required = true, doc = "the member that must not lead" },
      endpoints = { type = "list", elements = "string", required = true, doc = "client URLs of the members" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "a client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
   },
   examples = [[task "leadership elsewhere" { etcd_leader = { name = "{{ inventory_hostname }}",
   endpoints = { "https://10.0.0.1:2379" }, ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key" },
   delegate = "controller" }]],
}

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local why = {}
   for _, url in ipairs(args.endpoints) do
      local list, err = etcd.members(url, tls)
      if list then
         local state = { members = {} }
         for i, m in ipairs(list) do
            local u = m.client_urls[1]
            local s = u and etcd.status(u, tls)
            state.members[i] = { name = m.name, id = m.id, url = u, learner = m.is_learner,
               leader = s and s.is_leader or false, raft_index = s and s.raft_index or nil,
               version = s and s.version or nil }
         end
         return state
      end
      why[#why + 1] = tostring(err)
   end
   return nil, "etcd_leader: no member answers: " .. table.concat(why, "; "), "EUNAVAILABLE"
end

-- a before b: the older etcd first, then the longer log
local function better(a, b)
   local c = versions.compare(a.version, b.version)
   if c and c ~= 0 then
      return c < 0
   end
   return (a.raft_index or 0) > (b.raft_index or 0)
end

function M.plan(state, args)
   local me, leader, best
   for _, m in ipairs(state.members) do
      leader = m.leader and m or leader
      if m.name == args.name then
         me = m
      elseif not m.learner and m.raft_index and (not best or better(m, best)) then
         best = m
      end
   end
   if not me then
      return { failed = true, msg = ("%s is not a member"):format(args.name) }
   end
   local newer = leader and best and versions.minor(leader.version) ~= versions.minor(best.version)
      and versions.compare(leader.version, best.version) == 1
   if leader ~= me and not newer then
      return { changed = false, msg = ("%s does not lead"):format(args.name) }
   end
   if not best then
      return { changed = false, msg = ("%s leads and no other voter answers: it keeps leading"):format(args.name) }
   end
   return { changed = true, leader_url = leader.url, to = best.id, to_name = best.name, from_name = leader.name,
      msg = ("would move leadership from %s to %s%s"):format(leader.name, best.name, leader ~= me
         and (" (it runs %s, %s %s: the old minor leads until the last old member is upgraded)"):format(
            tostring(leader.version), best.name, tostring(best.version)) or "") }
end

function M.apply(ctx, args, plan)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local ok, err, code = etcd.move_leader(plan.leader_url, tls, plan.to)
   if not ok then
      return nil, ("etcd_leader: moving leadership from %s to %s: %s"):format(plan.from_name, plan.to_name,
         tostring(err)), code
   end
   return { msg = ("moved leadership from %s to %s"):format(plan.from_name, plan.to_name) }
end

return M
