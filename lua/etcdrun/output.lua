--- What a run prints: one line per task and host, diffs, a recap in
-- Ansible's shape (so log scrapers keep working), or with --json a stream of
-- newline-delimited events (schema in docs/events.md). Every string that
-- leaves here goes through redact(): secret values become <secret>.
local cjson = require("cjson")
local runtime = require("etcdrun.core.runtime")
local diff = require("etcdrun.diff")

local M = {}

M.SCHEMA = "etcdrun.events/1"

local Out = {}
Out.__index = Out

local COLORS = { ok = "32", changed = "33", failed = "31", unreachable = "35", skipped = "36", rescued = "34" }

--- An output sink.
---@param opts {json?: boolean, verbose?: integer, diff?: boolean, stream?: file*, color?: boolean}
function M.new(opts)
   opts = opts or {}
   local stream = opts.stream or io.stdout
   -- line by line, also into a pipe or file: a log being followed (or an
   -- etcdrun killed mid-run) shows everything that already happened
   stream:setvbuf("line")
   local color = opts.color
   if color == nil then
      color = stream == io.stdout and runtime.isatty(1) and os.getenv("NO_COLOR") == nil
   end
   return setmetatable({
      json = opts.json or false,
      verbose = opts.verbose or 0,
      show_diff = opts.diff or false,
      stream = stream,
      color = color,
      secrets = {},
      started = runtime.monotonic(),
   }, Out)
end

--- Mark a value secret: from now on it is printed as <secret>.
function Out:secret(v)
   if type(v) == "string" and #v >= 4 and not self.secrets[v] then
      self.secrets[v] = true
      self._sorted = nil
   end
   return v
end

