--- One task on one host: its arguments resolved for the host, when, loop,
-- retries/until, the module (or run step) through one protected call, check
-- mode's guard, changed_when/failed_when, register, notify (journaled) and
-- the result line. The runner (etcdrun.runner) decides which tasks run
-- where and when; this file runs one.
local runtime = require("etcdrun.core.runtime")
local module = require("etcdrun.module")
local output = require("etcdrun.output")
local playbook = require("etcdrun.playbook")
local sched = require("etcdrun.sched")
local template = require("etcdrun.template")
local vars = require("etcdrun.vars")
local checkguard = require("etcdrun.checkguard")
local context = require("etcdrun.context")
local journal = require("etcdrun.journal")

local M = {}

local function new_stats()
   return { ok = 0, changed = 0, unreachable = 0, failed = 0, skipped = 0, ignored = 0 }
end

local function count(stats, r)
   local st = output.status(r)
   if st == "unreachable" then
      stats.unreachable = stats.unreachable + 1
   elseif st == "failed" then
      stats.failed = stats.failed + 1
   elseif st == "skipped" then
      stats.skipped = stats.skipped + 1
   else
      stats.ok = stats.ok + 1
      if r.changed then
         stats.changed = stats.changed + 1
      end
      if r.failed and r.ignored then
         stats.ignored = stats.ignored + 1
      end
   end
end

-- Resolve a task argument for a host: functions are called with the vars
-- view, strings with {{ }} or {% %} are rendered, secrets are revealed (and
-- remembered for redaction), tables are resolved element by element.
local function resolve(rs, hs, play, task, v, x, item, spec)
   if spec and spec.type == "function" then
      return x
   end
   if type(x) == "function" then
      return resolve(rs, hs, play, task, v, x(v), item)
   elseif playbook.is_secret(x) then
      rs.out:secret(x.value)
      return x.value
   elseif type(x) == "string" and (x:find("{{", 1, true) or x:find("{%", 1, true)) then
      local plain = vars.plain(rs, hs, play.vars, item, x)
      local text, err = template.try.render(x, plain, { name = ("%s:%s"):format(task.file, task.line or "?") })
      if not text then
         error(err, 0)
      end
      return text
   elseif type(x) == "table" then
      local t = {}
      for k, e in pairs(x) do
         t[k] = resolve(rs, hs, play, task, v, e, item)
      end
      return t
   end
   return x
end

local function eval(cond, v, r)
   if type(cond) == "function" then
      return cond(v, r) and true or false
   end
   return cond and true or false
end

-- The one door user code goes through (a run function, a module, argument
-- functions, when/until/changed_when/failed_when, loop, loop_label): an error
-- becomes `nil, "what: FILE:LINE: error"` naming the task, never a traceback
-- and never a silent pass. Returns true, results... on success.
local function protect(task, what, fn, ...)
   local res = table.pack(pcall(fn, ...))
   if res[1] then
      return true, table.unpack(res, 2, res.n)
   end
   local err = res[2]
   if type(err) ~= "string" then
      local mt = getmetatable(err)
      err = mt and mt.__tostring and tostring(err) or ("(error object is a %s value)"):format(type(err))
   end
   local where = ("%s:%s"):format(task.file or "?", task.line or "?")
   if not err:find(where .. ":", 1, true) then -- unless it names the task's line already
      err = ("%s: %s"):format(where, err)
   end
   return nil, what and ("%s: %s"):format(what, err) or err
end

-- Call fn, under --check with the controller's file system read-only to it
-- (etcdrun.checkguard): a module that forgets check mode cannot write.
local function guarded_if(check, fn)
   if not check then
      return fn()
   end
   local ok, err = checkguard.run(fn)
   if not ok then
      error(err, 0)
   end
end

-- The host a task acts on: the node, or the controller when delegated.
local function target(rs, hs, task, play)
   if task.delegate == "controller" or hs.is_controller then
      return rs.controller
   end
   local h = hs.host()
   local become = task.become
   if become == nil then
      become = play.become
   end
   if become ~= nil and become ~= h.become then
      -- a view of the same connection with another become setting; connect
      -- the host itself first, so the session is stored on it, not the view
      h:connect()
      return setmetatable({ become = become }, { __index = h })
   end
   return h
end

