--- An example site module: a login banner (/etc/issue.net by default) that
-- reads "<text> (<host>)". Site modules live in a modules/ directory next
-- to the playbook (or on ETCDRUN_PATH); see modules/README.md for the contract.
local M = {
   doc = "Keep a one-line login banner on the node.",
   args = {
      text = { type = "string", required = true, doc = "what the banner says" },
      path = { type = "path", absolute = true, default = "/etc/issue.net", doc = "the banner file" },
   },
}

local function wanted(ctx, args)
   return ("%s (%s)\n"):format(args.text, ctx.host.name)
end

--- Read the banner; plan a rewrite only when it differs.
function M.check(ctx, args)
   local current = ctx.host:read(args.path) -- nil when the file does not exist
   local want = wanted(ctx, args)
   if current == want then
      return { changed = false, msg = "banner in place" }
   end
   return {
      changed = true,
      msg = current and "would update the banner" or "would create the banner",
      diff = { path = args.path, before = current or "", after = want },
   }
end

--- Write it atomically, world-readable.
function M.apply(ctx, args)
   local ok, err, code = ctx.host:write(args.path, wanted(ctx, args), { mode = 420 })
   if not ok then
      return nil, err, code
   end
   return { msg = "banner written" }
end

return M
