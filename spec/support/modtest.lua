--- Run a module the way the playbook runner does (validate, gather, plan,
-- apply unless check mode), against a host object, for module specs.
local module = require("etcdrun.module")
local localhost = require("etcdrun.localhost")
local context = require("etcdrun.context")
local output = require("etcdrun.output")

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
   -- the runner's own ctx, with an output sink that remembers secrets
   local out = output.new({ stream = io.open("/dev/null", "w"), color = false })
   for _, v in ipairs(secrets) do
      out:secret(v)
   end
   local marked = {}
   local ctx = context.new({
      host = host,
      controller = localhost.new(),
      check = opts.check or false,
      diff = opts.diff ~= false,
      vars = opts.vars or host.vars or {},
      out = setmetatable({
         secret = function(_, v)
            marked[#marked + 1] = v
            return out:secret(v)
         end,
      }, { __index = out }),
      base = opts.playbook_dir or os.getenv("PWD") or ".",
   })
   local r = module.run(mod, ctx, vargs)
   for _, v in ipairs(marked) do
      secrets[#secrets + 1] = v
   end
   r.secrets = secrets
   return r
end

--- Validate only: returns normalised args or nil, message.
function M.validate(name, args, where)
   local mod = assert(module.load(name))
   return module.validate(mod, args, where)
end

return M
