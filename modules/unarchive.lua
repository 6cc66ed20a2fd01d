-- unarchive: members of an archive on the controller, placed on the host.
--
-- gather extracts the archive on the controller (archive.tree: libarchive,
-- with its path-safety rules) into a cache shared by every host and run, and
-- reads in one command the digest, mode and owner of every selected member
-- already on the host; under --check, where the controller writes nothing, a
-- tree not cached yet is described by archive.digests instead (read, hashed,
-- not unpacked). plan pushes only members whose content differs (atomic
-- writes) and fixes in place those whose mode or owner differ. The host
-- needs neither tar nor the archive. Regular files and directories are
-- placed; symbolic links in the archive are not (result.skipped).
local archive = require("etcdrun.archive")
local fs = require("etcdrun.fs")
local shell = require("etcdrun.shell")
local fa = require("etcdrun.fileattrs")

local q = shell.quote

local M = {
   examples = [[task "etcd binaries" { unarchive = { src = "etcd-v3.5.17-linux-amd64.tar.gz", dest = "/opt/etcd/bin",
   include = { "*/etcd", "*/etcdctl" }, strip_components = 1, mode = "0755" } }]],
   doc = "Extract selected members of an archive on the controller onto the host, "
      .. "pushing only files whose digest differs.",
   args = {
      src = { type = "path", required = true,
         doc = "archive on the controller (tar, tar.gz/xz/bz2/zst, zip); relative to the playbook" },
      dest = { type = "path", required = true, absolute = true, doc = "directory on the host (created if missing)" },
      strip_components = { type = "integer", default = 0, doc = "leading path components to drop, like tar's" },
      include = { type = "list", elements = "string",
         doc = "members to place (paths after stripping, or fnmatch patterns); default all" },
      mode = { type = "mode", doc = "mode for every placed file (default: the archive's)" },
      dir_mode = { type = "mode", default = "0755", doc = "mode of dest when it has to be created" },
      owner = { type = "string", doc = "owner of placed files and created directories" },
      group = { type = "string", doc = "group of placed files and created directories" },
      max_bytes = { type = "integer", default = 4294967296,
         doc = "refuse an archive whose files expand beyond this many bytes (apparent size: a sparse "
            .. "file counts its declared size); default 4 GiB" },
   },
}

