-- etcd_member: one member of an etcd cluster, by name, as the cluster sees
-- it, changed through the cluster's API from the controller over mutual TLS:
--   state = "learner": a member (a non-voting learner when it is added), so a
--           new node can start with `initial-cluster-state: existing` and
--           catch up without touching quorum;
--   state = "voter":   a learner promoted once it is in sync with the leader
--           (etcd refuses before: the promotion is retried until `timeout`);
--   state = "absent":  removed, after leadership is moved away if it leads;
--           never the last voter.
-- The result's `initial_cluster` (name=peer URL of every member after the
-- change) is what a joining member's configuration needs.
local etcd = require("etcdrun.etcd")
local clock = require("etcdrun.clock")

local M = {
   doc = "Add (as a learner), promote or remove an etcd member through the cluster's API (mutual TLS).",
   args = {
      name = { type = "string", required = true, doc = "the member's name" },
      peer_url = { type = "string", doc = "its peer URL (required to add it)" },
      state = { type = "string", choices = { "learner", "voter", "absent" }, default = "voter",
         doc = "learner: a member (added as a learner); voter: promoted; absent: removed" },
      endpoints = { type = "list", elements = "string", required = true,
         doc = "client URLs of members to talk to (the first that answers is used)" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "an admin client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      update = { type = "boolean", default = false,
         doc = "a member whose peer URL is not peer_url (its address changed) is moved there with a member update" },
      remove_on_failure = { type = "boolean", default = false,
         doc = "state = voter: a learner that is still not in sync at the deadline (never started, never caught"
            .. " up) is removed again, so no half-joined member is left behind" },
      timeout = { type = "number", default = 60,
         doc = "seconds to wait for a learner to be promotable, or for etcd to accept a change (strict reconfig)" },
   },
   examples = [[task "join" { etcd_member = { name = "etcd4", peer_url = "https://10.0.0.4:2380", state = "learner",
   endpoints = { "https://10.0.0.1:2379" }, ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key" },
   delegate = "controller" }]],
}

local function tls_of(ctx, args)
   return { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
end

function M.gather(ctx, args)
   local tls = tls_of(ctx, args)
   local why = {}
   for _, url in ipairs(args.endpoints) do
      local list, err = etcd.members(url, tls)
      if list then
         local leader, leader_url
         for _, m in ipairs(list) do
            for _, u in ipairs(m.client_urls) do
               local s = etcd.status(u, tls)
               if s and s.is_leader then
                  leader, leader_url = m.id, u
               end
            end
            if leader then
               break
            end
         end
         return { members = list, via = url, leader = leader, leader_url = leader_url }
      end
      why[#why + 1] = tostring(err)
   end
   return nil, "etcd_member: no member answers: " .. table.concat(why, "; "), "EUNAVAILABLE"
end

-- name=peer URL of every member (one added but not started yet has no name:
-- it is `args.name` when its peer URL is args.peer_url)
local function initial_cluster(members, extra, args)
   local parts = {}
   for _, m in ipairs(members) do
      local name = m.name ~= "" and m.name or (args and m.peer_urls[1] == args.peer_url and args.name) or nil
      if name and m.peer_urls[1] then
         parts[#parts + 1] = name .. "=" .. m.peer_urls[1]
      end
   end
   if extra then
      parts[#parts + 1] = extra
   end
   table.sort(parts)
   return table.concat(parts, ",")
end

function M.plan(state, args, opts)
   local me, voters = nil, 0
   for _, m in ipairs(state.members) do
      if m.name == args.name or (args.peer_url and m.peer_urls[1] == args.peer_url) then
         me = m
      end
      voters = voters + (m.is_learner and 0 or 1)
   end
   local result = { members = #state.members, voters = voters }
   if args.state == "absent" then
      if not me then
         return { changed = false, msg = ("%s is not a member"):format(args.name), result = result }
      end
      if not me.is_learner and voters <= 1 then
         return { failed = true, msg = ("%s is the last voter: removing it would end the cluster"):format(args.name) }
      end
      local move = state.leader == me.id
      local others = {}
      for _, m in ipairs(state.members) do
         if m.id ~= me.id and not m.is_learner then
            others[#others + 1] = m
         end
      end
      result.initial_cluster = initial_cluster(others)
      return { changed = true, id = me.id, via = state.via, leader_url = state.leader_url,
         move_to = move and others[1] and others[1].id or nil,
         msg = ("would %sremove %s (%s; %d voters left)"):format(move and "move leadership away and " or "",
            args.name, me.is_learner and "a learner" or "a voter", voters - (me.is_learner and 0 or 1)),
         result = result }
   end
   if me and args.peer_url and me.peer_urls[1] ~= args.peer_url then
      if args.update then
         return { changed = true, update = me.id, via = state.via, result = result,
            msg = ("would move %s from %s to %s (member update)"):format(args.name, tostring(me.peer_urls[1]),
               args.peer_url) }
      end
      return { failed = true, msg = ("%s is a member with peer URL %s, not %s: an address change is a member update"
         .. " (update = true)"):format(args.name, tostring(me.peer_urls[1]), args.peer_url) }
   end
   if not me then
      if not args.peer_url then
         return { failed = true, msg = ("%s is not a member: peer_url is needed to add it"):format(args.name) }
      end
      result.initial_cluster = initial_cluster(state.members, args.name .. "=" .. args.peer_url)
      if args.state == "voter" and opts and opts.check then
         -- under --check the learner an earlier task would add is not there
         return { changed = true, result = result, msg = ("would promote %s once it is added and in sync")
            :format(args.name) }
      elseif args.state == "voter" then
         return { failed = true, msg = ("%s is not a member: add it as a learner and start it first (state = "
            .. "\"learner\"), then promote it"):format(args.name), result = result }
      end
      return { changed = true, add = true, via = state.via, result = result,
         msg = ("would add %s as a learner (%s)"):format(args.name, args.peer_url) }
   end
   result.initial_cluster = initial_cluster(state.members, nil, args)
   if args.state == "voter" and me.is_learner then
      return { changed = true, promote = me.id, via = state.via, result = result,
         msg = ("would promote %s to a voter"):format(args.name) }
   end
   return { changed = false, msg = ("%s is a %s"):format(args.name, me.is_learner and "learner" or "voter"),
      result = result }
end

-- etcd refuses a membership change while any voter was not connected for
-- the last 5 s ("unhealthy cluster", strict reconfiguration): just after a
-- start that is transient, so the change is retried until the deadline.
local function retrying(ctx, deadline, fn)
   while true do
      local r, err, code = fn()
      if r or not tostring(err):find("unhealthy cluster", 1, true) or clock.monotonic() >= deadline then
         return r, err, code
      end
      ctx.sleep(0.5)
   end
end

function M.apply(ctx, args, plan)
   local tls, url = tls_of(ctx, args), plan.via
   local deadline = clock.monotonic() + args.timeout
   if plan.add then
      local id, err, code = retrying(ctx, deadline, function()
         return etcd.member_add(url, tls, args.peer_url, true)
      end)
      if not id then
         return nil, ("etcd_member: adding %s: %s"):format(args.name, tostring(err)), code
      end
      return { msg = ("added %s as a learner"):format(args.name), id = id }
   elseif plan.update then
      local ok, err, code = retrying(ctx, deadline, function()
         return etcd.member_update(url, tls, plan.update, { args.peer_url })
      end)
      if not ok then
         return nil, ("etcd_member: moving %s to %s: %s"):format(args.name, args.peer_url, tostring(err)), code
      end
      return { msg = ("moved %s to %s"):format(args.name, args.peer_url) }
   elseif plan.promote then
      while true do
         local ok, perr = etcd.member_promote(url, tls, plan.promote)
         if ok then
            return { msg = ("promoted %s to a voter"):format(args.name) }
         end
         local err = tostring(perr)
         if not err:find("in sync with leader", 1, true) or clock.monotonic() >= deadline then
            local why = ("etcd_member: promoting %s: %s"):format(args.name, err)
            if args.remove_on_failure then
               local removed, rerr = etcd.member_remove(url, tls, plan.promote)
               why = why .. (removed and ("; after %d s the learner was removed from the cluster again (the next run"
                  .. " moves its node's data dir aside and tries again)"):format(math.floor(args.timeout))
                  or ("; removing the learner again failed too: " .. tostring(rerr)))
            end
            return nil, why, "EPROMOTE"
         end
         ctx.sleep(0.2)
      end
   end
   if plan.move_to then
      -- only the leader takes the request; the next voter becomes leader
      local ok, err = etcd.move_leader(plan.leader_url, tls, plan.move_to)
      if not ok then
         return nil, ("etcd_member: moving leadership away from %s: %s"):format(args.name, tostring(err)), "EMOVE"
      end
   end
   local ok, err, code = retrying(ctx, deadline, function()
      return etcd.member_remove(url, tls, plan.id)
   end)
   if not ok then
      return nil, ("etcd_member: removing %s: %s"):format(args.name, tostring(err)), code
   end
   return { msg = ("removed %s"):format(args.name) }
end

return M
