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

local function wanted(args, host)
   return ("%s (%s)\n"):format(args.text, host)
end

--- Read the banner (read-only): what is there, false when there is none.
function M.gather(ctx, args)
   local current, err, code = ctx.host:read(args.path, { missing = false })
   if current == nil then
      return nil, err, code
   end
   return { current = current }
end

--- Decide, from what gather read alone: a rewrite only when it differs.
function M.plan(state, args, opts)
   local want = wanted(args, opts.host)
   if state.current == want then
      return { changed = false, msg = "banner in place" }
   end
   return {
      changed = true,
      msg = state.current and "would update the banner" or "would create the banner",
      diff = { path = args.path, before = state.current or "", after = want },
      content = want,
   }
end

--- Write it atomically, world-readable.
function M.apply(ctx, args, plan)
   local ok, err, code = ctx.host:write(args.path, plan.content, { mode = "0644" })
   if not ok then
      return nil, err, code
   end
   return { msg = "banner written" }
end

return M
