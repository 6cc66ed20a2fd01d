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
local module = require("etcdrun.module")

local M = {}

local kinds = setmetatable({}, { __mode = "k" }) -- table -> "play"|"task"|"handler"|"barrier"|"flush"

local PLAY_KEYS = {
   name = true, hosts = true, tasks = true, handlers = true, vars = true, serial = true,
   any_errors_fatal = true, max_fail_percentage = true, tags = true, become = true,
   gather_facts = true,
}
local TASK_KEYS = {
   name = true, when = true, register = true, notify = true, tags = true, retries = true,
   delay = true, until_ok = true, loop = true, loop_label = true, become = true,
   ignore_errors = true, changed_when = true, failed_when = true, run_once = true,
   delegate = true, run = true, timeout = true, listen = true, check_mode = true,
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
         error(("%s:%d: %s needs a name string: %s \"name\" { ... }"):format(file, line, kind, kind), 2)
      end
      return function(body)
         if type(body) ~= "table" then
            error(("%s:%d: %s \"%s\" needs a table body"):format(file, line, kind, name), 2)
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
   }
end

--- A strict environment: reading an undefined global is an error, so a typo
-- fails at load time instead of becoming a silent nil.
function M.env(extra)
   local dsl = M.dsl()
   for k, v in pairs(extra or {}) do
      dsl[k] = v
   end
   return setmetatable({}, {
      __index = function(_, k)
         local v = dsl[k]
         if v == nil then
            v = _G[k]
         end
         if v == nil then
            error(("undefined global '%s'"):format(tostring(k)), 2)
         end
         return v
      end,
   })
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

-- Normalise one task table; returns it or raises with file:line.
local function prepare_task(t, kind, file, search, handler_names)
   local where = ("%s:%s"):format(t._file or file, t._line or "?")
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
   for _, key in ipairs({ "when", "until_ok", "changed_when", "failed_when" }) do
      local v = t[key]
      if v ~= nil and type(v) ~= "function" and type(v) ~= "boolean" then
         error(("%s: %s '%s': %s must be a function(vars, result) or a boolean"):format(where, kind, t.name, key), 0)
      end
   end
   if t.register ~= nil and (type(t.register) ~= "string" or not t.register:match("^[%a_][%w_]*$")) then
      error(("%s: %s '%s': register must be a variable name"):format(where, kind, t.name), 0)
   end
   if t.delegate ~= nil and t.delegate ~= "controller" then
      error(("%s: %s '%s': delegate can only be \"controller\""):format(where, kind, t.name), 0)
   end
   return {
      kind = kind,
      name = t.name or mod_name or "run",
      file = t._file or file,
      line = t._line,
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
   }
end

local function prepare_play(p, file, search)
   local where = ("%s:%s"):format(p._file or file, p._line or "?")
   if kinds[p] ~= "play" and type(p) == "table" and p.hosts == nil then
      error(("%s: expected a play (play \"name\" { hosts = ..., tasks = {...} })"):format(where), 0)
   end
   for k in pairs(p) do
      if not PLAY_KEYS[k] and not (type(k) == "string" and k:sub(1, 1) == "_") then
         error(("%s: play '%s': unknown key '%s'"):format(where, tostring(p.name), tostring(k)), 0)
      end
   end
   if type(p.hosts) ~= "string" and type(p.hosts) ~= "table" then
      error(("%s: play '%s' needs hosts = \"pattern\""):format(where, tostring(p.name)), 0)
   end
   local handlers, handler_names = {}, {}
   for i, h in ipairs(p.handlers or {}) do
      local ht = prepare_task(h, "handler", file, search, nil)
      handlers[i] = ht
      handler_names[ht.name] = true
      for _, l in ipairs(ht.listen) do
         handler_names[l] = true
      end
   end
   local steps = {}
   for _, t in ipairs(p.tasks or {}) do
      local kind = kinds[t]
      if kind == "barrier" or kind == "flush" then
         steps[#steps + 1] = { kind = kind, name = t.name, file = t._file, line = t._line }
      elseif kind == "play" or kind == "handler" then
         error(("%s:%s: a %s inside tasks"):format(t._file or file, t._line or "?", kind), 0)
      else
         steps[#steps + 1] = prepare_task(t, "task", file, search, handler_names)
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
      steps = steps,
      handlers = handlers,
      serial = serial,
      any_errors_fatal = p.any_errors_fatal,
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
      for i, p in ipairs(list) do
         plays[i] = prepare_play(p, path, search)
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
