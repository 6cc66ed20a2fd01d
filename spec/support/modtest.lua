--- Run a module the way the playbook runner does (validate, check, apply
-- unless check mode), against a host object, for module specs.
local module = require("etcdrun.module")
local localhost = require("etcdrun.localhost")
local sched = require("etcdrun.sched")

local M = {}

--- Run module `name` with `args` on `host`.
---@param name string module name
---@param args table
---@param host table Host or LocalHost
---@param opts? {check?: boolean, diff?: boolean, vars?: table, playbook_dir?: string}
---@return table result {changed, failed, msg, diff, ...}
function M.run(name, args, host, opts)
   opts = opts or {}
   local mod = assert(module.load(name, opts.search))
   local vargs, secrets = module.validate(mod, args, "spec")
   if not vargs then
      return { failed = true, msg = secrets, code = "EARGS" }
   end
   local base = opts.playbook_dir or os.getenv("PWD") or "."
   local ctx = {
      host = host,
      controller = localhost.new(),
      check = opts.check or false,
      diff = opts.diff ~= false,
      vars = opts.vars or host.vars or {},
      secrets = secrets,
      secret = function(v)
         secrets[#secrets + 1] = v
         return v
      end,
      path = function(p)
         return p:sub(1, 1) == "/" and p or (base .. "/" .. p)
      end,
      sleep = sched.sleep,
      await = sched.await,
      log = function() end,
   }
   local r = module.run(mod, ctx, vargs)
   r.secrets = secrets
   return r
end

--- Validate only: returns normalised args or nil, message.
function M.validate(name, args, where)
   local mod = assert(module.load(name))
   return module.validate(mod, args, where)
end

return M
