--- The one constructor of `ctx`, the context a module's gather and apply (and
-- a `run` step) receive, for the runner, the REPL and the specs alike, so a
-- module sees the same fields everywhere (modules/README.md lists them).
local sched = require("etcdrun.sched")

local M = {}

--- A context.
---@param o table {host, controller, check?, diff?, vars?, out? (an etcdrun.output sink: secret marking and
---  detection), base (directory relative paths are resolved against), template_vars?, hosts?, log?, timeout?}
---@return table ctx
function M.new(o)
   local out = o.out
   local base = o.base or "."
   return {
      host = o.host,
      controller = o.controller,
      check = o.check or false,
      diff = o.diff or false,
      vars = o.vars or {},
      timeout = o.timeout,
      -- mark a value secret: it prints as <secret> from now on
      secret = function(s)
         return out and out:secret(s) or s
      end,
      -- whether a text holds a secret (a diff of it is then hidden whole)
      contains_secret = function(s)
         return out ~= nil and out:contains_secret(s)
      end,
      path = function(p)
         return p:sub(1, 1) == "/" and p or (base .. "/" .. p)
      end,
      sleep = sched.sleep,
      await = sched.await,
      -- the plain variables a template sees (facts gathered if it mentions them)
      template_vars = o.template_vars or function()
         return o.vars or {}
      end,
      -- another host of the run by name (nil when there is none)
      hosts = o.hosts or function()
         return nil
      end,
      log = o.log or function() end,
   }
end

return M
