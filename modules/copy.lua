-- copy: a file on the host with given content (inline, or a file on the
-- controller), mode, owner and group.
--
-- One round trip finds out whether anything is to do: the destination's
-- stat and sha256 come back from a single command, and the content is sent
-- only when its digest differs. Writes are atomic (host:write stages next to
-- the destination and renames). The old content is read back only for a diff
-- of a file that changes and is small enough to show.
local fs = require("etcdrun.fs")
local fa = require("etcdrun.fileattrs")

local M = {
   examples = [[task "motd" { copy = { dest = "/etc/motd", content = "managed by etcdrun\n", mode = "0644" } }]],
   doc = "Put content (inline or a controller file) into a file on the host, atomically, "
      .. "only when its sha256 differs; set mode, owner and group.",
   args = {
      dest = { type = "path", required = true, absolute = true, doc = "file on the host" },
      content = { type = "string", doc = "the file's content (mark it secret with ctx.secret/secret())" },
      src = { type = "path", doc = "a file on the controller, relative to the playbook's directory" },
      mode = { type = "mode", doc = "octal string, e.g. '0600'; a new file gets 0644 when unset, "
         .. "an existing one keeps its mode" },
      owner = { type = "string", doc = "user name or uid; unset keeps the existing owner" },
      group = { type = "string", doc = "group name or gid; unset keeps the existing group" },
      force = { type = "boolean", default = true,
         doc = "replace an existing file whose content differs (false: only create a missing file)" },
      follow = { type = "boolean", default = true,
         doc = "a symlink at dest: true writes the file it points to and keeps the link (a dangling "
            .. "link fails); false replaces the link with a regular file" },
   },
   exclusive = { { "content", "src" } },
   one_of = { { "content", "src" } },
}

