--- The playbook runner: plays over inventory hosts, each host's tasks in
-- order in its own coroutine (hosts in parallel), barriers and controller
-- steps between segments, serial batches, handlers (rolling ones too), the
-- handler journal, stats, Ctrl-C and the recap. One task on one host (its
-- conditions, loops, retries, check mode, changed) is etcdrun.task's.
local runtime = require("etcdrun.core.runtime")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local output = require("etcdrun.output")
local playbook = require("etcdrun.playbook")
local sched = require("etcdrun.sched")
local vars = require("etcdrun.vars")
local fs = require("etcdrun.core.fs")
local journal = require("etcdrun.journal")
local task_runner = require("etcdrun.task")

local M = {}

local new_stats, eval, protect = task_runner.new_stats, task_runner.eval, task_runner.protect
local record, lost, run_task = task_runner.record, task_runner.lost, task_runner.run
local tags_selected = task_runner.tags_selected

-- Run fn(hs) for several hosts at once, in the scheduler.
local function on_hosts(rs, play, hosts, fn)
   local tasks = {}
   for i, hs in ipairs(hosts) do
      tasks[i] = function()
         fn(hs)
      end
   end
   for i, res in ipairs(sched.run(tasks, { forks = rs.forks })) do
      if not res.ok then
         lost(rs, play, hosts[i], res.err)
      end
   end
end

