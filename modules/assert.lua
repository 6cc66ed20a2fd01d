-- assert: fail the task unless every condition holds.
--
-- `that` is a boolean or a list of them. The runner evaluates a task's
-- function-valued arguments before calling the module, so conditions
-- arrive as values; a function still found in the list is called with the
-- host's variables. Anything else than true or false (nil from a missing
-- variable, a number, a string) fails with what it was, because a truthy
-- string passing an assertion by accident is the bug this module exists to
-- catch.
local M = {
   examples = [[task "systemd is running" { assert = { that = function(v) return v.facts.systemd end,
   fail_msg = "etcd runs as a systemd unit" } }]],
   doc = "Fail unless every condition in `that` is true.",
   args = {
      that = { type = "any", required = true, doc = "a boolean or a list of booleans (or functions of vars)" },
      fail_msg = { type = "string", doc = "message when an assertion fails" },
      success_msg = { type = "string", doc = "message when all pass" },
      quiet = { type = "boolean", default = false, doc = "no message on success" },
   },
}

-- The conditions as a list, or nil when `that` is not one.
local function conditions(that)
   if type(that) ~= "table" then
      that = { that }
   end
   local n = 0
   for k in pairs(that) do
      if math.type(k) ~= "integer" or k < 1 then
         return nil
      end
      n = math.max(n, k)
   end
   return that, n
end

--- The state: each condition's value, a function called with the host's
--- variables, in order up to the first that is not true (the ones after it
--- are never called, as a failed assertion stops there).
function M.gather(ctx, args)
   local that, n = conditions(args.that)
   local values = {}
   for i = 1, that and n or 0 do
      local v = that[i]
      if type(v) == "function" then
         v = v(ctx.vars)
      end
      values[i] = v
      if v ~= true then
         break
      end
   end
   return { values = values }
end

--- The decision: pass, or fail naming the first condition that is not true.
function M.plan(state, args)
   local _, n = conditions(args.that)
   if not n then
      return { failed = true, msg = "assert: 'that' must be a boolean or a list of booleans" }
   end
   if n == 0 then
      return { failed = true, msg = "assert: 'that' is an empty list" }
   end
   for i = 1, n do
      local v = state.values[i]
      if type(v) ~= "boolean" then
         return { failed = true, msg = ("assert: that[%d] is %s, not true or false%s"):format(i,
            v == nil and "nil" or (type(v) .. " " .. tostring(v)),
            args.fail_msg and (": " .. args.fail_msg) or "") }
      end
      if not v then
         return {
            failed = true, msg = args.fail_msg or ("assertion %d of %d failed"):format(i, n),
            result = { assertion = i },
         }
      end
   end
   return { changed = false, msg = not args.quiet and (args.success_msg or "all assertions passed") or nil }
end

return M
