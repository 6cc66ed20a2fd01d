-- etcd_defrag: the members' DB files given back the space compaction freed,
-- one member at a time, followers first and the leader last (its leadership
-- handed to the most caught-up follower first), each answering again before
-- the next; and the recovery from NOSPACE: compaction to the current
-- revision, every member defragmented, the alarm disarmed, a test write.
-- gather reads every member's status and the alarms over the gateway; plan
-- is a pure function of them (nothing when a member does not answer, there
-- is no leader or CORRUPT is raised: it says why); apply carries it out.
local etcd = require("etcdrun.etcd")
local sched = require("etcdrun.sched")
local clock = require("etcdrun.clock")

local M = {
   doc = "Defragment etcd members one at a time (leader last), compacting and disarming NOSPACE when it is raised.",
   args = {
      members = { type = "list", elements = "table", required = true, doc = "the members: {name, client_url}" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller)" },
      key = { type = "path", required = true, doc = "its key (controller)" },
      min_share = { type = "number", default = 0.1,
         doc = "defragment a member when at least this share of its DB file is free (and min_free bytes)" },
      min_free = { type = "integer", default = 1048576,
         doc = "and at least this many bytes: a small DB is not worth a defragmentation" },
      force = { type = "boolean", default = false, doc = "defragment every member whatever is free" },
      compact = { type = "boolean", default = false,
         doc = "compact to the current revision first (always when NOSPACE is raised); drops all history" },
      timeout = { type = "integer", default = 300, doc = "seconds allowed for one member's defragmentation" },
   },
   examples = [[controller "defragment" { etcd_defrag = { members = { { name = "etcd1", client_url =
   "https://10.0.0.1:2379" } }, ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key" } }]],
}

local function tls_of(ctx, args)
   return { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
end

function M.gather(ctx, args)
   local tls = tls_of(ctx, args)
   local state = { members = {} }
   for i, m in ipairs(args.members) do
      local s, err = etcd.status(m.client_url, tls)
      state.members[i] = { name = m.name, url = m.client_url, status = s, err = err }
      if s and not state.alarms then
         state.alarms = etcd.alarms(m.client_url, tls)
      end
   end
   return state
end

local function human(n)
   return n >= 1048576 and ("%.1f MiB"):format(n / 1048576) or ("%.1f KiB"):format(n / 1024)
end

function M.plan(state, args)
   local leader, ids, revision = nil, {}, 0
   for _, m in ipairs(state.members) do
      if not m.status then
         return { skipped = true, msg = ("not defragmenting: %s does not answer (%s); every member must"):format(
            m.name, tostring(m.err)) }
      end
      ids[tostring(m.status.member_id)] = m
      revision = math.max(revision, m.status.revision or 0)
   end
   for _, m in ipairs(state.members) do
      leader = leader or ids[tostring(m.status.leader)]
   end
   if not leader then
      return { skipped = true, msg = "not defragmenting: the cluster has no leader" }
   end
   local nospace = false
   for _, a in ipairs(state.alarms or {}) do
      if a.alarm == "CORRUPT" then
         return { skipped = true, msg = "not defragmenting: CORRUPT is raised (restore from a good snapshot)" }
      end
      nospace = nospace or a.alarm == "NOSPACE"
   end
   local steps, words = {}, {}
   if nospace or args.compact then
      steps[#steps + 1] = { op = "compact", revision = revision }
      words[#words + 1] = ("compact to revision %d"):format(revision)
   end
   -- followers in name order, then the leader
   local order = {}
   for _, m in ipairs(state.members) do
      if m ~= leader then
         order[#order + 1] = m
      end
   end
   table.sort(order, function(a, b) return a.name < b.name end)
   order[#order + 1] = leader
   local targets = {}
   for _, m in ipairs(order) do
      local size = m.status.db_size or 0
      local free = size - (m.status.db_size_in_use or size)
      if args.force or nospace or (free >= args.min_free and free >= args.min_share * size) then
         if m == leader and #order > 1 then
            -- the most caught-up follower takes over first
            local to = order[1]
            for _, f in ipairs(order) do
               if f ~= leader and (f.status.raft_index or 0) > (to.status.raft_index or 0) then
                  to = f
               end
            end
            steps[#steps + 1] = { op = "move_leader", from = m.url, to = tostring(to.status.member_id), name = to.name }
            words[#words + 1] = ("move leadership to %s"):format(to.name)
         end
         steps[#steps + 1] = { op = "defrag", name = m.name, url = m.url }
         targets[#targets + 1] = ("%s (%s free of %s)"):format(m.name, human(free), human(size))
         words[#words + 1] = "defragment " .. m.name
      end
   end
   if nospace then
      for _, a in ipairs(state.alarms) do
         steps[#steps + 1] = { op = "disarm", member_id = a.member_id, alarm = a.alarm }
      end
      steps[#steps + 1] = { op = "test_put" }
      words[#words + 1] = "disarm NOSPACE and write a test key"
   end
   if #steps == 0 then
      return { changed = false, msg = ("nothing to reclaim (no DB has %d%% and %s of its file free)"):format(
         math.floor(args.min_share * 100), human(args.min_free)) }
   end
   return {
      changed = true,
      steps = steps,
      msg = ("would %s%s"):format(table.concat(words, ", "),
         #targets > 0 and ("; " .. table.concat(targets, ", ")) or ""),
      result = { nospace = nospace, report = "plan: " .. table.concat(words, ", ") },
   }
end

-- until url answers its status and sees a leader (a member that has just
-- been defragmented or handed leadership over)
local function settled(url, tls, seconds)
   local stop = clock.monotonic() + seconds
   repeat
      local s = etcd.status(url, tls)
      if s and s.leader and tostring(s.leader) ~= "0" then
         return s
      end
      sched.sleep(0.1)
   until clock.monotonic() > stop
   return nil
end

function M.apply(ctx, args, plan)
   local tls = tls_of(ctx, args)
   local any = args.members[1].client_url
   local done, report = {}, {}
   for _, s in ipairs(plan.steps) do
      if s.op == "compact" then
         local _, err, code = etcd.call(any, "/v3/kv/compaction", { revision = s.revision, physical = true }, tls, 60)
         if err and not tostring(err):find("required revision has been compacted", 1, true) then
            return nil, "etcd_defrag: compaction: " .. tostring(err), code
         end
         report[#report + 1] = ("compacted to revision %d"):format(s.revision)
      elseif s.op == "move_leader" then
         local _, err, code = etcd.move_leader(s.from, tls, s.to)
         if err then
            return nil, "etcd_defrag: moving leadership: " .. tostring(err), code
         end
         settled(s.from, tls, 10)
         report[#report + 1] = "leadership moved to " .. s.name
      elseif s.op == "defrag" then
         local before = etcd.status(s.url, tls)
         local t0 = clock.monotonic()
         local _, err, code = etcd.call(s.url, "/v3/maintenance/defragment", {}, tls, args.timeout)
         if err then
            return nil, ("etcd_defrag: %s: %s"):format(s.name, tostring(err)), code
         end
         local after = settled(s.url, tls, 30)
         if not after then
            return nil, ("etcd_defrag: %s did not answer within 30 s of its defragmentation"):format(s.name),
               "ETIMEDOUT"
         end
         done[s.name] = { before = before and before.db_size, after = after.db_size,
            seconds = clock.monotonic() - t0 }
         report[#report + 1] = ("%s: %s -> %s in %.2f s"):format(s.name, human(before and before.db_size or 0),
            human(after.db_size or 0), done[s.name].seconds)
      elseif s.op == "disarm" then
         local _, err, code = etcd.call(any, "/v3/maintenance/alarm", { action = "DEACTIVATE",
            memberID = s.member_id, alarm = s.alarm }, tls)
         if err then
            return nil, "etcd_defrag: disarming " .. s.alarm .. ": " .. tostring(err), code
         end
         report[#report + 1] = "disarmed " .. s.alarm
      elseif s.op == "test_put" then
         local ok, err, code = etcd.put(any, tls, "etcdrun/defrag-check", os.date("!%Y-%m-%dT%H:%M:%SZ"))
         if not ok then
            return nil, "etcd_defrag: the test write after disarming failed: " .. tostring(err), code
         end
         etcd.call(any, "/v3/kv/deleterange", { key = etcd.b64("etcdrun/defrag-check") }, tls)
         report[#report + 1] = "a test write succeeded"
      end
   end
   local text = table.concat(report, "; ")
   return { defragmented = done, msg = text, report = text }
end

return M