-- A rolling handler (serial = N): N hosts at a time, in the handler's
-- `order` (a function of the host names and the variables), each batch
-- between two runs of its `gate` task (a health check, say), its `before`
-- task (if any) after the first gate; the first
-- failure stops the roll. Returns the hosts it did not reach, whose
-- notification stays pending (journaled) so the next run finishes the roll.
local function run_rolling(rs, play, handler, targets)
   local by_name, names = {}, {}
   for i, hs in ipairs(targets) do
      by_name[hs.name], names[i] = hs, hs.name
   end
   if handler.order then
      local v = vars.view(rs, targets[1], play.vars)
      local ok, ordered = protect(handler, "order", handler.order, names, v)
      local seen, valid = {}, ok and type(ordered) == "table" and #ordered == #names
      for _, n in ipairs(valid and ordered or {}) do
         valid = valid and by_name[n] ~= nil and not seen[n]
         seen[n] = true
      end
      if not valid then
         local msg = ok and ("%s:%s: order must return the same host names, reordered"):format(handler.file,
            handler.line or "?") or ordered
         for _, hs in ipairs(targets) do
            record(rs, hs, play, handler, { failed = true, changed = false, msg = msg }, 0, "handler")
            hs.failed = true
         end
         return {}
      end
      names = ordered
   end
   local left = {}
   local stopped
   for first = 1, #names, handler.serial do
      local group = {}
      for i = first, math.min(first + handler.serial - 1, #names) do
         group[#group + 1] = by_name[names[i]]
      end
      if stopped or rs.abort or runtime.interrupted() then
         for _, hs in ipairs(group) do
            left[hs] = true
         end
      else
         local function step(task, kind)
            on_hosts(rs, play, group, function(hs)
               local was_failed = hs.failed
               hs.failed = false
               run_task(rs, hs, play, task, kind)
               stopped = stopped or hs.failed
               hs.failed = hs.failed or was_failed
            end)
         end
         -- a host the handler's `when` skips is not gated: nothing restarts
         local gated = {}
         for _, hs in ipairs(group) do
            local ok, yes = true, true
            if handler.when ~= nil then
               ok, yes = protect(handler, "when", eval, handler.when, vars.view(rs, hs, play.vars))
            end
            if not ok or yes then
               gated[#gated + 1] = hs
            end
         end
         if handler.gate and #gated > 0 then
            local all = group
            group = gated
            step(handler.gate, "handler")
            group = all
         end
         if handler.before and not stopped and #gated > 0 then
            local all = group
            group = gated
            step(handler.before, "handler")
            group = all
         end
         if stopped then
            for _, hs in ipairs(group) do
               left[hs] = true
            end
         else
            step(handler, "handler")
            if handler.gate and not stopped and #gated > 0 then
               group = gated
               step(handler.gate, "handler")
            end
         end
      end
   end
   if stopped then
      local names_left = {}
      for _, n in ipairs(names) do
         if left[by_name[n]] then
            names_left[#names_left + 1] = n
         end
      end
      if #names_left > 0 then
         rs.out:message(("  handler '%s' stopped rolling; not yet run on %s (pending for the next run)"):format(
            handler.name, table.concat(names_left, ", ")), "warning")
      end
   end
   return left
end

-- Handlers notified on these hosts, in the order the play defines them.
-- Hosts that failed after notifying still run them: a changed config is
-- never left without its restart.
local function run_handlers(rs, play, batch)
   local keep = {} -- host -> handler names still pending after a stopped roll
   for _, handler in ipairs(play.handlers) do
      local targets = {}
      for _, hs in ipairs(batch) do
         local hit = hs.notified[handler.name]
         for _, l in ipairs(handler.listen) do
            hit = hit or hs.notified[l]
         end
         if hit and not hs.unreachable then
            targets[#targets + 1] = hs
         end
      end
      if #targets > 0 and handler.serial then
         for hs in pairs(run_rolling(rs, play, handler, targets)) do
            keep[hs] = keep[hs] or {}
            table.insert(keep[hs], handler.name)
         end
      elseif #targets > 0 then
         local tasks = {}
         for i, hs in ipairs(targets) do
            tasks[i] = function()
               local was_failed = hs.failed
               hs.failed = false
               local abort = rs.abort
               rs.abort = false
               run_task(rs, hs, play, handler, "handler")
               rs.abort = abort or rs.abort
               hs.failed = hs.failed or was_failed
            end
         end
         for i, res in ipairs(sched.run(tasks, { forks = rs.forks })) do
            if not res.ok then
               lost(rs, play, targets[i], res.err)
            end
         end
      end
   end
   for _, hs in ipairs(batch) do
      hs.notified = {}
      if rs.pending[play.name] then
         rs.pending[play.name][hs.name] = nil
         if next(rs.pending[play.name]) == nil then
            rs.pending[play.name] = nil
         end
      end
      if keep[hs] then
         rs.pending[play.name] = rs.pending[play.name] or {}
         rs.pending[play.name][hs.name] = keep[hs]
      end
   end
   journal.save(rs)
end

-- A task that runs once, on the controller, between segments.
local function run_controller_step(rs, play, task, batch)
   if not tags_selected(rs, task, play) or rs.abort then
      return
   end
   local cs = rs.controller_state
   cs.registered = {}
   -- the controller sees the play's first live host's registered values
   for _, hs in ipairs(batch) do
      if not hs.failed and not hs.unreachable then
         for k, x in pairs(hs.registered) do
            cs.registered[k] = x
         end
         break
      end
   end
   local result
   local res = sched.run({
      function()
         local t0 = runtime.monotonic()
         run_task(rs, cs, play, task)
         result = cs.registered[task.register or ""]
         if cs.failed then
            rs.abort = true
         end
         return runtime.monotonic() - t0
      end,
   })
   if not res[1].ok then
      lost(rs, play, cs, res[1].err)
      rs.abort = true
   end
   if task.register and result then
      for _, hs in ipairs(batch) do
         hs.registered[task.register] = result
      end
   end
   cs.failed = false
end

local function batches(hosts, serial)
   if not serial then
      return { hosts }
   end
   local size = serial
   if type(serial) == "string" then
      size = math.max(1, math.floor(#hosts * tonumber(serial:match("^(%d+)")) / 100))
   end
   local out = {}
   for i = 1, #hosts, size do
      local b = {}
      for j = i, math.min(#hosts, i + size - 1) do
         b[#b + 1] = hosts[j]
      end
      out[#out + 1] = b
   end
   return out
end

local function run_batch(rs, play, batch)
   rs.once_done, rs.once_result = {}, {}
   local segment = {}
   local function flush_segment()
      if #segment == 0 then
         return
      end
      local steps = segment
      segment = {}
      local tasks = {}
      for i, hs in ipairs(batch) do
         tasks[i] = function()
            for _, task in ipairs(steps) do
               if not task.run_once then
                  run_task(rs, hs, play, task)
               elseif hs == batch[1] then
                  -- the batch's first host runs it; the others take its result
                  -- (and are released even if it dies: no host waits forever)
                  local ok, err = pcall(run_task, rs, hs, play, task)
                  rs.once_result[task] = hs.registered[task.register or ""] or false
                  rs.once_done[task] = true
                  if not ok then
                     error(err, 0)
                  end
               else
                  while not rs.once_done[task] do
                     sched.sleep(0.01)
                  end
                  if task.register and rs.once_result[task] then
                     hs.registered[task.register] = rs.once_result[task]
                  end
               end
            end
         end
      end
      for i, res in ipairs(sched.run(tasks, { forks = rs.forks })) do
         if not res.ok then
            lost(rs, play, batch[i], res.err)
         end
      end
   end
   for _, step in ipairs(play.steps) do
      if step.kind == "barrier" then
         flush_segment()
      elseif step.kind == "flush" then
         flush_segment()
         run_handlers(rs, play, batch)
      elseif step.barrier then
         flush_segment()
         run_controller_step(rs, play, step, batch)
      else
         segment[#segment + 1] = step
      end
      if rs.abort then
         break
      end
   end
   flush_segment()
   run_handlers(rs, play, batch)
end

local function host_state(rs, spec)
   local hs = rs.hosts[spec.name]
   if hs then
      return hs
   end
   local obj
   hs = {
      name = spec.name,
      spec = spec,
      vars = spec.vars or {},
      registered = {},
      notified = {},
   }
   hs.host = function()
      if not obj then
         -- ansible_connection=local: the controller stands in for the node
         obj = spec.connection == "local" and localhost.new(spec.name, rs.conn) or host.new(spec, rs.conn)
         obj.vars = spec.vars
      end
      return obj
   end
   hs.close = function()
      if obj then
         obj:close()
      end
   end
   rs.hosts[spec.name] = hs
   rs.order[#rs.order + 1] = spec.name
   rs.stats[spec.name] = new_stats()
   return hs
end

-- The exit status of a run cut short by Ctrl-C (128 + SIGINT, as a shell says).
local INTERRUPTED = 130

-- The recap, the hosts' sessions closed (a command still running on a node
-- is killed), and the exit status: 0 ok, 1 a host failed, 3 a host was
-- unreachable, 130 interrupted.
local function finish(rs)
   rs.finished = true
   local out = rs.out
   local order = {}
   for _, name in ipairs(rs.order) do
      order[#order + 1] = name
   end
   if rs.used_controller then
      table.insert(order, 1, "controller")
   end
   if rs.interrupted and next(rs.pending) then
      out:message("  interrupted: the handlers notified so far are kept and run on the next run", "warning")
   end
   out:recap(order, rs.stats, { interrupted = rs.interrupted })
   for _, name in ipairs(rs.order) do
      rs.hosts[name].close()
   end
   local code = rs.failed_run and 1 or 0
   for _, name in ipairs(order) do
      local s = rs.stats[name]
      if s.unreachable > 0 then
         code = 3
      elseif s.failed > 0 and code == 0 then
         code = 1
      end
   end
   if rs.interrupted then
      code = INTERRUPTED
      out:run_end({ interrupted = true, exit = code })
   end
   return code
end

local function run_plays(pb, inv, opts, state)
   local out = opts.out or output.new({ json = opts.json, verbose = opts.verbose, diff = opts.diff })
   if opts.conn and opts.conn.become_pass then
      out:secret(opts.conn.become_pass)
   end
   if opts.conn and opts.conn.passphrase then
      out:secret(opts.conn.passphrase)
   end
   local rs = {
      out = out,
      check = opts.check or false,
      diff = opts.diff or false,
      forks = opts.forks or 50,
      tags = opts.tags or {},
      skip_tags = opts.skip_tags or {},
      start_skip = opts.start_skip, -- steps before --start-at-task's
      extra = opts.extra or {},
      conn = opts.conn or {},
      dir = pb.dir,
      hosts = {},
      order = {},
      stats = {},
      groups = {},
      controller = localhost.new("controller", opts.conn),
      once_done = {},
      once_result = {},
      playbook_dir = pb.dir and runtime.abspath(pb.dir) or nil,
      inventory_file = inv.name and fs.stat(inv.name) and runtime.abspath(inv.name) or nil,
   }
   -- per playbook and inventory: another cluster's pending restarts (the same
   -- host names in another inventory) are never replayed on this one
   rs.journal_path = opts.journal ~= false and journal.path(pb.file, rs.inventory_file or inv.name) or nil
   rs.inventory_dir = rs.inventory_file and rs.inventory_file:match("^(.*)/[^/]*$")
   for _, g in ipairs(inv:groups()) do
      local names = {}
      for i, h in ipairs(g.hosts or {}) do
         names[i] = type(h) == "table" and h.name or h
      end
      rs.groups[g.name] = names
   end
   for k, v in pairs(rs.extra) do
      if playbook.is_secret(v) then
         out:secret(v.value)
      end
      rs.extra[k] = v
   end
   -- secret() values anywhere in the inventory and the plays' vars (nested
   -- ones too) are hidden from the start, whether or not a task reads them
   for _, spec in ipairs(inv:hosts("all") or {}) do
      out:learn(spec.vars)
   end
   for _, play in ipairs(pb.plays) do
      out:learn(play.vars)
   end
   rs.pending = rs.journal_path and journal.load(rs.journal_path) or {}
   rs.controller_state = {
      name = "controller", vars = {}, registered = {}, notified = {}, is_controller = true,
      host = function()
         return rs.controller
      end,
   }
   rs.stats.controller = new_stats()
   state.rs = rs
   out:run_start({ playbook = pb.file, check = rs.check, diff = rs.diff })
   rs.used_controller = false
   for _, play in ipairs(pb.plays) do
      local specs, err = inv:hosts(play.hosts, opts.limit)
      if not specs then
         out:message(("play '%s': %s"):format(play.name, err), "error")
         rs.failed_run = true
         break
      end
      if #specs == 0 and play.optional then
         goto next_play
      end
      local hosts = {}
      for i, spec in ipairs(specs) do
         hosts[i] = host_state(rs, spec)
      end
      rs.play_hosts = {}
      for i, hs in ipairs(hosts) do
         rs.play_hosts[i] = hs.name
      end
      rs.any_errors_fatal = play.any_errors_fatal
      rs.play_defaults = play.defaults
      rs.play = play
      out:play_start(play.name, hosts)
      -- handlers a killed earlier run left pending: run them this time
      local handler_names = {}
      for _, hd in ipairs(play.handlers) do
         handler_names[hd.name] = true
         for _, l in ipairs(hd.listen) do
            handler_names[l] = true
         end
      end
      for _, hs in ipairs(hosts) do
         for _, name in ipairs((rs.pending[play.name] or {})[hs.name] or {}) do
            if handler_names[name] and not hs.notified[name] then
               hs.notified[name] = true
               out:message(("  %s: handler '%s' is pending from an interrupted run: it will run"):format(hs.name,
                  name), "warning")
            end
         end
      end
      if #hosts == 0 then
         out:message("  no hosts matched", "warning")
      end
      for _, step in ipairs(play.steps) do
         rs.used_controller = rs.used_controller or step.barrier == true
      end
      local failed_total = 0
      for _, batch in ipairs(batches(hosts, play.serial)) do
         local live = {}
         for _, hs in ipairs(batch) do
            if not hs.failed and not hs.unreachable then
               live[#live + 1] = hs
            end
         end
         if #live > 0 then
            run_batch(rs, play, live)
         end
         for _, hs in ipairs(batch) do
            if hs.failed or hs.unreachable then
               failed_total = failed_total + 1
            end
         end
         if rs.abort then
            break
         end
         if play.max_fail_percentage ~= nil and failed_total * 100 / #hosts > play.max_fail_percentage then
            out:message(("  stopping play '%s': %d of %d hosts failed (max_fail_percentage %s)"):format(play.name,
               failed_total, #hosts, tostring(play.max_fail_percentage)), "error")
            rs.abort = true
            break
         end
      end
      if rs.abort then
         break
      end
      ::next_play::
   end
   return finish(rs)
end

--- Run a loaded playbook.
---@param pb table from etcdrun.playbook.load
---@param inv table an etcdrun.inventory
---@param opts table {check, diff, forks, limit, tags, skip_tags, start_skip, extra, conn, json, verbose}
---@return integer exit code: 0 ok, 1 a host failed, 3 a host was unreachable, 130 interrupted
function M.run(pb, inv, opts)
   local state = {}
   -- the message handler runs Lua: a Ctrl-C hook not fired yet fires in it, inside this call
   local ok, res = xpcall(run_plays, function(e)
      return runtime.interrupted() and "interrupted" or debug.traceback(tostring(e), 2)
   end, pb, inv, opts, state)
   if ok then
      return res
   end
   local rs = state.rs
   if not rs then
      if runtime.interrupted() then
         io.stderr:write("etcdrun: interrupted\n")
         return INTERRUPTED
      end
      error(res, 0)
   end
   if rs.finished then
      return runtime.interrupted() and INTERRUPTED or 1
   end
   if runtime.interrupted() then
      rs.interrupted = true
   else
      -- a fault of the runner itself: said, and never a success
      rs.out:message("internal error: " .. tostring(res), "error")
      rs.failed_run = true
   end
   if rs.play then
      for _, name in ipairs(rs.order) do
         lost(rs, rs.play, rs.hosts[name], nil)
      end
      lost(rs, rs.play, rs.controller_state, nil)
   end
   return finish(rs)
end

return M
