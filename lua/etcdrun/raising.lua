--- Turns a core module's `nil, err, code` returns into raised errors.
-- The core (C) reports environmental failure as values so that the runner
-- can count and report it per host; scripts and modules mostly want the
-- failure to stop them with the message, which names op, object and reason.
local M = {}

---@param core table a module from etcdrun.core.*
---@param family string its name, for messages
---@return table facade functions with the same names that raise on failure
function M.wrap(core, family)
   local facade = {}
   for name, fn in pairs(core) do
      if type(fn) == "function" then
         -- looked up at each call: etcdrun.checkguard swaps the core's writers
         facade[name] = function(...)
            local r = table.pack(core[name](...))
            if r[1] == nil and r.n >= 2 then
               error(r[2] or (family .. "." .. name .. ": failed"), 2)
            end
            return table.unpack(r, 1, r.n)
         end
      else
         facade[name] = fn
      end
   end
   -- the non-raising originals, for callers that handle failure themselves
   facade.try = core
   return facade
end

return M
