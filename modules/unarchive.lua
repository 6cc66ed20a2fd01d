-- unarchive: members of an archive on the controller, placed on the host.
--
-- The archive is extracted on the controller (etcdrun.archive: libarchive,
-- with its path-safety rules) into a private temporary directory, once per
-- process for a given archive content and selection, so every host of a run
-- shares one extraction. One command on the host then reports the digest,
-- mode and owner of every selected member already there, and only members
-- whose content differs are pushed (atomic writes); members whose content
-- matches but whose mode or owner differ are fixed in place. The host needs
-- neither tar nor the archive.
--
-- Regular files and directories are placed; symbolic links in the archive
-- are not recreated (they are listed in result.skipped).
local archive = require("etcdrun.archive")
local fs = require("etcdrun.fs")
local shell = require("etcdrun.shell")
local fa = require("etcdrun.fileattrs")

local q = shell.quote

local M = {
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

-- Extractions are cached on the controller across runs, next to the download
-- cache: $XDG_CACHE_HOME/etcdrun/unarchive/trees/<key>/ holds the selected
-- members and a manifest of their digests, keyed by the archive's sha256 and
-- the selection; an archive's digest is remembered by (path, size, mtime).
-- A re-run then neither decompresses nor hashes the archive again.
local cjson = require("cjson")

local function cache_root()
   local base = os.getenv("XDG_CACHE_HOME")
   if not base or base == "" then
      base = (os.getenv("HOME") or "/tmp") .. "/.cache"
   end
   return base .. "/etcdrun/unarchive"
end

local digests = {}
local swept = {}

local function archive_sha256(path)
   local st, err, code = fs.try.stat(path)
   if not st then
      return nil, err, code
   end
   local memo_file = ("%s/digests/%s"):format(cache_root(), fs.sha256(path))
   local memo = digests[path]
   if not memo then
      local size, mtime, sha = (fs.try.read(memo_file) or ""):match("^(%d+) (%d+) (%x+)")
      memo = sha and { size = tonumber(size), mtime = tonumber(mtime), sha = sha } or nil
   end
   if memo and memo.size == st.size and memo.mtime == st.mtime then
      digests[path] = memo
      return memo.sha
   end
   local sha
   sha, err, code = fs.try.sha256_file(path)
   if not sha then
      return nil, err, code
   end
   digests[path] = { size = st.size, mtime = st.mtime, sha = sha }
   if fs.try.mkdir(cache_root() .. "/digests", { mode = 448 }) ~= nil then
      fs.try.write(memo_file, ("%d %d %s\n"):format(st.size, st.mtime, sha), { mode = 384 })
   end
   return sha
end

local function load_manifest(dir)
   local text = fs.try.read(dir .. "/.etcdrun-manifest.json")
   local ok, entries = pcall(cjson.decode, text or "")
   if ok and type(entries) == "table" then
      return { dir = dir, entries = entries }
   end
end

-- Extract (once) and describe the selected members:
-- {dir=, entries = {{rel=, type="file"|"dir"|"link", sha256=, mode=}, ...}}
local function extract(src, args, readonly)
   local sha, err, code = archive_sha256(src)
   if not sha then
      return nil, err, code
   end
   local key = table.concat({ sha, args.strip_components, table.concat(args.include or {}, "\0"),
      args.max_bytes }, "|")
   local trees = cache_root() .. "/trees"
   local final = trees .. "/" .. fs.sha256(key)
   if not readonly and not swept[trees] then
      -- staging directories of runs that were killed (their pid is gone)
      swept[trees] = true
      fs.try.sweep(trees, ".partial-")
   end
   local tree = load_manifest(final)
   if tree then
      return tree
   end
   if readonly then -- check mode: the controller's cache is not written
      return false
   end
   if fs.try.mkdir(trees, { mode = 448 }) == nil then
      return nil, ("unarchive: cannot create the cache %s"):format(trees), "EIO"
   end
   local dir
   dir, err, code = fs.try.mkdtemp(trees .. "/.partial-")
   if not dir then
      return nil, err, code
   end
   local paths
   paths, err, code = archive.try.extract(src, dir, { strip_components = args.strip_components,
      include = args.include, name = src, max_bytes = args.max_bytes })
   if not paths then
      fs.try.remove(dir, { recursive = true })
      return nil, "unarchive: " .. err, code
   end
   -- a selected member's parent directories are placed too, even when the
   -- selection did not name them (include = {"bin/etcd"} needs bin/)
   local seen = {}
   for _, rel in ipairs(paths) do
      seen[rel] = true
   end
   for i = 1, #paths do
      for parent in paths[i]:gmatch("()/") do
         local p = paths[i]:sub(1, parent - 1)
         if not seen[p] then
            seen[p] = true
            paths[#paths + 1] = p
         end
      end
   end
   table.sort(paths) -- parents before children
   local entries = {}
   for _, rel in ipairs(paths) do
      local st = fs.stat(dir .. "/" .. rel, { follow = false })
      local e = { rel = rel, type = st.type, mode = st.mode & 4095 }
      if st.type == "file" then
         e.sha256 = fs.sha256_file(dir .. "/" .. rel)
      end
      entries[#entries + 1] = e
   end
   fs.write(dir .. "/.etcdrun-manifest.json", cjson.encode(entries), { mode = 384 })
   -- publish atomically; a concurrent run that won the race is as good
   if not os.rename(dir, final) then
      fs.try.remove(dir, { recursive = true })
      tree = load_manifest(final)
      if tree then
         return tree
      end
      return nil, ("unarchive: cannot publish the extraction of %s in %s"):format(src, final), "EIO"
   end
   return { dir = final, entries = entries }
end

-- One round trip: what the host has at each member's path, by index:
-- {type = "F"|"D"|"L"|"O", sha256=, mode=, user=, group=}; nil when dest is missing.
-- Digests of placed files are remembered on the node, in the remote user's
-- ~/.cache/etcdrun/unarchive/<hash of dest>, against each file's size, mtime,
-- inode and ctime in nanoseconds (git's index does the same): an unchanged
-- file is not hashed again, and any write to it moves its ctime and makes it
-- hashed again. Only apply writes the cache, so check mode reads only.
local function digests_file(dest)
   return '"$HOME/.cache/etcdrun/unarchive/' .. fs.sha256(dest):sub(1, 32) .. '"'
end
local STAT_KEY = "%s.%.9Y.%i.%.9Z"

-- Every selected file holds the archive's content: remember its digest against
-- its current stat, so the next check needs no hashing. A cache: failure to
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
      .. [[ printf '%s|F|%s|%s|%s\n' "$i" "$w" "${s%% *}" "$(stat -c '%a|%U|%G' -- "$f")";]]
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
            local how, sha, mode, user, group = rest:match("^([ch])|(%x+)|(%d+)|([^|]*)|(.*)$")
            s.sha256, s.mode, s.user, s.group = sha, tonumber(mode, 8), user, group
            s.hashed = how == "h"
         end
         state[tonumber(i)] = s
      end
   end
   return state
end

local function mode_line(e, mode)
   return ("%s  %s  %04o"):format(e.rel, e.sha256 and e.sha256:sub(1, 16) or "(dir)", mode)
end

function M.check(ctx, args)
   local src = args.src:sub(1, 1) == "/" and args.src or ctx.path(args.src)
   if not fs.try.stat(src) then
      if ctx.check then
         return { changed = true,
            msg = ("would extract %s: it does not exist yet (made by an earlier task)"):format(src) }
      end
      return nil, ("unarchive: archive not found (%s:%s)"):format(ctx.controller.name, src), "ENOENT"
   end
   local tree, err, code = extract(src, args, ctx.check)
   if tree == false then
      return { changed = true, msg = ("would extract %s into %s (not unpacked on the controller yet; check mode"
         .. " writes nothing)"):format(src, args.dest) }
   end
   if not tree then
      return nil, err, code
   end
   local h, dest = ctx.host, args.dest:gsub("(.)/+$", "%1")
   local state
   state, err, code = host_state(h, dest, tree.entries)
   if state == nil then
      return nil, err, code
   end
   local plan = { dest = dest, mkdest = state == false, dirs = {}, push = {}, fix = {}, tree = tree }
   local files, skipped, changed, before, after = {}, {}, {}, {}, {}
   for i, e in ipairs(tree.entries) do
      local have = state and state[i]
      local path = dest .. "/" .. e.rel
      if e.type == "dir" then
         if have and have.type ~= "D" then
            return nil, ("unarchive: %s:%s exists and is not a directory"):format(h.name, path), "EEXIST"
         elseif not have then
            plan.dirs[#plan.dirs + 1] = e
            after[#after + 1] = e.rel .. "/"
         end
      elseif e.type == "file" then
         files[#files + 1] = path
         local mode = args.mode or e.mode
         if have and have.type == "D" then
            return nil, ("unarchive: %s:%s is a directory, the archive has a file there"):format(h.name, path), "EEXIST"
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
   local result = { files = files, changed_files = changed, skipped = #skipped > 0 and skipped or nil, dest = dest }
   plan.result = result
   if not plan.mkdest and #plan.dirs == 0 and #changed == 0 then
      -- up to date but hashed the slow way: fill the digest cache (not in --check)
      local hashed = false
      for _, have in pairs(state or {}) do
         hashed = hashed or have.hashed
      end
      if hashed and not ctx.check then
         remember_digests(h, dest, tree.entries)
      end
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
