--- Playbooks: the Lua DSL a playbook is written in, and loading one.
--
--   return {
--      play "Install etcd" {
--         hosts = "etcd",
--         vars = { etcd_version = "3.4.23" },
--         tasks = {
--            task "binary dir" { file = { path = "/opt/etcd/bin", state = "directory", mode = "0755" } },
--            controller "CA" { x509_cert = { ... } },      -- once, on the controller (a barrier)
--            barrier "all nodes ready",
--            task "config" { template = { src = "etcd.conf.j2", dest = "/etc/etcd/etcd.conf.yaml" },
--                            notify = "restart etcd" },
--         },
--         handlers = { handler "restart etcd" { systemd = { name = "etcd", state = "restarted" } } },
--      },
--   }
--
-- Everything is checked when the file loads: unknown keys in plays and
-- tasks, unknown modules, wrong module arguments (values computed at run time
-- are checked again then), notify naming no handler. Errors name file:line.
local hostpattern = require("etcdrun.hostpattern")
local module = require("etcdrun.module")
local sandbox = require("etcdrun.sandbox")

local M = {}

local kinds = setmetatable({}, { __mode = "k" }) -- table -> "play"|"task"|"handler"|"barrier"|"flush"

local PLAY_KEYS = {
   name = true, hosts = true, tasks = true, handlers = true, vars = true, serial = true,
   any_errors_fatal = true, max_fail_percentage = true, tags = true, become = true,
   gather_facts = true, defaults = true, optional = true,
}
local TASK_KEYS = {
   name = true, when = true, register = true, notify = true, tags = true, retries = true,
   delay = true, until_ok = true, loop = true, loop_label = true, become = true,
   ignore_errors = true, changed_when = true, failed_when = true, run_once = true,
   delegate = true, run = true, timeout = true, listen = true, check_mode = true,
   serial = true, order = true, gate = true, before = true, -- handlers only: a rolling handler
}

--- A value shown as <secret> in every output.
local Secret = {}
Secret.__index = Secret
Secret.__tostring = function()
   return "<secret>"
end
M.Secret = Secret

function M.secret(v)
   return setmetatable({ value = v }, Secret)
end

function M.is_secret(v)
   return getmetatable(v) == Secret
end

-- Messages of mistakes found in a playbook file while it runs (a DSL call
-- without a name, an undefined global): they name file:line already, so the
-- CLI prints them without a traceback of the runtime's internals.
-- (etcdrun.sandbox keeps the one list: its undefined globals are such too.)
local user_error = sandbox.user_error

--- Whether an error message is one of a playbook's mistakes (see user_error).
M.is_user_error = sandbox.is_user_error

local function where_from(level)
   local info = debug.getinfo(level, "Sl")
   if not info then
      return "?", 0
   end
   return info.short_src, info.currentline
end

-- `kind "name" { body }`: the name call records file:line, the body call builds.
local function constructor(kind)
   return function(name)
      local file, line = where_from(3)
      if type(name) ~= "string" then
         user_error(("%s:%d: %s needs a name string: %s \"name\" { ... }, got %s"):format(file, line, kind,
            kind, type(name)))
      end
      return function(body)
         if type(body) ~= "table" then
            user_error(("%s:%d: %s \"%s\" needs a table body: %s \"%s\" { ... }, got %s"):format(file, line,
               kind, name, kind, name, type(body)))
         end
         body.name = body.name or name
         body._file, body._line = file, line
         kinds[body] = kind
         return body
      end
   end
end

local function marker(kind)
   return function(name)
      local file, line = where_from(3)
      local t = { name = name or kind, _file = file, _line = line }
      kinds[t] = kind
      return t
   end
end

--- The names a playbook file sees besides Lua's standard globals.
function M.dsl()
   return {
      play = constructor("play"),
      task = constructor("task"),
      handler = constructor("handler"),
      controller = function(name)
         local file, line = where_from(3)
         local build = constructor("task")(name)
         return function(body)
            local t = build(body)
            t._file, t._line = file, line
            t.delegate = "controller"
            t.run_once = true
            t._barrier = true
            return t
         end
      end,
      barrier = marker("barrier"),
      flush_handlers = marker("flush"),
      secret = M.secret,
      include = M.include,
   }
end

