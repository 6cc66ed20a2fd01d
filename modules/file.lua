-- file: a path's kind (file, directory, symlink, absent) and its mode,
-- owner and group; never its content (that is copy's and template's).
--
-- Ansible's states: `file` only sets attributes on a file that must already
-- exist, `directory` creates (with parents), `link` makes a symlink,
-- `touch` creates an empty file when missing, `absent` removes (a directory
-- recursively). Unlike Ansible, `touch` never updates timestamps, so a
-- second run reports no change. Without `state`, the path keeps the kind it
-- has (attributes are set) and a missing path fails, as with `file`.
--
-- A symlink at path is followed (`follow`, default true, as Ansible's):
-- state file/directory/touch and mode/owner/group apply to the file it
-- resolves to, and a dangling link has none to apply them to (refused).
-- follow=false manages the link itself: owner/group with chown -h, and a
-- mode is refused (a Linux symlink has no mode of its own). state=link and
-- state=absent are always about the link.
--
-- One command reads the current state (lstat, the target's stat when it is
-- a link, readlink, realpath, and for links whether src exists); one
-- command applies.
local fa = require("etcdrun.fileattrs")
local shell = require("etcdrun.shell")

local M = {
   examples = [[task "data directory" { file = { path = "/var/lib/etcd", state = "directory", mode = "0700",
   owner = "etcd", group = "etcd" } }]],
   doc = "Make a path a directory, a file, a symlink or absent, with mode, owner and group.",
   args = {
      path = { type = "path", required = true, absolute = true, doc = "path on the host" },
      state = { type = "string", choices = { "file", "directory", "link", "touch", "absent" },
         doc = "file (must exist), directory (created with parents), link (symlink to src), "
            .. "touch (created empty when missing), absent (removed, recursively); "
            .. "unset: keep the path's kind" },
      mode = { type = "mode", doc = "octal string, e.g. '0750' (not for links)" },
      owner = { type = "string", doc = "user name or uid" },
      group = { type = "string", doc = "group name or gid" },
      src = { type = "string", doc = "the link's target (state=link), absolute or relative to the link's directory" },
      force = { type = "boolean", default = false,
         doc = "state=link: replace a regular file at path, or link to a src that does not exist" },
      follow = { type = "boolean", default = true,
         doc = "a symlink at path (other than for state=link/absent): true sets mode/owner/group on "
            .. "the file it points to; false sets owner/group on the link itself and refuses a mode" },
   },
   required_if = { { "state", "link", { "src" } } },
}

local q = shell.quote

-- The path managed: args.path without trailing slashes; nil for the root
-- directory, which is never managed.
local function managed(path)
   path = path:gsub("/+$", "")
   if path == "" or path:gsub("/+", "/"):gsub("/%.$", "") == "" then
      return nil
   end
   return path
end

--- One exec: lstat (kind absent when nothing is there); for a link also the
--- target's stat (nil when dangling), readlink and realpath (nil when
--- dangling); for state=link whether src exists seen from the link's directory.
function M.gather(ctx, args)
   local host, path = ctx.host, managed(args.path)
   if not path then
      return {} -- plan refuses it
   end
   local src = args.state == "link" and args.src or nil
   local parent = path:match("^(.*)/[^/]*$")
   local cmd = ("p=%s; if [ -L \"$p\" ] || [ -e \"$p\" ]; then %s || exit 1; if [ -L \"$p\" ]; then "
      .. "%s 2>/dev/null || echo dangling; readlink -- \"$p\"; realpath -e -- \"$p\" 2>/dev/null || echo; fi; "
      .. "else echo absent; fi")
      :format(q(path), fa.stat_cmd(path, false), fa.stat_cmd(path))
   if src then
      cmd = cmd .. ("; if cd %s 2>/dev/null && [ -e %s ]; then echo src=yes; else echo src=no; fi")
         :format(q(parent == "" and "/" or parent), q(src))
   end
   local r, err, code = fa.run(host, "file", path, cmd)
   if not r then
      return nil, err, code
   end
   local lines = {}
   for l in r.stdout:gmatch("([^\n]*)\n") do
      lines[#lines + 1] = l
   end
   local cur = { src_exists = lines[#lines] == "src=yes" }
   if lines[1] == "absent" then
      cur.kind = "absent"
      return cur
   end
   cur.lstat = fa.parse_stat(lines[1])
   if not cur.lstat then
      return nil, ("file: unexpected stat output %q (%s:%s)"):format(r.stdout, host.name, path), "EREMOTE"
   end
   cur.kind = cur.lstat.type
   if cur.kind == "link" then
      cur.target_stat = fa.parse_stat(lines[2]) -- nil when dangling
      cur.target = lines[3]
      cur.real = lines[4] ~= "" and lines[4] or nil
   end
   return cur
end

local KIND = fa.kind

-- The attributes a diff shows: the kind and what the task sets.
local function describe(kind, st, args, target)
   local out = { ("state %s\n"):format(KIND(kind)) }
   if kind == "link" then
      out[#out + 1] = ("src %s\n"):format(target or "?")
   end
   if st then
      if args.mode and kind ~= "link" then
         out[#out + 1] = ("mode %s\n"):format(fa.mode_str(st.mode))
      end
      if args.owner then
         out[#out + 1] = ("owner %s\n"):format(st.user or st.uid)
      end
      if args.group then
         out[#out + 1] = ("group %s\n"):format(st.group or st.gid)
      end
   end
   return table.concat(out)
end

--- The decision (pure): what makes the path the asked kind and fixes its
--- attributes, as one command for apply, and the diff.
function M.plan(cur, args, opts)
   local function fail(p, why)
      return { failed = true, msg = ("file: %s:%s %s"):format(opts.host, p, why) }
   end
   local path = managed(args.path)
   if not path then
      return fail(args.path, "is the root directory: refusing to manage it")
   end
   local state = args.state
   if state ~= "link" and args.src then
      return fail(path, "src is only for state=link")
   end
   if state == "link" and args.mode then
      return fail(path, "mode cannot be set on a symlink")
   end
   -- following, a link to a file or directory counts as one (its attributes
   -- are set on cur.real), except for state=link and state=absent, which
   -- are about the link
   local kind, st, where = cur.kind, cur.lstat, path
   local follow = args.follow ~= false
   if kind == "link" and state ~= "link" and state ~= "absent" then
      if follow and cur.target_stat and cur.real then
         kind, st, where = cur.target_stat.type, cur.target_stat, cur.real
      elseif follow and (args.mode or args.owner or args.group or state) then
         return fail(path, ("is a symlink to %s, which does not exist (or loops): nothing to follow "
            .. "(follow=false manages the link itself: owner and group)"):format(cur.target))
      elseif args.mode then
         return fail(path, "is a symlink and follow=false: mode cannot be set on a symlink itself "
            .. "(Linux links have no mode; follow=true sets the mode of the file it points to)")
      end
   end
   local via = where ~= path and (" (through the symlink %s -> %s)"):format(path, where) or ""
   if state == nil then
      if kind == "absent" then
         return fail(path, "does not exist (give state=touch, directory or link to create it)")
      end
      state = ({ dir = "directory", link = "link" })[kind] or "file"
   end
   -- a dangling link found without state=link keeps its target
   local src = args.src or cur.target
   local before = describe(kind, st, args, cur.target)

   if state == "absent" then
      if kind == "absent" then
         return { changed = false, msg = "absent" }
      end
      return {
         changed = true, msg = ("would remove the %s"):format(KIND(kind)), done = ("removed the %s"):format(KIND(kind)),
         diff = { path = path, before = before, after = "state absent\n" },
         cmd = ("rm -rf -- %s"):format(q(path)),
      }
   end

   local cmd, what, new_kind -- cmd: what creates or replaces the path itself
   if state == "directory" then
      if kind == "absent" then
         cmd, what, new_kind = ("mkdir -p -- %s"):format(q(path)), "create the directory", "dir"
      elseif kind ~= "dir" then
         return fail(path, ("exists and is a %s, not a directory%s"):format(KIND(kind), via))
      end
   elseif state == "file" then
      if kind == "absent" then
         return fail(path, "does not exist (state=file never creates: use state=touch or copy)")
      elseif kind ~= "file" then
         return fail(path, ("is a %s, not a file%s"):format(KIND(kind), via))
      end
   elseif state == "touch" then
      if kind == "absent" then
         cmd, what, new_kind = (": >> %s"):format(q(path)), "create the file", "file"
      elseif kind ~= "file" and kind ~= "dir" then
         return fail(path, ("is a %s%s"):format(KIND(kind), via))
      end
   elseif state == "link" then
      if args.src and not cur.src_exists and not args.force then
         return fail(path, ("link source %s does not exist (force=true links anyway)"):format(args.src))
      end
      if kind == "dir" then
         return fail(path, "is a directory: remove it first (state=absent) to put a link there")
      elseif kind == "file" and not args.force then
         return fail(path, "is a regular file: force=true replaces it with a link")
      elseif kind ~= "link" or cur.target ~= src then
         -- a new link beside the path, renamed over it: never a moment without one
         local dir, base = path:match("^(.*)/([^/]*)$")
         local tmp = ("%s/.%s.etcdrun-link"):format(dir, base)
         cmd = ("ln -sfn -- %s %s && mv -f -T -- %s %s"):format(q(src), q(tmp), q(tmp), q(path))
         what = kind == "absent" and "create the link"
            or kind == "link" and ("change the link target %s -> %s"):format(cur.target, src)
            or ("replace the %s with a link"):format(KIND(kind))
         new_kind = "link"
      end
   end

   local link = state == "link"
   local changes = cmd and {} or fa.changes(st, args)
   if not cmd and #changes == 0 then
      return { changed = false, msg = ("%s, attributes match%s"):format(KIND(kind), via) }
   end
   local fix = fa.fix_cmd(where, args, link)
   if not cmd then
      what = "set " .. fa.describe(changes)
   end
   local after_st = {
      mode = args.mode or (st and st.mode), user = args.owner or (st and st.user),
      group = args.group or (st and st.group),
   }
   return {
      -- "would create the directory" under --check, "created the directory" once done
      changed = true, msg = "would " .. what .. via, done = (what:gsub("^(%a+)e ", "%1ed ")) .. via,
      diff = { path = where, before = before, after = describe(new_kind or kind, after_st, args, src) },
      cmd = cmd and fix and (cmd .. " && " .. fix) or cmd or fix,
   }
end

function M.apply(ctx, args, plan)
   local ok, err, code = fa.run(ctx.host, "file", args.path, plan.cmd)
   if not ok then
      return nil, err, code
   end
   return { msg = plan.done }
end

return M
