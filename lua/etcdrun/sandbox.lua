--- etcdrun.sandbox: the one environment modules, playbooks (and the scripts
-- and `-e @vars.lua` files the CLI runs) are loaded in.
--
--   * reading an undefined global raises `FILE:LINE: undefined global 'x'`,
--     and so does assigning one: a typo fails where it is, not as a nil
--     three calls later (declare with `local`);
--   * Lua's standard library is there, plus the names the caller gives
--     (the playbook DSL, a script's `arg` and `etcdrun`);
--   * `require` refuses `etcdrun.core.*`, the C primitives under the public
--     API: modules and playbooks use the facades (etcdrun.fs, etcdrun.x509,
--     ...), the host object and ctx (modules/README.md lists them). `load`,
--     `loadfile` and `dofile` load into the same environment.
--
-- Errors it raises are user errors (M.is_user_error): they name file:line
-- already, so the CLI prints them without a traceback. This is a contract,
-- not a security boundary: the code it holds runs as the operator, with `io`
-- and `os`.
local M = {}

-- Messages of mistakes found in a user's file (an undefined global, a DSL
-- call without a name): printed as they are, without a traceback.
local user_errors = setmetatable({}, { __mode = "k" })

--- Raise msg (which names file:line) as a user error.
---@param msg string
function M.user_error(msg)
   user_errors[msg] = true
   error(msg, 0)
end

--- Whether an error message is a user error (see M.user_error).
---@return boolean
function M.is_user_error(msg)
   return type(msg) == "string" and user_errors[msg] == true
end

--- "FILE:LINE: " of the function `level` levels up (1 = the caller), or ""
-- when that is not Lua code or unknown: the function below it was
-- tail-called (`return require(...)`), so its caller's frame is gone.
---@param level integer
---@return string
function M.where(level)
   local below = debug.getinfo(level, "t")
   if below and below.istailcall then
      return ""
   end
   local info = debug.getinfo(level + 1, "Sl")
   if info and info.currentline and info.currentline > 0 then
      return ("%s:%d: "):format(info.short_src, info.currentline)
   end
   return ""
end

-- Lua 5.4's standard globals, taken once: later changes to _G do not leak in.
local STD = {}
for _, k in ipairs({
   "_VERSION", "assert", "collectgarbage", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
   "print", "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring",
   "type", "warn", "xpcall", "coroutine", "debug", "io", "math", "os", "package", "string", "table", "utf8",
}) do
   STD[k] = _G[k]
end
local real_require, real_load = require, load

--- Whether a module name is internal (the C primitives).
---@param name any
function M.is_internal(name)
   return type(name) == "string" and (name == "etcdrun.core" or name:sub(1, 13) == "etcdrun.core.")
end

local function refusal(name)
   return ("%s is internal: modules and playbooks use the public API (etcdrun.fs, etcdrun.x509, "
      .. "etcdrun.template, etcdrun.archive, etcdrun.http, etcdrun.clock, etcdrun.term, ..., the host "
      .. "object and ctx; see modules/README.md)"):format(name)
end

local states = setmetatable({}, { __mode = "k" }) -- env -> { refuse = bool, first = message|nil }

--- A new strict environment.
---@param opts? {extra?: table, internal?: "refuse"|"defer", fallback?: table}
---  extra: names seen besides the standard library; internal = "defer" lets
---  `require` load etcdrun.core.* and remembers the first place that did
---  (M.seal decides later: a script may, a playbook may not), "refuse" (the
---  default) raises at once; fallback: a table read after the others (the
---  CLI passes _G, so a script sees what `-e` chunks defined, as in lua.c).
---@return table env
function M.new(opts)
   opts = opts or {}
   local extra = opts.extra or {}
   local fallback = opts.fallback
   local state = { refuse = opts.internal ~= "defer" }
   local env = {}
   states[env] = state
   local names = {
      _G = env,
      require = function(name)
         if M.is_internal(name) then
            local msg = M.where(2) .. refusal(name)
            if state.refuse then
               M.user_error(msg)
            end
            state.first = state.first or msg
         end
         return real_require(name)
      end,
      load = function(chunk, chunkname, mode, e)
         return real_load(chunk, chunkname, mode, e == nil and env or e)
      end,
      loadfile = function(file, mode, e)
         return loadfile(file, mode, e == nil and env or e)
      end,
      dofile = function(file)
         local fn, err = loadfile(file, "bt", env)
         if not fn then
            error(err, 0)
         end
         return fn()
      end,
   }
   return setmetatable(env, {
      __index = function(_, k)
         local v = names[k]
         if v == nil then
            v = extra[k]
         end
         if v == nil then
            v = STD[k]
         end
         if v == nil and fallback then
            v = rawget(fallback, k)
         end
         if v == nil then
            M.user_error(("%sundefined global '%s'"):format(M.where(2), tostring(k)))
         end
         return v
      end,
      __newindex = function(_, k)
         M.user_error(("%sassignment to undefined global '%s' (declare it local)"):format(M.where(2),
            tostring(k)))
      end,
   })
end

--- From now on `require` refuses etcdrun.core.* in env (a playbook's run
-- functions, after its file returned a playbook). Returns the message for
-- the first place that required one while the file loaded, or nil.
---@param env table an environment from M.new
---@return string|nil
function M.seal(env)
   local state = assert(states[env], "not a sandbox environment")
   state.refuse = true
   return state.first
end

return M