--- Replace every secret value in s (longest first, so a secret containing
-- another is hidden whole).
function Out:redact(s)
   if type(s) ~= "string" or next(self.secrets) == nil then
      return s
   end
   if not self._sorted then
      local list = {}
      for k in pairs(self.secrets) do
         list[#list + 1] = k
      end
      table.sort(list, function(a, b)
         return #a > #b
      end)
      self._sorted = list
   end
   for _, sec in ipairs(self._sorted) do
      local i = 1
      while true do
         local a, b = s:find(sec, i, true)
         if not a then
            break
         end
         s = s:sub(1, a - 1) .. "<secret>" .. s:sub(b + 1)
         i = a + 8
      end
   end
   return s
end

-- Deep copy with every string redacted (for JSON events).
function Out:redact_all(v, depth)
   depth = depth or 0
   if type(v) == "string" then
      return self:redact(v)
   elseif type(v) == "table" and depth < 8 then
      local t = {}
      for k, x in pairs(v) do
         if type(x) ~= "function" and type(x) ~= "userdata" then
            t[k] = self:redact_all(x, depth + 1)
         end
      end
      return t
   end
   return v
end

function Out:write(s)
   self.stream:write(self:redact(s))
end

function Out:paint(status, text)
   if self.color and COLORS[status] then
      return ("\27[%sm%s\27[0m"):format(COLORS[status], text)
   end
   return text
end

--- Emit one JSON event (a no-op in human mode).
function Out:event(name, fields)
   if not self.json then
      return
   end
   local e = self:redact_all(fields or {})
   e.schema = M.SCHEMA
   e.event = name
   e.time = os.time()
   self.stream:write(cjson.encode(e), "\n")
   self.stream:flush()
end

function Out:run_start(info)
   self:event("run_start", info)
end

function Out:play_start(name, hosts)
   local names = {}
   for i, h in ipairs(hosts) do
      names[i] = h.name
   end
   if self.json then
      return self:event("play_start", { play = name, hosts = names })
   end
   self:write(("\nPLAY %s [%d host%s: %s]\n"):format(name, #names, #names == 1 and "" or "s",
      table.concat(names, ", ")))
end

--- A host starts a task (JSON only: the terminal shows the result line).
function Out:task_start(kind, play, task, host)
   if self.json then
      self:event(kind .. "_start", { play = play, task = task.name, module = task.module, file = task.file,
         line = task.line, host = host })
   end
end

--- The status word of a result.
function M.status(r)
   if r.unreachable then
      return "unreachable"
   elseif r.failed and not r.ignored then
      return "failed"
   elseif r.skipped then
      return "skipped"
   elseif r.changed then
      return "changed"
   end
   return "ok"
end

local function tail(s, n)
   s = (s or ""):gsub("%s+$", "")
   local lines = {}
   for line in s:gmatch("[^\n]+") do
      lines[#lines + 1] = line
   end
   local from = math.max(1, #lines - n + 1)
   return table.concat(lines, "\n", from)
end

--- One task's result on one host.
---@param kind string "task" or "handler"
function Out:result(kind, play, task, host, r, dt)
   local status = M.status(r)
   local d = r.diff
   local diff_text
   if d and self.show_diff then
      if d.secret then
         diff_text = ("--- %s\n+++ %s\n(content hidden: secret)\n"):format(d.path or "", d.path or "")
      elseif d.before ~= nil or d.after ~= nil then
         diff_text = diff.unified(d.before, d.after, d.path)
      end
   end
   if self.json then
      return self:event(kind .. "_result", {
         play = play,
         task = task.name,
         module = task.module,
         file = task.file,
         line = task.line,
         host = host,
         status = status,
         changed = r.changed or false,
         msg = r.msg,
         duration = dt,
         diff = diff_text,
         rc = r.rc,
         stdout = self.verbose > 0 and r.stdout or nil,
         stderr = (self.verbose > 0 or status == "failed") and r.stderr or nil,
         item = r.item_label,
         report = r.report,
      })
   end
   local label = (kind == "handler" and "handler: " or "") .. task.name
   if r.item_label then
      label = label .. " (" .. tostring(r.item_label) .. ")"
   end
   local line = ("  %s %-8s %s (%.2fs)"):format(self:paint(status, ("%-11s"):format(status)), host, label, dt or 0)
   if status == "failed" and task.module then
      line = line .. " [" .. task.module .. "]"
   end
   if (status == "failed" or status == "unreachable" or self.verbose > 0) and r.msg and r.msg ~= "" then
      line = line .. ": " .. tostring(r.msg)
   end
   self:write(line .. "\n")
   if status == "failed" and r.stderr and r.stderr ~= "" and not (r.msg or ""):find(tail(r.stderr, 1), 1, true) then
      self:write("      stderr: " .. tail(r.stderr, 5):gsub("\n", "\n              ") .. "\n")
   end
   if self.verbose > 0 then
      for _, k in ipairs({ "stdout", "stderr" }) do
         if r[k] and r[k] ~= "" then
            self:write(("      %s: %s\n"):format(k, tail(r[k], self.verbose > 1 and 200 or 20):gsub("\n", "\n      ")))
         end
      end
   end
   if diff_text and diff_text ~= "" then
      self:write(diff_text:gsub("[^\n]+", "      %0"))
   end
   -- a report is what a task exists to show (a verification table): always printed
   if type(r.report) == "string" and r.report ~= "" then
      self:write(("\n" .. r.report):gsub("\n", "\n    ") .. "\n")
   end
end

--- A line of information (warnings, hints).
function Out:message(text, level)
   if self.json then
      return self:event("message", { level = level or "info", text = text })
   end
   self:write(text .. "\n")
end

--- The recap: one line per host in Ansible's shape, then the total time.
---@param order string[] host names in inventory order
---@param stats table name -> {ok, changed, unreachable, failed, skipped}
---@param info? {interrupted?: boolean} a run cut short by Ctrl-C says so
function Out:recap(order, stats, info)
   local interrupted = info and info.interrupted or false
   local dt = runtime.monotonic() - self.started
   local any_failed = false
   for _, name in ipairs(order) do
      local s = stats[name]
      if s.failed > 0 or s.unreachable > 0 then
         any_failed = true
      end
   end
   if self.json then
      return self:event("recap", { hosts = stats, order = order, duration = dt, failed = any_failed or interrupted,
         interrupted = interrupted })
   end
   self:write("\nPLAY RECAP\n")
   local width = 10
   for _, name in ipairs(order) do
      width = math.max(width, #name)
   end
   for _, name in ipairs(order) do
      local s = stats[name]
      local fmt = "%-" .. width .. "s : ok=%-4d changed=%-4d unreachable=%-4d failed=%-4d skipped=%-4d"
         .. " rescued=0    ignored=%d\n"
      self:write(fmt:format(name, s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.ignored or 0))
   end
   if interrupted then
      return self:write(("\nINTERRUPTED (Ctrl-C) after %.2f s: the rest did not run\n"):format(dt))
   end
   self:write(("\n%s in %.2f s\n"):format(any_failed and "FAILED" or "done", dt))
end

--- The end of a run cut short (JSON only, after the recap): {interrupted, exit}.
function Out:run_end(info)
   self:event("run_end", info)
end

return M