--- `include "lib/x.lua"`: run a Lua file relative to the file that calls it
-- (a playbook's own helpers and policy live next to it), in a strict
-- environment like the playbook's, and return what it returns. The file
-- gets its own directory as `...`, to find files that sit beside it.
function M.include(path)
   local info = debug.getinfo(2, "S")
   local caller = info and info.source:match("^@(.*)$") or "."
   if type(path) ~= "string" or path == "" then
      local file, line = where_from(3)
      user_error(("%s:%d: include needs a file name, got %s"):format(file, line, type(path)))
   end
   local full = path:sub(1, 1) == "/" and path or ((caller:match("^(.*)/[^/]*$") or ".") .. "/" .. path)
   local chunk, err = loadfile(full, "t", M.env())
   if not chunk then
      local file, line = where_from(3)
      user_error(("%s:%d: include: %s"):format(file, line, err))
   end
   return chunk(full:match("^(.*)/[^/]*$") or ".")
end

--- A playbook's environment (etcdrun.sandbox): the DSL and `extra` besides
-- the standard library; reading or assigning an undefined global is an error,
-- so a typo fails at load time instead of becoming a silent nil, and
-- `require` refuses etcdrun.core.*.
---@param extra? table more names
---@param opts? table etcdrun.sandbox.new's internal and fallback
function M.env(extra, opts)
   local dsl = M.dsl()
   for k, v in pairs(extra or {}) do
      dsl[k] = v
   end
   return sandbox.new({ extra = dsl, internal = opts and opts.internal, fallback = opts and opts.fallback })
end

-- A placeholder of the argument's type, so a value computed at run time
-- does not fail the load-time check of the others.
local function placeholder(spec)
   if spec.choices then
      return spec.choices[1]
   end
   local t = spec.type or "any"
   return ({ string = "x", path = "/x", integer = 0, number = 0, boolean = false, mode = "0644",
      list = {}, table = {}, ["function"] = function() end, any = true })[t]
end

local function is_dynamic(v)
   return type(v) == "function" or (type(v) == "string" and (v:find("{{", 1, true) or v:find("{%", 1, true)))
      or M.is_secret(v)
end

--- Check a task's module arguments as far as they are known at load time.
function M.check_args(mod, args, where)
   if type(args) ~= "table" then
      return nil, ("%s: module '%s': arguments must be a table"):format(where, mod.name)
   end
   local static = {}
   for k, v in pairs(args) do
      local spec = mod.args and mod.args[k]
      if spec and is_dynamic(v) and spec.type ~= "function" then
         static[k] = placeholder(spec)
      elseif type(v) == "table" and not M.is_secret(v) then
         -- nested dynamic values (a list of computed SANs): checked at run time
         local dyn = false
         for _, x in pairs(v) do
            if is_dynamic(x) then
               dyn = true
            end
         end
         static[k] = dyn and placeholder(spec or {}) or v
      else
         static[k] = v
      end
   end
   return module.validate(mod, static, where)
end

local function as_list(v)
   if v == nil then
      return {}
   elseif type(v) == "table" then
      return v
   end
   return { v }
end

-- What a value is, for messages: `a string ("nope")`, `a table`, ...
local function describe(v)
   local t = type(v)
   if t == "string" then
      return ("a string (%q)"):format(#v > 40 and v:sub(1, 40) .. "..." or v)
   elseif t == "number" or t == "boolean" then
      return ("a %s (%s)"):format(t, tostring(v))
   end
   return (t == "nil" and "nil") or ("a" .. (t:match("^[aeiou]") and "n " or " ") .. t)
end

local function is_list(v)
   if type(v) ~= "table" or M.is_secret(v) then
      return false
   end
   local n = 0
   for _ in pairs(v) do
      n = n + 1
   end
   return n == #v
end

local function is_list_of_strings(v)
   if not is_list(v) then
      return false
   end
   for _, x in ipairs(v) do
      if type(x) ~= "string" then
         return false
      end
   end
   return true
end

-- The type each optional field of a play or task takes: a checker and the
-- words for the message. Everything here is checked at load time, so a
-- wrong type never surfaces on host 3 of 5 (or as a traceback).
local FIELD_TYPES = {
   name = { function(v) return type(v) == "string" end, "a string" },
   boolean = { function(v) return type(v) == "boolean" end, "true or false" },
   strings = { function(v) return type(v) == "string" or is_list_of_strings(v) end,
      "a string or a list of strings" },
   condition = { function(v) return type(v) == "function" or type(v) == "boolean" end,
      "a function(vars, result) or a boolean" },
   count = { function(v) return math.type(v) == "integer" and v >= 0 end, "an integer >= 0" },
   positive_count = { function(v) return math.type(v) == "integer" and v >= 1 end, "an integer >= 1" },
   seconds = { function(v) return type(v) == "number" and v >= 0 and v == v and v < math.huge end,
      "a number of seconds >= 0" },
   positive_seconds = { function(v) return type(v) == "number" and v > 0 and v < math.huge end,
      "a number of seconds > 0" },
   loop = { function(v) return type(v) == "function" or is_list(v) end,
      "a list of items or a function(vars) returning one" },
   func = { function(v) return type(v) == "function" end, "a function" },
   percentage = { function(v) return type(v) == "number" and v >= 0 and v <= 100 end,
      "a number from 0 to 100" },
   vars = { function(v)
      if type(v) ~= "table" or M.is_secret(v) then
         return false
      end
      for k in pairs(v) do
         if type(k) ~= "string" then
            return false
         end
      end
      return true
   end, "a table of name = value" },
   list = { is_list, "a list" },
}

local TASK_TYPES = {
   name = "name", when = "condition", until_ok = "condition", changed_when = "condition",
   failed_when = "condition", notify = "strings", tags = "strings", listen = "strings", retries = "count",
   delay = "seconds", loop = "loop", loop_label = "func", become = "boolean", ignore_errors = "boolean",
   run_once = "boolean", timeout = "positive_seconds", check_mode = "boolean", serial = "positive_count",
   order = "func",
}

local PLAY_TYPES = {
   name = "name", tasks = "list", handlers = "list", vars = "vars", any_errors_fatal = "boolean",
   max_fail_percentage = "percentage", tags = "strings", become = "boolean", gather_facts = "boolean",
   defaults = "vars",
}

-- Raise `where: <kind> '<name>': <key> must be <type>, got <value>` for the
-- first field of t whose value has the wrong type.
local function check_types(t, types, where, kind)
   local keys = {}
   for k in pairs(types) do
      keys[#keys + 1] = k
   end
   table.sort(keys)
   for _, k in ipairs(keys) do
      local v = t[k]
      local ty = FIELD_TYPES[types[k]]
      if v ~= nil and not ty[1](v) then
         error(("%s: %s '%s': %s must be %s, got %s"):format(where, kind, tostring(t.name), k, ty[2], describe(v)),
            0)
      end
   end
end

-- Normalise one task table; returns it or raises with file:line.
local function prepare_task(t, kind, file, search, handler_names, fallback)
   local where = ("%s:%s"):format(t._file or file, t._line or fallback or "?")
   check_types(t, TASK_TYPES, where, kind)
   local mod_name
   for k in pairs(t) do
      if type(k) ~= "string" then
         error(("%s: %s '%s': unexpected key %s"):format(where, kind, tostring(t.name), tostring(k)), 0)
      end
      if not TASK_KEYS[k] and k:sub(1, 1) ~= "_" then
         if mod_name then
            error(("%s: %s '%s' names two modules ('%s' and '%s'): one task, one module"):format(where, kind,
               tostring(t.name), mod_name, k), 0)
         end
         mod_name = k
      end
   end
   if t.run ~= nil then
      if mod_name then
         error(("%s: %s '%s' has both run and module '%s'"):format(where, kind, t.name, mod_name), 0)
      end
      if type(t.run) ~= "function" then
         error(("%s: %s '%s': run must be a function(ctx, vars)"):format(where, kind, t.name), 0)
      end
   elseif not mod_name then
      error(("%s: %s '%s' names no module (and has no run function)"):format(where, kind, tostring(t.name)), 0)
   end
   local mod
   if mod_name then
      local ok, m, lerr = pcall(module.load, mod_name, search)
      if not ok then
         error(("%s: %s"):format(where, m), 0)
      end
      if not m then
         local TYPO = TASK_KEYS[mod_name:lower()] and " (task keys are lower case)" or ""
         error(("%s: %s '%s': %s%s"):format(where, kind, tostring(t.name), lerr, TYPO), 0)
      end
      mod = m
      local checked, err = M.check_args(mod, t[mod_name], where)
      if not checked then
         error(err, 0)
      end
   end
   for _, name in ipairs(as_list(t.notify)) do
      if handler_names and not handler_names[name] then
         error(("%s: task '%s' notifies '%s', but the play has no handler of that name"):format(where, t.name,
            name), 0)
      end
   end
   if t.register ~= nil and (type(t.register) ~= "string" or not t.register:match("^[%a_][%w_]*$")) then
      error(("%s: %s '%s': register must be a variable name"):format(where, kind, t.name), 0)
   end
   if t.delegate ~= nil and t.delegate ~= "controller" then
      error(("%s: %s '%s': delegate can only be \"controller\""):format(where, kind, t.name), 0)
   end
   -- a rolling handler: one host (serial) at a time, in `order`, each
   -- between two runs of its `gate` task; only handlers roll
   -- (and after the gate, its `before` task: leadership moved away, say)
   local gate, before
   if (t.serial ~= nil or t.order ~= nil or t.gate ~= nil or t.before ~= nil) and kind ~= "handler" then
      error(("%s: %s '%s': serial, order, gate and before are for handlers (a rolling handler)"):format(where,
         kind, tostring(t.name)), 0)
   end
   if (t.order ~= nil or t.gate ~= nil or t.before ~= nil) and t.serial == nil then
      error(("%s: handler '%s': order, gate and before need serial = N (hosts at a time)"):format(where,
         tostring(t.name)), 0)
   end
   if t.before ~= nil then
      if type(t.before) ~= "table" or kinds[t.before] ~= "task" then
         error(("%s: handler '%s': before must be a task (task \"name\" { module = {...} }), got %s"):format(where,
            tostring(t.name), describe(t.before)), 0)
      end
      before = prepare_task(t.before, "before", file, search, nil, t._line or fallback)
   end
   if t.gate ~= nil then
      if type(t.gate) ~= "table" or kinds[t.gate] ~= "task" then
         error(("%s: handler '%s': gate must be a task (task \"name\" { module = {...} }), got %s"):format(where,
            tostring(t.name), describe(t.gate)), 0)
      end
      gate = prepare_task(t.gate, "gate", file, search, nil, t._line or fallback)
   end
   return {
      kind = kind,
      name = t.name or mod_name or "run",
      file = t._file or file,
      line = t._line or fallback,
      module = mod_name or "run",
      mod = mod,
      args = mod_name and t[mod_name] or nil,
      run = t.run,
      when = t.when,
      register = t.register,
      notify = as_list(t.notify),
      listen = as_list(t.listen),
      tags = as_list(t.tags),
      retries = t.retries,
      delay = t.delay,
      until_ok = t.until_ok,
      loop = t.loop,
      loop_label = t.loop_label,
      become = t.become,
      ignore_errors = t.ignore_errors,
      changed_when = t.changed_when,
      failed_when = t.failed_when,
      run_once = t.run_once,
      delegate = t.delegate,
      timeout = t.timeout,
      check_mode = t.check_mode,
      barrier = t._barrier,
      serial = t.serial,
      order = t.order,
      gate = gate,
      before = before,
   }
end

-- A list entry that is no task (a string, a number, a play): the message
-- names the list, the entry and the play's file:line (the entry has none).
local function check_entry(t, i, list, where, play_name)
   if type(t) ~= "table" then
      error(("%s: play '%s': %s[%d] is %s, expected a task (task \"name\" { ... })"):format(where,
         tostring(play_name), list, i, describe(t)), 0)
   end
end

local function prepare_play(p, file, search, index)
   if type(p) ~= "table" then
      error(("%s: play %d is %s, expected a play (play \"name\" { hosts = ..., tasks = {...} })"):format(file,
         index or 1, describe(p)), 0)
   end
   local where = ("%s:%s"):format(p._file or file, p._line or "?")
   if kinds[p] ~= "play" and p.hosts == nil then
      error(("%s: expected a play (play \"name\" { hosts = ..., tasks = {...} })"):format(where), 0)
   end
   for k in pairs(p) do
      if not PLAY_KEYS[k] and not (type(k) == "string" and k:sub(1, 1) == "_") then
         error(("%s: play '%s': unknown key '%s'"):format(where, tostring(p.name), tostring(k)), 0)
      end
   end
   if type(p.hosts) ~= "string" and not is_list_of_strings(p.hosts) then
      error(("%s: play '%s' needs hosts = \"pattern\" (or a list of patterns), got %s"):format(where,
         tostring(p.name), describe(p.hosts)), 0)
   end
   -- a malformed pattern is a mistake in the file, found before any host is touched
   local terms, perr = hostpattern.split(p.hosts)
   if not terms then
      error(("%s: play '%s': hosts: %s"):format(where, tostring(p.name), perr), 0)
   end
   -- an empty pattern means all on the command line (Ansible's), but a play's hosts
   -- must name them, as Ansible's "Hosts list cannot be empty"
   local text = type(p.hosts) == "table" and table.concat(p.hosts, ",") or p.hosts
   if not text:find("[^%s,:]") then
      error(("%s: play '%s': hosts: host pattern '%s' is empty: name a group or host (or all)")
         :format(where, tostring(p.name), text), 0)
   end
   check_types(p, PLAY_TYPES, where, "play")
   local line = p._line
   local handlers, handler_names = {}, {}
   for i, h in ipairs(p.handlers or {}) do
      check_entry(h, i, "handlers", where, p.name)
      local ht = prepare_task(h, "handler", file, search, nil, line)
      handlers[i] = ht
      handler_names[ht.name] = true
      for _, l in ipairs(ht.listen) do
         handler_names[l] = true
      end
   end
   local steps = {}
   for i, t in ipairs(p.tasks or {}) do
      check_entry(t, i, "tasks", where, p.name)
      local kind = kinds[t]
      if kind == "barrier" or kind == "flush" then
         steps[#steps + 1] = { kind = kind, name = tostring(t.name), file = t._file, line = t._line }
      elseif kind == "play" or kind == "handler" then
         error(("%s:%s: a %s inside tasks"):format(t._file or file, t._line or "?", kind), 0)
      else
         steps[#steps + 1] = prepare_task(t, "task", file, search, handler_names, line)
      end
   end
   local serial = p.serial
   if serial ~= nil and not (math.type(serial) == "integer" and serial > 0)
      and not (type(serial) == "string" and serial:match("^%d+%%$")) then
      error(("%s: play '%s': serial must be a positive integer or a percentage like \"30%%\""):format(where,
         tostring(p.name)), 0)
   end
   return {
      name = p.name or tostring(p.hosts),
      hosts = p.hosts,
      vars = p.vars or {},
      defaults = p.defaults or {},
      steps = steps,
      handlers = handlers,
      serial = serial,
      any_errors_fatal = p.any_errors_fatal,
      optional = p.optional == true, -- no host matched: skipped without a word
      max_fail_percentage = p.max_fail_percentage,
      tags = as_list(p.tags),
      become = p.become,
      file = p._file or file,
      line = p._line,
   }
end

--- Load a playbook file. Returns {file, dir, plays} or nil, message (with
-- file:line) when the file does not load or does not check.
---@param path string
---@param opts? {search?: string[]}
function M.load(path, opts)
   local chunk, err = loadfile(path, "t", M.env())
   if not chunk then
      return nil, err
   end
   local ok, value = pcall(chunk)
   if not ok then
      return nil, tostring(value)
   end
   return M.from_value(value, path, opts)
end

--- Build a playbook from what a playbook file returned.
function M.from_value(value, path, opts)
   local dir = path:match("^(.*)/[^/]*$") or "."
   local search = opts and opts.search or module.search_path(dir)
   if type(value) ~= "table" then
      return nil, ("%s: a playbook must return a play or a list of plays, got %s"):format(path, type(value))
   end
   local list = kinds[value] == "play" and { value } or value
   local plays = {}
   local ok, err = pcall(function()
      if not is_list(list) then
         error(("%s: a playbook must return a play or a list of plays"):format(path), 0)
      end
      for i, p in ipairs(list) do
         plays[i] = prepare_play(p, path, search, i)
      end
   end)
   if not ok then
      return nil, err
   end
   if #plays == 0 then
      return nil, ("%s: the playbook has no plays"):format(path)
   end
   return { file = path, dir = dir, plays = plays, search = search }
end

--- True when value (what a Lua file returned) looks like a playbook.
function M.is_playbook(value)
   if type(value) ~= "table" then
      return false
   end
   if kinds[value] == "play" then
      return true
   end
   return kinds[value[1]] == "play"
end

return M