-- One round trip: what the host has at each member's path, by index:
-- {type = "F"|"D"|"L"|"O", sha256=, mode=, user=, group=}; false when dest is missing.
-- Digests of placed files are remembered on the node, in the remote user's
-- ~/.cache/etcdrun/unarchive/<hash of dest>, against each file's size, mtime,
-- inode and ctime in nanoseconds (git's index does the same): an unchanged
-- file is not hashed again, and any write to it moves its ctime and makes it
-- hashed again. Check mode only reads that cache.
local function digests_file(dest)
   return '"$HOME/.cache/etcdrun/unarchive/' .. fs.sha256(dest):sub(1, 32) .. '"'
end
local STAT_KEY = "%s.%.9Y.%i.%.9Z"

-- Every selected file holds the archive's content: remember its digest against
-- its current stat, so the next look needs no hashing. A cache: failure to
-- write it changes nothing but speed.
local function remember_digests(h, dest, entries)
   local lines = {}
   for _, e in ipairs(entries) do
      if e.type == "file" then
         lines[#lines + 1] = ("f=%s; printf '%%s\\t%%s\\t%%s\\n' \"$f\" \"$(stat -c '%s' -- \"$f\")\" %s")
            :format(q("./" .. e.rel), STAT_KEY, e.sha256)
      end
   end
   local c = digests_file(dest)
   h:exec(("c=%s; mkdir -p \"${c%%/*}\" && cd -- %s && { %s; } > \"$c.tmp\" && mv -f \"$c.tmp\" \"$c\"")
      :format(c, q(dest), table.concat(lines, "; ")))
end

local function host_state(h, dest, entries)
   local names = {}
   for i, e in ipairs(entries) do
      names[i] = q("./" .. e.rel)
   end
   local cmd = "cd -- " .. q(dest) .. " 2>/dev/null || exit 3; c=" .. digests_file(dest)
      .. '; [ -f "$c" ] || c=/dev/null;'
      .. " i=0; for f in " .. table.concat(names, " ")
      .. [[; do i=$((i+1)); if [ -L "$f" ]; then echo "$i|L"; elif [ -d "$f" ]; then echo "$i|D";]]
      .. [[ elif [ -f "$f" ]; then k=$(stat -c ']] .. STAT_KEY .. [[' -- "$f");]]
      .. [[ s=$(awk -F'\t' -v f="$f" -v k="$k" '$1 == f && $2 == k { print $3; exit }' "$c");]]
      .. [[ w=c; [ -n "$s" ] || { w=h; s=$(sha256sum < "$f") || exit 1; };]]
      .. [[ printf '%s|F|%s|%s|%s\n' "$i" "$w" "${s%% *}" "$(]] .. fa.stat_p(false, "f") .. [[)";]]
      .. [[ elif [ -e "$f" ]; then echo "$i|O"; fi; done]]
   local r, err, code = h:exec(cmd)
   if not r then
      return nil, err, code
   end
   if r.status == 3 then
      return false
   end
   if r.status ~= 0 then
      return nil, ("unarchive: cannot read %s:%s: %s"):format(h.name, dest, (r.stderr:gsub("%s+$", ""))), "EREMOTE"
   end
   local state = {}
   for line in r.stdout:gmatch("[^\n]+") do
      local i, t, rest = line:match("^(%d+)|(%u)|?(.*)$")
      if i then
         local s = { type = t }
         if t == "F" then
            local how, sha, stat = rest:match("^([ch])|(%x+)|(.*)$")
            local st = fa.parse_stat(stat) or {}
            s.sha256, s.mode, s.uid, s.gid, s.user, s.group = sha, st.mode, st.uid, st.gid, st.user, st.group
            s.hashed = how == "h"
         end
         state[tonumber(i)] = s
      end
   end
   return state
end

--- The archive's tree (cached, else extracted into the cache; under --check
--- described by archive.digests) and what the host has of it: {src=, dest=, tree=, host = false |
--- {[i] = host state of tree.entries[i]}}, or {src=, missing = true}.
function M.gather(ctx, args)
   local src = args.src:sub(1, 1) == "/" and args.src or ctx.path(args.src)
   if not fs.try.stat(src) then
      return { src = src, missing = true, controller = ctx.controller.name }
   end
   local tree, err, code = archive.try.tree(src, { strip_components = args.strip_components,
      include = args.include, max_bytes = args.max_bytes, readonly = ctx.check })
   if not tree then
      return nil, "unarchive: " .. err, code
   end
   local state = { src = src, dest = args.dest:gsub("(.)/+$", "%1"), tree = tree }
   state.host, err, code = host_state(ctx.host, state.dest, tree.entries)
   if state.host == nil then
      return nil, err, code
   end
   -- up to date but hashed the slow way: fill the node's digest cache (not under --check)
   local hashed = false
   for _, have in pairs(state.host or {}) do
      hashed = hashed or have.hashed
   end
   if hashed and not ctx.check and not M.plan(state, args, { host = ctx.host.name }).changed then
      remember_digests(ctx.host, state.dest, tree.entries)
   end
   return state
end

local function mode_line(e, mode)
   return ("%s  %s  %04o"):format(e.rel, e.sha256 and e.sha256:sub(1, 16) or "(dir)", mode)
end

local function refuse(fmt, host, path)
   return { failed = true, msg = fmt:format(host, path), result = { code = "EEXIST" } }
end

--- Per member: a directory missing is made, a file whose digest differs is
--- pushed, one whose mode or owner differ is fixed; links are skipped.
function M.plan(state, args, opts)
   if state.missing then
      if opts.check then -- an earlier task (a download) that would make it did not run
         return { changed = true,
            msg = ("would extract %s: it does not exist yet (made by an earlier task)"):format(state.src) }
      end
      return { failed = true, msg = ("unarchive: archive not found (%s:%s)"):format(state.controller, state.src),
         result = { code = "ENOENT" } }
   end
   local dest, host = state.dest, state.host
   local plan = { dest = dest, mkdest = host == false, dirs = {}, push = {}, fix = {}, tree = state.tree }
   local files, skipped, changed, before, after = {}, {}, {}, {}, {}
   for i, e in ipairs(state.tree.entries) do
      local have = host and host[i]
      local path = dest .. "/" .. e.rel
      if e.type == "dir" then
         if have and have.type ~= "D" then
            return refuse("unarchive: %s:%s exists and is not a directory", opts.host, path)
         elseif not have then
            plan.dirs[#plan.dirs + 1] = e
            after[#after + 1] = e.rel .. "/"
         end
      elseif e.type == "file" then
         files[#files + 1] = path
         local mode = args.mode or e.mode
         if have and have.type == "D" then
            return refuse("unarchive: %s:%s is a directory, the archive has a file there", opts.host, path)
         end
         if not have or have.sha256 ~= e.sha256 then
            plan.push[#plan.push + 1] = { e = e, mode = mode }
            changed[#changed + 1] = path
            if have and have.sha256 then
               before[#before + 1] = ("%s  %s  %04o"):format(e.rel, have.sha256:sub(1, 16), have.mode)
            end
            after[#after + 1] = mode_line(e, mode)
         else
            local ch = fa.changes(have, { mode = mode, owner = args.owner, group = args.group })
            if #ch > 0 then
               plan.fix[#plan.fix + 1] = { path = path, mode = mode }
               changed[#changed + 1] = path
               before[#before + 1] = e.rel .. ": " .. fa.describe(ch)
               after[#after + 1] = mode_line(e, mode)
            end
         end
      else
         skipped[#skipped + 1] = e.rel
      end
   end
   plan.result = { files = files, changed_files = changed, skipped = #skipped > 0 and skipped or nil, dest = dest }
   if not plan.mkdest and #plan.dirs == 0 and #changed == 0 then
      plan.changed, plan.msg = false, ("%d files up to date"):format(#files)
      return plan
   end
   plan.changed = true
   plan.msg = ("would place %d of %d files in %s"):format(#changed, #files, dest)
   plan.diff = { path = dest, before = #before > 0 and (table.concat(before, "\n") .. "\n") or "",
      after = table.concat(after, "\n") .. "\n" }
   return plan
end

function M.apply(ctx, args, plan)
   local h = ctx.host
   local own = { owner = args.owner, group = args.group }
   local ok, err, code = true, nil, nil
   if not plan.tree.dir then
      return nil, "unarchive: the archive was not extracted on the controller", "EINVAL"
   end
   if plan.mkdest then
      ok, err, code = h:mkdir(plan.dest, { mode = args.dir_mode, owner = own.owner, group = own.group })
   end
   for _, e in ipairs(plan.dirs) do
      if not ok then
         break
      end
      ok, err, code = h:mkdir(plan.dest .. "/" .. e.rel, { mode = e.mode, owner = own.owner, group = own.group })
   end
   for _, p in ipairs(plan.push) do
      if not ok then
         break
      end
      ok, err, code = h:put_file(plan.tree.dir .. "/" .. p.e.rel, plan.dest .. "/" .. p.e.rel,
         { mode = p.mode, owner = own.owner, group = own.group })
   end
   for _, f in ipairs(plan.fix) do
      if not ok then
         break
      end
      ok, err, code = fa.fix(h, "unarchive", f.path, { mode = f.mode, owner = own.owner, group = own.group })
   end
   if not ok then
      return nil, err, code
   end
   remember_digests(h, plan.dest, plan.tree.entries)
   return { msg = ("placed %d of %d files in %s"):format(#plan.result.changed_files, #plan.result.files, plan.dest) }
end

return M
