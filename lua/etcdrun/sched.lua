--- The scheduler: one coroutine per host, driven by SSH job completions.
--
-- Host code is written straight-line (`host:exec("hostname")`). Underneath,
-- every remote operation is a job on that host's libssh worker thread; a
-- coroutine that needs a result yields the job, and the loop here resumes
-- it when etcdrun.core.ssh reports the job finished. Outside a scheduled
-- coroutine (a plain script, the REPL) `await` simply blocks on the job.
local ssh = require("etcdrun.core.ssh")
local runtime = require("etcdrun.core.runtime")

local M = {}

local managed = setmetatable({}, { __mode = "k" })

local SLEEP = {} -- marker for sleep requests, which are not jobs

--- Wait for a job's result: yields inside the scheduler, blocks outside it.
-- A job is an SSH job (etcdrun.core.ssh) or any object with done(),
-- result() and wait() (a key being generated on a thread, say).
---@return any ... what job:result() returns
function M.await(job)
   local co, is_main = coroutine.running()
   if not is_main and managed[co] then
      return coroutine.yield(job)
   end
   return job:wait()
end

--- Sleep without blocking other hosts (for retries and polling).
---@param seconds number
function M.sleep(seconds)
   -- NaN never compares due and math.huge never comes: both would hang the run
   if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds == math.huge then
      error(("sched.sleep: seconds must be a finite number >= 0, got %s"):format(tostring(seconds)), 2)
   end
   local co, is_main = coroutine.running()
   if not is_main and managed[co] then
      coroutine.yield(SLEEP, seconds)
      return
   end
   ssh.wait(seconds) -- blocks up to seconds; nothing else to do meanwhile
end

local now = runtime.monotonic

--- Run functions concurrently, at most `forks` at a time.
-- Each function runs in its own coroutine; a function that raises does not
-- stop the others. Returns, in input order, { ok = true, values = {...} } or
-- { ok = false, err = message_with_traceback }.
---@param fns function[]
---@param opts? {forks?: integer}
---@return table[]
function M.run(fns, opts)
   local forks = opts and opts.forks or 50
   assert(forks >= 1, "forks must be at least 1")
   local results, waiting, sleeping, polled = {}, {}, {}, {}
   local next_i, running = 1, 0

   local function step(i, co, ...)
      local r = table.pack(coroutine.resume(co, ...))
      if coroutine.status(co) == "dead" then
         running = running - 1
         if r[1] and r[2] then
            results[i] = { ok = true, values = table.pack(table.unpack(r, 3, r.n)) }
         else
            results[i] = { ok = false, err = r[1] and r[3] or r[2] }
         end
      elseif r[2] == SLEEP then
         sleeping[#sleeping + 1] = { co = co, i = i, at = now() + (r[3] or 0) }
      elseif type(r[2]) == "userdata" and (getmetatable(r[2]) or {}).__name == "etcdrun.ssh.Job" then
         waiting[r[2]:id()] = { co = co, i = i, job = r[2] }
      elseif type(r[2]) == "userdata" then
         -- not an SSH job: nothing signals its end, so it is polled
         polled[#polled + 1] = { co = co, i = i, job = r[2] }
      else
         -- a bare coroutine.yield (or of a value that is not a job) from user
         -- code: never abandon the coroutine (a run_once waiter would wait
         -- forever): resume it with an error raised where it yielded, so the
         -- task fails through the runner's own error handling
         local what = type(r[2])
         debug.sethook(co, function()
            debug.sethook(co)
            error(("scheduler: a task yielded a %s, which is not a job"):format(what), 2)
         end, "", 1)
         sleeping[#sleeping + 1] = { co = co, i = i, at = now() }
      end
   end

   local function start(i)
      local fn = fns[i]
      local co = coroutine.create(function()
         return xpcall(fn, debug.traceback)
      end)
      managed[co] = true
      running = running + 1
      step(i, co)
   end

   while next_i <= #fns or running > 0 do
      while running < forks and next_i <= #fns do
         next_i = next_i + 1
         start(next_i - 1)
      end
      if running == 0 then
         break
      end
      -- wake sleepers whose time has come
      local t = now()
      for k = #sleeping, 1, -1 do
         local s = sleeping[k]
         if s.at <= t then
            table.remove(sleeping, k)
            step(s.i, s.co)
         end
      end
      for k = #polled, 1, -1 do
         local p = polled[k]
         if p.job:done() then
            table.remove(polled, k)
            step(p.i, p.co, p.job:result())
         end
      end
      -- the wait, from every sleeper as they are now: one woken above (or
      -- resumed from a poll) may already have gone back to sleep
      t = now()
      local timeout = 1.0
      for _, s in ipairs(sleeping) do
         timeout = math.min(timeout, s.at - t)
      end
      if #polled > 0 then
         timeout = math.min(timeout, 0.005)
      end
      if next(waiting) then
         for _, id in ipairs(ssh.wait(math.max(timeout, 0))) do
            local w = waiting[id]
            if w then
               waiting[id] = nil
               step(w.i, w.co, w.job:result())
            end
         end
      elseif #sleeping > 0 or #polled > 0 then
         ssh.wait(math.max(timeout, 0))
      end
      if runtime.interrupted() then
         error("interrupted", 0)
      end
   end
   return results
end

return M