-- Run a task's module (or run function) once on a host; returns a result.
local function run_once(rs, hs, play, task, item)
   local v = vars.view(rs, hs, play.vars, item)
   local got, tgt = protect(task, "host", target, rs, hs, task, play)
   if not got then
      return { failed = true, changed = false, msg = tgt }
   end
   if tgt ~= rs.controller then
      local ok, err, code = tgt:connect()
      if not ok then
         return { unreachable = true, failed = true, msg = err, code = code }
      end
   end
   local ctx = context.new({
      host = tgt,
      controller = rs.controller,
      -- check_mode = false: a read-only task (a command whose output later
      -- tasks use) runs for real even under --check
      check = rs.check and task.check_mode ~= false,
      diff = rs.diff,
      vars = v,
      out = rs.out,
      base = rs.dir,
      template_vars = function(source)
         return vars.plain(rs, hs, play.vars, item, source)
      end,
      hosts = function(name)
         local other = rs.hosts[name]
         return other and other.host()
      end,
      log = function(msg)
         if rs.out.verbose > 1 then
            rs.out:message(("      [%s] %s"):format(hs.name, msg))
         end
      end,
   })
   local r
   -- (the result line names the module or run already)
   local ok, err = protect(task, nil, guarded_if, ctx.check, function()
      if task.run then
         -- check mode is the runner's: a run step does not run under --check
         -- unless it declares itself read-only (check_mode = false)
         if ctx.check then
            r = { skipped = true, changed = false,
               msg = "not run in check mode (a read-only step says check_mode = false)" }
            return
         end
         local res, rerr = task.run(ctx, v)
         if res == nil and rerr then
            r = { failed = true, msg = rerr }
         else
            r = type(res) == "table" and res or { changed = false, msg = res ~= nil and tostring(res) or nil }
         end
         return
      end
      local mod = task.mod
      local args = {}
      for k, x in pairs(task.args) do
         args[k] = resolve(rs, hs, play, task, v, x, item, mod.args and mod.args[k])
      end
      local vargs, secrets = module.validate(mod, args, ("%s:%s"):format(task.file, task.line or "?"))
      if not vargs then
         r = { failed = true, msg = secrets, code = "EARGS" }
         return
      end
      for _, s in ipairs(secrets) do
         rs.out:secret(s)
      end
      if task.timeout then
         ctx.timeout = task.timeout
      end
      r = module.run(mod, ctx, vargs)
   end)
   if not ok then
      return { failed = true, changed = false, msg = err }
   end
   if task.changed_when ~= nil and not r.failed then
      local cok, res = protect(task, "changed_when", eval, task.changed_when, v, r)
      if not cok then
         r.failed, r.msg, r.raised = true, res, true
         return r
      end
      r.changed = res
   end
   if task.failed_when ~= nil then
      local fok, res = protect(task, "failed_when", eval, task.failed_when, v, r)
      r.failed = res or not fok
      if not fok then
         r.msg, r.raised = res, true
      end
   end
   return r
end

-- retries / until: run again (after delay) until the condition holds.
local function run_with_retries(rs, hs, play, task, item)
   local attempts = (task.retries or 0) + 1
   local r
   for attempt = 1, attempts do
      r = run_once(rs, hs, play, task, item)
      if r.unreachable then
         return r
      end
      local done
      if r.raised then
         -- a condition that raised is a mistake, not a state to wait out
         return r
      elseif task.until_ok ~= nil then
         local ok, res = protect(task, "until_ok", eval, task.until_ok, vars.view(rs, hs, play.vars, item), r)
         if not ok then
            r.failed, r.msg, r.attempts = true, res, attempt
            return r
         end
         done = res
         if done and r.failed and task.failed_when == nil then
            done = false
         end
      else
         done = not r.failed
      end
      if done then
         r.attempts = attempt
         return r
      end
      if attempt < attempts then
         sched.sleep(task.delay or 1)
      end
   end
   if task.until_ok ~= nil then
      r.failed = true
      r.msg = ("condition not met after %d attempt%s%s"):format(attempts, attempts == 1 and "" or "s",
         r.msg and (": " .. tostring(r.msg)) or "")
   end
   r.attempts = attempts
   return r
end

local function tags_selected(rs, task, play)
   if rs.start_skip and rs.start_skip[task] then -- before --start-at-task's task
      return false
   end
   local tags = {}
   for _, t in ipairs(play.tags) do
      tags[t] = true
   end
   for _, t in ipairs(task.tags or {}) do
      tags[t] = true
   end
   for _, t in ipairs(rs.skip_tags) do
      if tags[t] then
         return false
      end
   end
   if #rs.tags == 0 or tags.always then
      return true
   end
   for _, t in ipairs(rs.tags) do
      if tags[t] then
         return true
      end
   end
   return false
end

local function record(rs, hs, play, task, r, dt, kind)
   hs.current = nil
   count(rs.stats[hs.name], r)
   rs.out:result(kind or "task", play.name, task, hs.name, r, dt)
end

