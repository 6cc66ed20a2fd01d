-- etcd_membership: the membership plan of a running cluster, from the
-- controller, read-only. It compares the cluster's member list (and each
-- member's health) with the inventory and says, in order, what would change
-- and the quorum at every step:
--   * an inventory host that is no member joins (as a learner, promoted once
--     in sync), one at a time;
--   * a member named in `replace` is removed, then its (rebuilt or new) node
--     joins again: removal first, so 3 members with one dead stay writable;
--   * a member named in `remove` leaves (after the joins, so a cluster that
--     grows and shrinks in one run never has fewer voters than it needs);
--   * a member that is not in the inventory is never removed implicitly (a
--     typo must not delete a member): the plan fails and says how to remove it;
--   * a member whose node lost its data (wiped, rebuilt) is not restarted as
--     a new member: the plan fails and names etcd_replace.
-- Nothing is changed here: etcd_member, etcd_snapshot and the playbook act
-- on the result (`joins`, `removals`, `join`, `snapshot_from`, `lines`).
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.fs")

local M = {
   doc = "Plan an etcd cluster's membership changes (joins, removals, replacements) against the inventory; read-only.",
   args = {
      hosts = { type = "list", required = true,
         doc = "the inventory's members in order: { name, peer_url, client_url, has_data, running }" },
      remove = { type = "list", elements = "string", default = {},
         doc = "members to remove (the operator's word: never implicit)" },
      replace = { type = "list", elements = "string", default = {},
         doc = "members whose node died or was rebuilt: removed, then joined again from the inventory" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "an admin client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
   },
   examples = [[controller "membership" { etcd_membership = {
   hosts = { { name = "etcd1", peer_url = "https://10.0.0.1:2380", client_url = "https://10.0.0.1:2379",
               has_data = true, running = true } }, remove = { "etcd5" },
   ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key" }, register = "membership" }]],
}

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   for _, f in pairs(tls) do
      if not fs.try.stat(f) then
         return { no_client = f }
      end
   end
   local state, why = { health = {} }, {}
   for _, h in ipairs(args.hosts) do
      if h.running then
         local list, err = etcd.members(h.client_url, tls)
         if list then
            state.members, state.via = list, h.client_url
            break
         end
         why[#why + 1] = tostring(err)
      end
   end
   state.why = #why > 0 and table.concat(why, "; ") or nil
   for _, m in ipairs(state.members or {}) do
      local url = m.client_urls[1]
      local ok, err
      if url then
         ok, err = etcd.health(url, tls, 3)
      end
      state.health[m.id] = ok and true or tostring(err or "never started")
      local s = ok and etcd.status(url, tls)
      if s and s.is_leader then
         state.leader = m.id
      end
   end
   return state
end

local function set(list)
   local t = {}
   for _, x in ipairs(list) do
      t[x] = true
   end
   return t
end

local function by_name(list)
   local t = {}
   for _, x in ipairs(list) do
      t[x.name] = x
   end
   return t
end

local function quorum(n)
   return n // 2 + 1
end

-- The member an inventory host is: by name, else by peer URL (a member that
-- was added but never started has no name yet).
local function match(members, h)
   for _, m in ipairs(members) do
      if m.name == h.name then
         return m
      end
   end
   for _, m in ipairs(members) do
      if m.name == "" and m.peer_urls[1] == h.peer_url then
         return m
      end
   end
end

-- The plan's failure: every problem at once, nothing changed.
local function refuse(problems)
   return { failed = true, msg = "membership: nothing was changed:\n  " .. table.concat(problems, "\n  ") }
end

function M.plan(state, args)
   local hosts_by, remove, replace = {}, set(args.remove), set(args.replace)
   for _, h in ipairs(args.hosts) do
      hosts_by[h.name] = h
   end
   local problems = {}
   for name in pairs(remove) do
      if hosts_by[name] then
         problems[#problems + 1] = ("%s is named in etcd_remove but is still in the inventory's group: take it"
            .. " out of the group first (keep it in the inventory, in another group, to have its node cleaned"
            .. " up)"):format(name)
      end
   end
   for name in pairs(replace) do
      if not hosts_by[name] then
         problems[#problems + 1] = ("%s is named in etcd_replace but is not in the inventory's group: replace"
            .. " means the same name on a rebuilt or new node"):format(name)
      end
   end
   if not state.members then
      -- a first install (or a cluster that is down): no membership to plan
      if #args.remove + #args.replace > 0 then
         problems[#problems + 1] = ("the cluster does not answer (%s): members can only be removed or replaced"
            .. " through a running cluster"):format(state.no_client and ("no client certificate " .. state.no_client)
            or state.why or "no member runs")
      end
      if #problems > 0 then
         return refuse(problems)
      end
      return { changed = false, msg = "no running cluster: bootstrap",
         result = { exists = false, joins = {}, join = {}, removals = {}, remove_first = {}, remove_last = {},
            aside = {}, moves = {}, move = {}, changes = 0, lines = {} } }
   end

   local members, health = state.members, state.health
   local voters, healthy = 0, 0
   for _, m in ipairs(members) do
      if not m.is_learner then
         voters = voters + 1
         healthy = healthy + (health[m.id] == true and 1 or 0)
      end
   end
   -- removed first: dead members and replaced ones (whose name the new node
   -- takes); after the joins: live members named in etcd_remove
   local matched, joins, removals, first, aside, moves = {}, {}, {}, {}, {}, {}
   local function leave(m, why)
      local entry = { name = m.name ~= "" and m.name or m.peer_urls[1], id = m.id, learner = m.is_learner,
         dead = health[m.id] ~= true, why = why, leader = state.leader == m.id }
      table.insert((entry.dead or why == "replaced") and first or removals, entry)
   end
   for _, h in ipairs(args.hosts) do
      local m = match(members, h)
      if m then
         matched[m.id] = true
      end
      if replace[h.name] then
         if m then
            leave(m, "replaced")
         end
         joins[#joins + 1] = h.name
         aside[h.name] = h.has_data or nil
      elseif not m then
         joins[#joins + 1] = h.name
         aside[h.name] = h.has_data or nil
      elseif m.peer_urls[1] ~= h.peer_url then
         -- its address changed: a member update, then a restart on the new one
         moves[#moves + 1] = { name = h.name, id = m.id, from = m.peer_urls[1], to = h.peer_url,
            from_ip = tostring(m.peer_urls[1]):match("^%a+://%[?([^%]/]-)%]?:%d+$"), dead = health[m.id] ~= true }
      elseif m.is_learner then
         joins[#joins + 1] = h.name -- a join that was interrupted: it goes on
      elseif m.client_urls[1] and not h.has_data and health[m.id] ~= true then
         -- it ran once (it published its client URLs; a bootstrap member that
         -- never started has a name from initial-cluster but no URLs yet)
         problems[#problems + 1] = ("%s is a member, but its node has no data and etcd does not run there (wiped"
            .. " or rebuilt?): to replace it, run with -e etcd_replace=%s"):format(h.name, h.name)
      end
   end
   for _, m in ipairs(members) do
      if not matched[m.id] then
         local name = m.name ~= "" and m.name or m.peer_urls[1]
         if remove[m.name] then
            leave(m, "named in etcd_remove")
         else
            problems[#problems + 1] = ("%s (%s) is a member but not in the inventory: it is left alone. To remove"
               .. " it from the cluster: -e etcd_remove=%s; or put it back in the inventory"):format(name,
               tostring(m.peer_urls[1]), name)
         end
      end
   end

   -- the steps in order, and the quorum after each
   local lines, steps = {}, {}
   local v, ok = voters, healthy
   local function step(text)
      steps[#steps + 1] = text
      lines[#lines + 1] = ("%d. %s: %d voters, quorum %d, %d healthy"):format(#steps, text, v, quorum(math.max(v, 1)),
         ok)
      if v < 1 or ok < quorum(math.max(v, 1)) then
         problems[#problems + 1] = ("step %d (%s) leaves %d healthy of %d voters, below the quorum of %d"):format(
            #steps, text, ok, v, quorum(math.max(v, 1)))
      end
   end
   for _, r in ipairs(first) do
      v, ok = v - (r.learner and 0 or 1), ok - ((r.learner or r.dead) and 0 or 1)
      step(("remove %s (%s%s)"):format(r.name, r.why, r.dead and ", does not answer" or ""))
   end
   for _, mv in ipairs(moves) do
      -- while it moves the member is out (if it was in); then it is back
      ok = ok - (mv.dead and 0 or 1)
      step(("move %s from %s to %s (member update, restart on the new address; its certificate names both"
         .. " until the move is done)"):format(mv.name, mv.from, mv.to))
      ok = ok + 1
   end
   if #joins > 0 and ok < v then
      problems[#problems + 1] = ("%d of %d voters are unhealthy: a member joins only a healthy cluster (bring them"
         .. " back, or replace them with -e etcd_replace=NAME)"):format(v - ok, v)
   end
   for _, name in ipairs(joins) do
      v, ok = v + 1, ok + 1
      step(("add %s (%s) as a learner, start it, promote it once in sync%s"):format(name, hosts_by[name].peer_url,
         aside[name] and "; the data dir it has is moved aside first" or ""))
   end
   for _, r in ipairs(removals) do
      v, ok = v - (r.learner and 0 or 1), ok - (r.learner and 0 or 1)
      step(("remove %s (%s%s)"):format(r.name, r.why, r.leader and "; leadership moved away first" or ""))
   end
   if #problems > 0 then
      return refuse(problems)
   end

   local all_removals = {}
   for _, list in ipairs({ first, removals }) do
      for _, r in ipairs(list) do
         all_removals[#all_removals + 1] = r
      end
   end
   local snapshot_from
   for _, h in ipairs(args.hosts) do
      local m = match(members, h)
      if not snapshot_from and m and health[m.id] == true and not replace[h.name] then
         snapshot_from = h.name
      end
   end
   local head = {}
   for _, m in ipairs(members) do
      head[#head + 1] = ("%s%s%s"):format(m.name ~= "" and m.name or m.peer_urls[1],
         m.is_learner and " (learner)" or state.leader == m.id and " (leader)" or "",
         health[m.id] ~= true and " (unhealthy)" or "")
   end
   local changes = #joins + #all_removals + #moves
   local msg = ("%d members: %s; %d voters, quorum %d"):format(#members, table.concat(head, ", "), voters,
      quorum(voters))
   if changes > 0 then
      msg = msg .. "\nmembership plan:\n  0. snapshot from " .. tostring(snapshot_from) .. "\n  "
         .. table.concat(lines, "\n  ")
   end
   return { changed = false, msg = msg,
      result = { report = msg, exists = true, joins = joins, join = set(joins), removals = all_removals,
         remove_first = first, remove_last = removals, aside = aside, moves = moves, move = by_name(moves),
         changes = changes, lines = lines, snapshot_from = snapshot_from } }
end

return M
