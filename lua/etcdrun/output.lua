--- What a run prints: one line per task and host, diffs, a recap in
-- Ansible's shape (so log scrapers keep working), or with --json a stream of
-- newline-delimited events (schema in docs/events.md). Every string that
-- leaves here goes through Out:redact (below): secret values become <secret>.
local cjson = require("cjson")
local runtime = require("etcdrun.core.runtime")
local codec = require("etcdrun.core.codec")
local diff = require("etcdrun.diff")
local http = require("etcdrun.http")
local playbook = require("etcdrun.playbook")

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
      secrets = {}, -- value -> true
      values = {}, -- the secret values, in the order marked (ctx.secrets)
      needles = {}, -- text -> true: every form of a secret that is hidden
      short = {}, -- secrets shorter than SHORT: hidden as whole words in values
      started = runtime.monotonic(),
   }, Out)
end

-- Redaction --------------------------------------------------------------------
--
-- One function, Out:redact, is what every channel goes through: result lines,
-- -v/-vv output, diffs, JSON events (every string field), messages and
-- errors, the recap, and the REPL. It hides:
--   * every value marked secret (secret(), ctx.secret, arguments a module
--     declares secret, the become password), in each form it takes on the
--     way out: as is, trimmed, each line of a multi-line secret that is at
--     least MIN_LINE characters long once trimmed (indented, prefixed with
--     `+`, tailed), escaped as debug and Lua's %q show strings (\n, \", \\),
--     JSON-encoded as cjson does (\/ included), and base64-encoded;
--   * any PEM private key block (-----BEGIN ... PRIVATE KEY----- to its END
--     line, escaped or not, also cut at either end), whatever its source; a
--     block seen once is remembered as a secret, so its lines are hidden
--     later when they appear without the markers;
--   * credentials in URLs (scheme://user:pass@host -> scheme://***@host).
-- A secret shorter than SHORT characters is hidden only in values (messages,
-- command output, diffs, errors, registered data, JSON fields other than
-- the event's own host/task/play/status names) and only where it stands as a
-- whole word: a 1-character secret must not blank every "a" in the output,
-- nor the status words, host names and counts etcdrun prints itself.
local MIN_LINE = 6
local SHORT = 4
local MARK = "<secret>"

M.MIN_LINE, M.SHORT = MIN_LINE, SHORT

local ESC = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }

-- The forms a string takes when a writer escapes it: debug's and Python's
-- quoting, Lua's %q (the REPL), cjson.
local function escaped_forms(s)
   local forms = {}
   forms[#forms + 1] = s:gsub('[%c"\\]', function(ch)
      return ESC[ch] or ("\\x%02x"):format(ch:byte())
   end)
   forms[#forms + 1] = (("%q"):format(s):sub(2, -2):gsub("\\\n", "\\n"))
   local ok, j = pcall(cjson.encode, s)
   if ok then
      forms[#forms + 1] = j:sub(2, -2)
   end
   return forms
end

-- The base64 text that encodes s wherever s sits in the encoded data (three
-- alignments), without the characters that depend on the bytes around it.
local function base64_forms(s)
   local forms = {}
   for k = 0, 2 do
      local e = codec.base64(("\0"):rep(k) .. s)
      local first = k == 0 and 1 or 5
      local last = (k + #s) % 3 == 0 and #e or #e - 4
      local mid = e:sub(first, last)
      if #mid >= 8 then
         forms[#forms + 1] = mid
      end
   end
   return forms
end

--- Mark a value secret: from now on it is printed as <secret> (a number is
-- hidden as its decimal text; a secret() value as its content).
function Out:secret(v)
   local s = v
   if playbook.is_secret(v) then
      s = v.value
   end
   if math.type(s) then
      s = tostring(s)
   end
   if type(s) ~= "string" or s == "" or self.secrets[s] then
      return v
   end
   self.secrets[s] = true
   self.values[#self.values + 1] = s
   local trimmed = s:match("^%s*(.-)%s*$")
   if #trimmed < SHORT and not trimmed:find("\n", 1, true) then
      if trimmed ~= "" then
         self.short[trimmed] = true
      end
      return v
   end
   local needles = self.needles
   local function add(x)
      if #x >= SHORT then
         needles[x] = true
      end
   end
   local bases = { s, trimmed, (s:gsub("\n+$", "")) }
   for line in (s .. "\n"):gmatch("([^\n]*)\n") do
      line = line:match("^%s*(.-)%s*$")
      if #line >= MIN_LINE then
         bases[#bases + 1] = line
      end
   end
   for _, b in ipairs(bases) do
      add(b)
      for _, f in ipairs(escaped_forms(b)) do
         add(f)
      end
   end
   for _, f in ipairs(base64_forms(trimmed)) do
      add(f)
   end
   self._needles = nil
   return v
end

--- Mark every secret() value in a table (nested tables included) secret.
function Out:learn(t, depth)
   depth = depth or 0
   if playbook.is_secret(t) then
      self:secret(t)
   elseif type(t) == "table" and depth < 8 then
      for _, x in pairs(t) do
         self:learn(x, depth + 1)
      end
   end
end

local PEM_BEGIN = "%-%-%-%-%-BEGIN [%u%d ]*PRIVATE KEY%-%-%-%-%-"
local PEM_END = "%-%-%-%-%-END [%u%d ]*PRIVATE KEY%-%-%-%-%-"

-- Spans {a, b} of private key blocks in s; complete blocks are returned as
-- text too, to be remembered.
local function pem_spans(s, spans, found)
   local i = 1
   while true do
      local a, b = s:find(PEM_BEGIN, i)
      local ea, eb = s:find(PEM_END, i)
      if not a and not ea then
         return
      end
      if a and (not ea or a < ea) then
         -- a BEGIN: to its END, or to the end of the text when cut there
         local _, e2 = s:find(PEM_END, b + 1)
         spans[#spans + 1] = { a, e2 or #s }
         if e2 then
            found[#found + 1] = s:sub(a, e2)
         end
         i = (e2 or #s) + 1
      else
         -- an END without its BEGIN (the head was cut): from the start
         spans[#spans + 1] = { i, eb }
         i = eb + 1
      end
   end
end

local function is_word(c)
   return c ~= "" and c:match("[%w_]") ~= nil
end

-- Spans of a short secret standing as a whole word in s (a '.' between
-- digits belongs to a number: "0.00" does not hold the word "0").
local function word_spans(s, w, spans)
   local i = 1
   while true do
      local a, b = s:find(w, i, true)
      if not a then
         return
      end
      local p, n = s:sub(a - 1, a - 1), s:sub(b + 1, b + 1)
      local ok = not is_word(p) and not is_word(n)
      if ok and p == "." and s:sub(a - 2, a - 2):match("%d") and w:match("^%d") then
         ok = false
      end
      if ok and n == "." and s:sub(b + 2, b + 2):match("%d") and w:match("%d$") then
         ok = false
      end
      if ok then
         spans[#spans + 1] = { a, b }
      end
      i = a + 1
   end
end

--- Redact a string: every secret form above becomes <secret>. With
-- `frame` (etcdrun's own words: status, host and task names, counts), short
-- secrets are left alone. A string already redacted comes back unchanged.
---@param s any
---@param frame? boolean
---@return any
function Out:redact(s, frame)
   if type(s) ~= "string" or s == "" then
      return s
   end
   s = http.redact_urls(s)
   local spans, found = {}, {}
   pem_spans(s, spans, found)
   for _, block in ipairs(found) do
      self:secret(block)
   end
   if not self._needles then
      local list = {}
      for k in pairs(self.needles) do
         list[#list + 1] = k
      end
      self._needles = list
   end
   for _, needle in ipairs(self._needles) do
      local i = 1
      while true do
         local a, b = s:find(needle, i, true)
         if not a then
            break
         end
         spans[#spans + 1] = { a, b }
         i = b + 1
      end
   end
   if not frame then
      for w in pairs(self.short) do
         word_spans(s, w, spans)
      end
   end
   if #spans == 0 then
      return s
   end
   -- markers already in the text stay as they are (redacting twice is a no-op)
   local marks = {}
   local i = 1
   while true do
      local a, b = s:find(MARK, i, true)
      if not a then
         break
      end
      marks[#marks + 1] = { a, b }
      i = b + 1
   end
   table.sort(spans, function(x, y)
      return x[1] < y[1] or (x[1] == y[1] and x[2] > y[2])
   end)
   local parts, at = {}, 1
   for _, sp in ipairs(spans) do
      local inside = false
      for _, m in ipairs(marks) do
         if sp[1] >= m[1] and sp[2] <= m[2] then
            inside = true
            break
         end
      end
      if not inside and sp[2] >= at then
         if sp[1] >= at then
            parts[#parts + 1] = s:sub(at, sp[1] - 1)
            parts[#parts + 1] = MARK
         end
         at = sp[2] + 1
      end
   end
   parts[#parts + 1] = s:sub(at)
   return table.concat(parts)
end

--- Whether s holds a secret (the same rules as redact).
function Out:contains_secret(s)
   return type(s) == "string" and self:redact(s) ~= s
end

-- Fields of an event that name things etcdrun prints itself (short secrets
-- are not looked for there; long ones are).
local FRAME = { event = true, schema = true, host = true, play = true, task = true, module = true, file = true,
   status = true, order = true, hosts = true }

-- Deep copy with every string redacted (for JSON events and results).
function Out:redact_all(v, depth, frame)
   depth = depth or 0
   if type(v) == "string" then
      return self:redact(v, frame)
   elseif playbook.is_secret(v) then
      self:secret(v)
      return MARK
   elseif type(v) == "table" and depth < 8 then
      local t = {}
      for k, x in pairs(v) do
         if type(x) ~= "function" and type(x) ~= "userdata" then
            t[k] = self:redact_all(x, depth + 1, frame or (depth == 0 and FRAME[k]))
         end
      end
      return t
   end
   return v
end

-- Write etcdrun's own text (values in it are redacted already): long
-- secrets, keys and URL credentials are hidden once more, short ones not.
function Out:write(s)
   self.stream:write(self:redact(s, true))
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

-- result fields a task_result event carries on its own, or never
local RESULT_FRAME = { changed = true, failed = true, skipped = true, msg = true, diff = true, rc = true, stdout = true,
   stderr = true, item_label = true, report = true, unreachable = true, ignored = true, notify = true,
   stdout_lines = true, stderr_lines = true, secrets = true }

--- One task's result on one host. Every value of r shown is redacted here
-- first (whole, before it is tailed, indented or diffed); the line around
-- it is redacted again by write.
---@param kind string "task" or "handler"
function Out:result(kind, play, task, host, r, dt)
   local status = M.status(r)
   local function val(x)
      if type(x) == "string" then
         return self:redact(x)
      elseif playbook.is_secret(x) then
         return self:redact_all(x)
      end
      return x
   end
   local msg, stdout, stderr, report = val(r.msg), val(r.stdout), val(r.stderr), val(r.report)
   local item = val(r.item_label)
   local d = r.diff
   local diff_text
   if d and self.show_diff then
      local path = val(d.path) or ""
      if d.secret then
         diff_text = ("--- %s\n+++ %s\n(content hidden: secret)\n"):format(path, path)
      elseif d.before ~= nil or d.after ~= nil then
         -- diffed after redaction: a secret's lines never reach the diff
         diff_text = diff.unified(val(d.before), val(d.after), d.path and path)
         if diff_text == "" and (d.before or "") ~= (d.after or "") then
            diff_text = ("--- %s\n+++ %s\n(changes hidden: secret)\n"):format(path, path)
         end
      end
   end
   if self.json then
      -- the module's own result fields (a snapshot's path and revision, a
      -- doctor's findings), for scripts; what the event already carries and
      -- the output streams (stdout/stderr: -v) are left out
      local fields
      for k, x in pairs(r) do
         if not RESULT_FRAME[k] then
            fields = fields or {}
            fields[k] = x
         end
      end
      return self:event(kind .. "_result", {
         result = fields and self:redact_all(fields) or nil,
         play = play,
         task = task.name,
         module = task.module,
         file = task.file,
         line = task.line,
         host = host,
         status = status,
         changed = r.changed or false,
         msg = msg,
         duration = dt,
         diff = diff_text,
         rc = r.rc,
         stdout = self.verbose > 0 and stdout or nil,
         stderr = (self.verbose > 0 or status == "failed") and stderr or nil,
         item = item,
         report = report,
      })
   end
   -- a task its `when` skipped says nothing at the default verbosity (the
   -- recap counts it; -v shows it): a playbook with plays for rare events
   -- (members joining, moving, leaving) would otherwise print pages of them
   if status == "skipped" and r.msg == "condition false" and self.verbose == 0 then
      return
   end
   local label = (kind == "handler" and "handler: " or "") .. task.name
   if item then
      label = label .. " (" .. tostring(item) .. ")"
   end
   local line = ("  %s %-8s %s (%.2fs)"):format(self:paint(status, ("%-11s"):format(status)), host, label, dt or 0)
   if status == "failed" and task.module then
      line = line .. " [" .. task.module .. "]"
   end
   if (status == "failed" or status == "unreachable" or self.verbose > 0) and msg and msg ~= "" then
      line = line .. ": " .. tostring(msg)
   end
   self:write(line .. "\n")
   if status == "failed" and stderr and stderr ~= "" and not tostring(msg or ""):find(tail(stderr, 1), 1, true) then
      self:write("      stderr: " .. tail(stderr, 5):gsub("\n", "\n              ") .. "\n")
   end
   if self.verbose > 0 then
      for _, kt in ipairs({ { "stdout", stdout }, { "stderr", stderr } }) do
         local k, text = kt[1], kt[2]
         if type(text) == "string" and text ~= "" then
            self:write(("      %s: %s\n"):format(k, tail(text, self.verbose > 1 and 200 or 20):gsub("\n", "\n      ")))
         end
      end
   end
   if diff_text and diff_text ~= "" then
      self:write(diff_text:gsub("[^\n]+", "      %0"))
   end
   -- a report is what a task exists to show (a verification table): always printed
   if type(report) == "string" and report ~= "" then
      self:write(("\n" .. report):gsub("\n", "\n    ") .. "\n")
   end
end

--- A line of information (warnings, hints, errors): redacted as a value.
function Out:message(text, level)
   if self.json then
      return self:event("message", { level = level or "info", text = text })
   end
   self:write(self:redact(tostring(text)) .. "\n")
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
