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
   doc = "Fail unless every condition in `that` is true.",
   args = {
      that = { type = "any", required = true, doc = "a boolean or a list of booleans (or functions of vars)" },
      fail_msg = { type = "string", doc = "message when an assertion fails" },
      success_msg = { type = "string", doc = "message when all pass" },
      quiet = { type = "boolean", default = false, doc = "no message on success" },
   },
}

function M.check(ctx, args)
   local that = args.that
   if type(that) ~= "table" then
      that = { that }
   end
   local n = 0
   for k in pairs(that) do
      if math.type(k) ~= "integer" or k < 1 then
         return { failed = true, msg = "assert: 'that' must be a boolean or a list of booleans" }
      end
      n = math.max(n, k)
   end
   if n == 0 then
      return { failed = true, msg = "assert: 'that' is an empty list" }
   end
   for i = 1, n do
      local v = that[i]
      if type(v) == "function" then
         v = v(ctx.vars)
      end
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