-- A host whose coroutine ended without a result (Ctrl-C, or a fault of the
-- runner itself): its task in flight is recorded as failed, so the recap,
-- the JSON and the exit status say so.
local function lost(rs, play, hs, err)
   local cur = hs.current
   hs.failed = true
   if not cur and (err == nil or runtime.interrupted()) then
      return -- it was between tasks: nothing was cut short
   end
   local msg
   if runtime.interrupted() then
      msg = "interrupted (Ctrl-C)"
   else
      msg = "internal error: " .. tostring(err)
      local short = msg:gsub("\nstack traceback:.*$", "")
      if rs.out.verbose == 0 and short ~= msg then
         -- the runtime's own stack helps a bug report, not a playbook author
         msg = short .. " (-v shows where)"
      end
   end
   local task = cur and cur.task or { name = "(runner)", file = play.file, line = play.line }
   record(rs, hs, play, task, { failed = true, changed = false, msg = msg },
      cur and runtime.monotonic() - cur.t0 or 0, cur and cur.kind)
end

-- One task on one host, with when, loop, register, notify and failure.
local function run_task(rs, hs, play, task, kind)
   if runtime.interrupted() then
      -- Ctrl-C: start nothing more (remote commands in flight are killed)
      rs.abort, rs.interrupted = true, true
   end
   if hs.failed or hs.unreachable or rs.abort then
      return
   end
   if kind ~= "handler" and not tags_selected(rs, task, play) then
      return
   end
   local t0 = runtime.monotonic()
   rs.out:task_start(kind or "task", play.name, task, hs.name)
   hs.current = { task = task, kind = kind, t0 = t0 }
   if task.when ~= nil then
      local ok, res = protect(task, "when", eval, task.when, vars.view(rs, hs, play.vars), nil)
      if not ok then
         local r = { failed = true, msg = res }
         hs.failed = true
         return record(rs, hs, play, task, r, runtime.monotonic() - t0, kind)
      end
      if not res then
         return record(rs, hs, play, task, { skipped = true, changed = false, msg = "condition false" },
            runtime.monotonic() - t0, kind)
      end
   end
   local r
   if task.loop ~= nil then
      local items = task.loop
      if type(items) == "function" then
         local ok, res = protect(task, "loop", items, vars.view(rs, hs, play.vars))
         if not ok then
            items = nil
            r = { failed = true, msg = res }
         elseif type(res) ~= "table" then
            items = nil
            r = { failed = true, msg = ("%s:%s: loop: the function returned a %s, not a list"):format(task.file,
               task.line or "?", type(res)) }
         else
            items = res
         end
      end
      if items then
         r = { changed = false, failed = false, results = {} }
         for i, item in ipairs(items) do
            local ti = runtime.monotonic()
            local ir = run_with_retries(rs, hs, play, task, item)
            local label = item
            if task.loop_label then
               local lok, res = protect(task, "loop_label", task.loop_label, item)
               if lok then
                  label = res or item
               else
                  ir.failed, ir.msg = true, res
               end
            end
            ir.item_label = type(label) == "table" and (type(label.name) == "string" and label.name or ("#" .. i))
               or tostring(label)
            r.results[i] = ir
            r.changed = r.changed or ir.changed
            if ir.unreachable then
               r.unreachable = true
            end
            if ir.failed then
               r.failed = true
               r.msg = ir.msg
            end
            if #items > 1 then
               rs.out:result(kind or "task", play.name, task, hs.name, ir, runtime.monotonic() - ti)
            end
            if ir.failed and not task.ignore_errors then
               break
            end
         end
         if #items == 1 then
            r = r.results[1]
         end
      end
   else
      r = run_with_retries(rs, hs, play, task, nil)
   end
   if r.failed and task.ignore_errors and not r.unreachable then
      r.ignored = true
   end
   if task.register then
      hs.registered[task.register] = r
   end
   if r.changed and not r.failed and r.notify ~= false and #(task.notify or {}) > 0 then
      for _, name in ipairs(task.notify) do
         hs.notified[name] = true
      end
      local key = play.name
      rs.pending[key] = rs.pending[key] or {}
      local list = {}
      for name in pairs(hs.notified) do
         list[#list + 1] = name
      end
      table.sort(list)
      rs.pending[key][hs.name] = list
      journal.save(rs)
   end
   if r.unreachable then
      hs.unreachable = true
   elseif r.failed and not r.ignored then
      hs.failed = true
      if rs.any_errors_fatal then
         rs.abort = true
      end
   end
   if not (task.loop ~= nil and r.results and #r.results > 1) then
      record(rs, hs, play, task, r, runtime.monotonic() - t0, kind)
   else
      hs.current = nil
      count(rs.stats[hs.name], r)
   end
end

M.new_stats, M.eval, M.protect, M.record, M.lost, M.run = new_stats, eval, protect, record, lost, run_task
M.tags_selected = tags_selected

return M