-- What is to be sent: digest, size, and the content when it is inline; a
-- src that does not exist (yet) is recorded missing, for plan to judge.
local function source(ctx, args)
   if args.content then
      return { content = args.content, digest = fs.sha256(args.content), size = #args.content }
   end
   local path = ctx.path(args.src)
   local st, err, code = ctx.controller:stat(path)
   if not st then
      if code == "ENOENT" then
         return { missing = true, err = ("copy: src %s: %s"):format(args.src, err), code = code }
      end
      return nil, ("copy: src %s: %s"):format(args.src, err), code
   end
   if st.type ~= "file" then
      return nil, ("copy: src %s is a %s, not a file (%s)"):format(args.src, st.type, path), "EINVAL"
   end
   local digest
   digest, err, code = ctx.controller:sha256(path)
   if not digest then
      return nil, err, code
   end
   return { path = path, digest = digest, size = st.size }
end

--- The source, and in one exec the destination's symlink (if any), stat
--- and sha256 (st nil: nothing there to write over); for a diff of content
--- that differs, both sides when small (before, after) and whether they
--- hold a secret the run knows.
function M.gather(ctx, args)
   local src, err, code = source(ctx, args)
   if not src or src.missing then
      return src and { src = src }, err, code
   end
   local dest, host = args.dest, ctx.host
   local body = ("if [ -e \"$p\" ]; then %s && if [ -f \"$p\" ]; then sha256sum -- \"$p\"; fi; "
      .. "else echo absent; fi"):format(fa.stat_p())
   local r
   r, err, code = fa.run(host, "copy", dest, fa.dest_cmd(dest, args.follow, body))
   if not r then
      return nil, err, code
   end
   local link, out = fa.split_dest(r.stdout)
   local state = { src = src, link = link }
   local first, second = out:match("^([^\n]*)\n?([^\n]*)")
   if first ~= "" and first ~= "absent" then
      state.st = fa.parse_stat(first)
      if not state.st then
         return nil, ("copy: unexpected stat output %q (%s:%s)"):format(r.stdout, host.name, dest), "EREMOTE"
      end
      state.st.digest = second:match("^\\?(%x+)")
   end
   local st, dp = state.st, fa.dest_plan(dest, link, args.follow)
   if ctx.diff and dp and (not st or st.digest ~= src.digest) then
      if st and not dp.replace and st.type == "file" and st.size <= fa.DIFF_MAX then
         state.before = host:read(dp.path) or nil
      end
      state.after = src.content or (src.size <= fa.DIFF_MAX and ctx.controller:read(src.path)) or nil
      state.secret = fa.holds_secret(ctx, state.before, state.after)
   end
   return state
end

local function sentence(verb, what)
   return verb .. " " .. table.concat(what, ", ")
end

--- Write when dest is missing or (force) its digest differs; fix the
--- attributes that differ; the symlink rule of fileattrs.dest_plan.
function M.plan(state, args, opts)
   local dest, src = args.dest, state.src
   if src.missing then
      -- in check mode an earlier task (a certificate, a download) that would
      -- have made the source did not run: say what would happen, don't fail
      if opts.check then
         return { changed = true, msg = ("would copy %s, which an earlier task would create"):format(args.src) }
      end
      return { failed = true, msg = src.err, result = { code = src.code } }
   end
   local dp, why = fa.dest_plan(dest, state.link, args.follow)
   if not dp then
      return { failed = true, msg = ("copy: %s:%s %s"):format(opts.host, dest, why) }
   end
   local st = not dp.replace and state.st or nil
   local path, via = dp.path, fa.via(dest, dp)
   if st and st.type ~= "file" then
      return { failed = true,
         msg = ("copy: %s:%s is a %s, not a file%s"):format(opts.host, dest, fa.kind(st.type), via) }
   end
   local result = { dest = dest, checksum = src.digest, size = src.size }
   if dp.replace and not args.force then
      return { changed = false, result = result,
         msg = ("exists (a symlink to %s), force=false: left as it is"):format(dp.link.target) }
   end
   local write = not st or (st.digest ~= src.digest and args.force)
   local attrs = fa.changes(st, args)
   if not write and #attrs == 0 then
      local msg = st.digest ~= src.digest and "exists, content differs, force=false: left as it is"
         or "unchanged"
      return { changed = false, msg = msg .. via, result = result }
   end
   local what = {}
   if write then
      what[1] = dp.replace and ("the symlink (-> %s) with a file"):format(dp.link.target)
         or st and "content" or "file"
   end
   if #attrs > 0 then
      what[#what + 1] = fa.describe(attrs)
   end
   local diff
   if opts.diff and write then
      -- the diff is of the file that is written: the link's target when
      -- following, the link itself when it is replaced
      local before = st and (state.before or fa.note(st.size, st.digest)) or dp.before or ""
      local after = src.content or state.after or fa.note(src.size, src.digest)
      diff = fa.content_diff(path, before, after, state.secret)
   elseif opts.diff then
      diff = fa.attr_diff(path, attrs)
   end
   local verb = dp.replace and "would replace" or st and "would change" or "would create"
   return {
      changed = true,
      msg = sentence(verb, what) .. via,
      diff = diff,
      result = result,
      write = write,
      what = what,
      created = not st,
      replace = dp.replace,
      path = path,
      via = via,
      src = src,
   }
end

function M.apply(ctx, args, plan)
   local host, path = ctx.host, plan.path
   -- a link replaced by a file gets the mode a new file gets, not its target's
   local opts = { mode = args.mode or (plan.replace and 420 or nil), owner = args.owner, group = args.group }
   local ok, err, code
   if plan.write then
      if plan.src.path then
         ok, err, code = host:put_file(plan.src.path, path, opts)
      else
         ok, err, code = host:write(path, plan.src.content, opts)
      end
   else
      ok, err, code = fa.fix(host, "copy", path, args)
   end
   if not ok then
      return nil, err, code
   end
   local verb = plan.replace and "replaced" or plan.created and "created" or "changed"
   return { msg = sentence(verb, plan.what) .. plan.via }
end

return M
