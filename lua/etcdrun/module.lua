--- Modules: finding them, checking their arguments, running them.
--
-- A module is a Lua file returning a table (see modules/README.md):
--   { name, doc, args = { <arg> = spec }, gather = fn(ctx, args),
--     plan = fn(state, args, opts), apply = fn(ctx, args, plan) }
-- gather reads the current state (read-only); plan, a pure function of that
-- state, the arguments and opts {check, diff, host}, returns { changed = bool,
-- msg = ..., diff = { before, after, path }, result = { extra fields } };
-- apply makes the change and returns a table of result fields. The runner
-- (this file's M.run), not the module, enforces check mode: apply never runs
-- under --check. (A site module may still give check(ctx, args), gather and
-- plan in one: the contract before the split.)
local runtime = require("etcdrun.core.runtime")
local fs = require("etcdrun.core.fs")
local checkguard = require("etcdrun.checkguard")
local sandbox = require("etcdrun.sandbox")

local M = {}

local TYPES = {
   string = true, path = true, integer = true, number = true, boolean = true,
   mode = true, list = true, table = true, ["function"] = true, any = true,
}
local SPEC_KEYS = {
   type = true, required = true, default = true, choices = true, secret = true,
   doc = true, elements = true, absolute = true,
}
local MODULE_KEYS = {
   name = true, doc = true, args = true, check = true, gather = true, plan = true, apply = true, exclusive = true,
   one_of = true, required_if = true, secret_result = true, examples = true,
}

--- Directories searched for modules, site ones first: `modules/` next to the
-- playbook, then each ETCDRUN_PATH entry; the built-in directory last.
---@param playbook_dir string|nil
function M.search_path(playbook_dir)
   local dirs = {}
   if playbook_dir then
      dirs[#dirs + 1] = playbook_dir .. "/modules"
   end
   for d in (os.getenv("ETCDRUN_PATH") or ""):gmatch("[^:]+") do
      dirs[#dirs + 1] = d
   end
   return dirs
end

M.builtin_dir = runtime.root .. "/modules"

local function exists(path)
   local st = fs.stat(path)
   return st and st.type == "file"
end

-- Check a module table's own shape: a site module with a typo in its spec
-- must fail when loaded, not when a playbook happens to pass that argument.
local function check_shape(mod, file)
   if type(mod) ~= "table" then
      error(("%s: a module must return a table, got %s"):format(file, type(mod)), 0)
   end
   for k in pairs(mod) do
      if not MODULE_KEYS[k] then
         error(("%s: unknown module field '%s'"):format(file, tostring(k)), 0)
      end
   end
   local split = mod.gather ~= nil or mod.plan ~= nil
   if split and (type(mod.gather) ~= "function" or type(mod.plan) ~= "function" or mod.check ~= nil) then
      error(("%s: a module has gather(ctx, args) and plan(state, args, opts) functions (and no check)"):format(file),
         0)
   end
   if not split and type(mod.check) ~= "function" then
      error(("%s: a module needs gather(ctx, args) and plan(state, args, opts) functions"):format(file), 0)
   end
   if mod.apply ~= nil and type(mod.apply) ~= "function" then
      error(("%s: apply must be a function"):format(file), 0)
   end
   for arg, spec in pairs(mod.args or {}) do
      if type(spec) ~= "table" then
         error(("%s: argument '%s' needs a spec table"):format(file, arg), 0)
      end
      for k in pairs(spec) do
         if not SPEC_KEYS[k] then
            error(("%s: argument '%s': unknown spec field '%s'"):format(file, arg, tostring(k)), 0)
         end
      end
      if not TYPES[spec.type or "any"] then
         error(("%s: argument '%s': unknown type '%s'"):format(file, arg, tostring(spec.type)), 0)
      end
   end
end

local cache = {}

--- Load module `name`. A site module with the name of a built-in one is an
-- error naming both files: overriding a built-in must never happen by accident.
---@param name string
---@param search? string[] site directories (M.search_path)
---@return table module
function M.load(name, search)
   if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      error(("not a module name: %s"):format(tostring(name)), 0)
   end
   local builtin = M.builtin_dir .. "/" .. name .. ".lua"
   local site
   for _, dir in ipairs(search or {}) do
      local p = dir .. "/" .. name .. ".lua"
      if exists(p) then
         site = p
         break
      end
   end
   local has_builtin = exists(builtin)
   if site and has_builtin then
      error(("site module %s has the name of the built-in module %s: rename it"):format(site, builtin), 0)
   end
   local file = site or (has_builtin and builtin)
   if not file then
      return nil, ("no module named '%s'"):format(name)
   end
   if cache[file] then
      return cache[file]
   end
   -- strict, and etcdrun.core.* refused: a module uses the public API
   local chunk, err = loadfile(file, "t", sandbox.new())
   if not chunk then
      error(err, 0)
   end
   local mod = chunk()
   check_shape(mod, file)
   mod.name = mod.name or name
   cache[file] = mod
   return mod
end

--- Names of every module available (built-in and site), sorted.
function M.list(search)
   local names, seen = {}, {}
   local dirs = { M.builtin_dir }
   for _, d in ipairs(search or {}) do
      dirs[#dirs + 1] = d
   end
   for _, d in ipairs(dirs) do
      for _, f in ipairs(fs.list(d) or {}) do
         local n = f:match("^([%a_][%w_]*)%.lua$")
         if n and not seen[n] then
            seen[n] = true
            names[#names + 1] = n
         end
      end
   end
   table.sort(names)
   return names
end

local function parse_mode(v)
   if type(v) == "string" and (v:match("^0?[0-7][0-7][0-7]$") or v:match("^0?[0-7][0-7][0-7][0-7]$")) then
      return tonumber(v, 8)
   end
   return nil
end

local function type_error(where, name, arg, want, v)
   return ("%smodule '%s': argument '%s' must be %s, got %s"):format(where, name, arg, want,
      type(v) == "string" and ("'" .. v .. "'") or type(v))
end

-- Coerce and check one value against its spec; returns value or nil, message.
local function check_value(where, name, arg, spec, v)
   local t = spec.type or "any"
   if t == "string" then
      if type(v) == "number" then
         v = tostring(v)
      elseif type(v) ~= "string" then
         return nil, type_error(where, name, arg, "a string", v)
      end
   elseif t == "path" then
      if type(v) ~= "string" or v == "" then
         return nil, type_error(where, name, arg, "a path", v)
      end
      if spec.absolute and v:sub(1, 1) ~= "/" then
         return nil, ("%smodule '%s': argument '%s' must be an absolute path, got '%s'"):format(where, name, arg, v)
      end
   elseif t == "integer" then
      if math.type(v) ~= "integer" then
         return nil, type_error(where, name, arg, "an integer", v)
      end
   elseif t == "number" then
      if type(v) ~= "number" then
         return nil, type_error(where, name, arg, "a number", v)
      end
   elseif t == "boolean" then
      if type(v) ~= "boolean" then
         return nil, type_error(where, name, arg, "true or false", v)
      end
   elseif t == "mode" then
      local m = parse_mode(v)
      if not m then
         if type(v) == "number" then
            return nil, ("%smodule '%s': argument '%s': write modes as strings, e.g. '0644' "
               .. "(Lua has no octal literals: 0644 is the number 644)"):format(where, name, arg)
         end
         return nil, type_error(where, name, arg, "an octal mode string like '0644'", v)
      end
      v = m
   elseif t == "list" then
      if type(v) == "string" then
         v = { v }
      elseif type(v) ~= "table" then
         return nil, type_error(where, name, arg, "a list", v)
      end
      for i, e in ipairs(v) do
         if spec.elements == "string" and type(e) ~= "string" then
            return nil, ("%smodule '%s': argument '%s'[%d] must be a string, got %s"):format(where, name, arg,
               i, type(e))
         end
      end
   elseif t == "table" then
      if type(v) ~= "table" then
         return nil, type_error(where, name, arg, "a table", v)
      end
   elseif t == "function" then
      if type(v) ~= "function" then
         return nil, type_error(where, name, arg, "a function", v)
      end
   end
   if spec.choices then
      local ok = false
      for _, c in ipairs(spec.choices) do
         if c == v then
            ok = true
         end
      end
      if not ok then
         local cs = {}
         for i, c in ipairs(spec.choices) do
            cs[i] = tostring(c)
         end
         return nil, ("%smodule '%s': argument '%s' must be one of %s, got '%s'"):format(where, name, arg,
            table.concat(cs, ", "), tostring(v))
      end
   end
   return v
end

--- Check arguments against a module's spec. Returns the normalised args
-- (defaults filled, modes as numbers) and the list of secret values, or nil
-- and a message naming the module, the argument and `where` (file:line).
---@param mod table
---@param args table
---@param where? string "site.lua:12" (prefixed to messages)
function M.validate(mod, args, where)
   where = where and (where .. ": ") or ""
   local name = mod.name
   if type(args) ~= "table" then
      return nil, ("%smodule '%s': arguments must be a table, got %s"):format(where, name, type(args))
   end
   local spec = mod.args or {}
   local out, secrets = {}, {}
   for k in pairs(args) do
      if not spec[k] then
         local known = {}
         for a in pairs(spec) do
            known[#known + 1] = a
         end
         table.sort(known)
         return nil, ("%smodule '%s': unknown argument '%s' (known: %s)"):format(where, name, tostring(k),
            table.concat(known, ", "))
      end
   end
   for arg, s in pairs(spec) do
      local v = args[arg]
      if v == nil then
         if s.required then
            return nil, ("%smodule '%s': argument '%s' is required"):format(where, name, arg)
         end
         v = s.default
         if type(v) == "table" then
            local copy = {}
            for i, e in pairs(v) do
               copy[i] = e
            end
            v = copy
         end
         if v ~= nil and s.type == "mode" then
            v = parse_mode(v) or v
         end
      else
         local err
         local given = v
         v, err = check_value(where, name, arg, s, v)
         if v == nil then
            if s.secret and type(given) == "string" and given ~= "" then
               -- a secret argument's value is not repeated in the message
               err = err:gsub(given:gsub("%p", "%%%0"), "<secret>")
            end
            return nil, err
         end
      end
      out[arg] = v
      if s.secret and type(v) == "string" and v ~= "" then
         secrets[#secrets + 1] = v
      end
   end
   for _, group in ipairs(mod.exclusive or {}) do
      local given = {}
      for _, a in ipairs(group) do
         if args[a] ~= nil then
            given[#given + 1] = a
         end
      end
      if #given > 1 then
         return nil, ("%smodule '%s': arguments %s are mutually exclusive"):format(where, name,
            table.concat(given, " and "))
      end
   end
   for _, group in ipairs(mod.one_of or {}) do
      local n = 0
      for _, a in ipairs(group) do
         if args[a] ~= nil then
            n = n + 1
         end
      end
      if n == 0 then
         return nil, ("%smodule '%s': one of %s is required"):format(where, name, table.concat(group, ", "))
      end
   end
   for _, rule in ipairs(mod.required_if or {}) do
      local arg, value, needed = rule[1], rule[2], rule[3]
      if out[arg] == value then
         for _, a in ipairs(needed) do
            if out[a] == nil then
               return nil, ("%smodule '%s': argument '%s' is required when %s is '%s'"):format(where, name, a, arg,
                  tostring(value))
            end
         end
      end
   end
   return out, secrets
end

-- gather then plan, or a site module's older check (the two in one).
local function decide(mod, ctx, args)
   if not mod.plan then
      return mod.check(ctx, args)
   end
   local state, err, code = mod.gather(ctx, args)
   if state == nil then
      return nil, err, code
   end
   return mod.plan(state, args, { check = ctx.check or false, diff = ctx.diff or false,
      host = ctx.host and ctx.host.name or "controller" })
end

--- The decision alone, for specs and tools: plan(state, args, opts) of a
-- module, with args validated (defaults filled) and opts = {check, diff, host}.
---@return table plan
function M.plan(mod, state, args, opts)
   local vargs, err = M.validate(mod, args, "plan")
   if not vargs then
      error(err, 2)
   end
   opts = opts or {}
   return mod.plan(state, vargs, { check = opts.check or false, diff = opts.diff or false, host = opts.host or "h" })
end

--- Run a module with validated args: gather, plan, then (unless ctx.check)
-- apply. Returns the result {changed, failed, msg, diff, ...}; never raises
-- for failures of the environment (those become failed results).
---@param mod table
---@param ctx table from etcdrun.context
---@param args table validated arguments
function M.run(mod, ctx, args)
   -- under check mode the controller's file system is read-only to gather
   -- (etcdrun.checkguard), for every caller: runner, REPL, specs
   local ok, plan, err, code = (ctx.check and checkguard.run or pcall)(decide, mod, ctx, args)
   if not ok then
      return { failed = true, changed = false, msg = tostring(plan), code = "EMODULE" }
   end
   if not plan then
      return { failed = true, changed = false, msg = err, code = code }
   end
   local result = { changed = plan.changed and true or false, msg = plan.msg, diff = plan.diff }
   for k, v in pairs(plan.result or {}) do
      result[k] = v
   end
   if plan.failed then
      result.failed = true
      result.changed = false
      return result
   end
   if plan.skipped then
      result.skipped = true
      return result
   end
   if result.changed and not ctx.check and mod.apply then
      local aok, r, aerr, acode = pcall(mod.apply, ctx, args, plan)
      if not aok then
         result.failed, result.msg, result.code = true, tostring(r), "EMODULE"
         return result
      end
      if not r then
         result.failed, result.msg, result.code = true, aerr, acode
         return result
      end
      for k, v in pairs(r) do
         result[k] = v
      end
   end
   result.failed = result.failed or false
   return result
end

return M
