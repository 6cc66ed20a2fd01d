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
local shell = require("etcdrun.shell")

local M = {
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
   },
   exclusive = { { "content", "src" } },
   one_of = { { "content", "src" } },
}

local q = shell.quote

-- The destination's stat line and, for a regular file, its sha256: one exec.
local function gather(host, dest)
   local cmd = ("p=%s; if [ -e \"$p\" ]; then %s && if [ -f \"$p\" ]; then sha256sum -- \"$p\"; fi; "
      .. "else echo absent; fi"):format(q(dest), fa.stat_cmd(dest))
   local r, err, code = fa.run(host, "copy", dest, cmd)
   if not r then
      return nil, err, code
   end
   local first, second = r.stdout:match("^([^\n]*)\n?([^\n]*)")
   if first == "absent" then
      return { exists = false }
   end
   local st = fa.parse_stat(first)
   if not st then
      return nil, ("copy: unexpected stat output %q (%s:%s)"):format(r.stdout, host.name, dest), "EREMOTE"
   end
   st.exists = true
   st.digest = second:match("^\\?(%x+)")
   return st
end

-- What is to be sent: digest, size, and the content when it is inline.
local function source(ctx, args)
   if args.content then
      return { content = args.content, digest = fs.sha256(args.content), size = #args.content }
   end
   local path = ctx.path(args.src)
   local st, err, code = ctx.controller:stat(path)
   if not st then
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

local function sentence(verb, what)
   return verb .. " " .. table.concat(what, ", ")
end

function M.check(ctx, args)
   local dest = args.dest
   local src, err, code = source(ctx, args)
   if not src then
      -- in check mode an earlier task (a certificate, a download) that would
      -- have made the source did not run: say what would happen, don't fail
      if ctx.check and code == "ENOENT" then
         return { changed = true, msg = ("would copy %s, which an earlier task would create"):format(args.src) }
      end
      return nil, err, code
   end
   local st
   st, err, code = gather(ctx.host, dest)
   if not st then
      return nil, err, code
   end
   if st.exists and st.type ~= "file" then
      local kind = st.type == "dir" and "directory" or st.type
      return { failed = true, msg = ("copy: %s:%s is a %s, not a file"):format(ctx.host.name, dest, kind) }
   end
   local write = not st.exists or (st.digest ~= src.digest and args.force)
   local attrs = st.exists and fa.changes(st, args) or {}
   local result = { dest = dest, checksum = src.digest, size = src.size }
   if not write and #attrs == 0 then
      local msg = st.digest ~= src.digest and "exists, content differs, force=false: left as it is"
         or "unchanged"
      return { changed = false, msg = msg, result = result }
   end
   local what = {}
   if write then
      what[1] = st.exists and "content" or "file"
   end
   if #attrs > 0 then
      what[#what + 1] = fa.describe(attrs)
   end
   local diff
   if ctx.diff and write then
      local before = ""
      if st.exists then
         before = st.size <= fa.DIFF_MAX and ctx.host:read(dest) or fa.note(st.size, st.digest)
      end
      local after = src.content
      if not after then
         after = src.size <= fa.DIFF_MAX and ctx.controller:read(src.path) or fa.note(src.size, src.digest)
      end
      diff = fa.content_diff(ctx, dest, before, after)
   elseif ctx.diff then
      diff = fa.attr_diff(dest, attrs)
   end
   return {
      changed = true,
      msg = sentence(st.exists and "would change" or "would create", what),
      diff = diff,
      result = result,
      write = write,
      attrs = attrs,
      what = what,
      created = not st.exists,
      src = src,
   }
end

function M.apply(ctx, args, plan)
   local host, dest = ctx.host, args.dest
   local opts = { mode = args.mode, owner = args.owner, group = args.group }
   local ok, err, code
   if plan.write then
      if plan.src.path then
         ok, err, code = host:put_file(plan.src.path, dest, opts)
      else
         ok, err, code = host:write(dest, plan.src.content, opts)
      end
   else
      ok, err, code = fa.run(host, "copy", dest, fa.fix_cmd(dest, args))
   end
   if not ok then
      return nil, err, code
   end
   return { msg = sentence(plan.created and "created" or "changed", plan.what) }
end

return M
