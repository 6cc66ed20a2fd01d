--- Archives: the raising facade over etcdrun.core.archive, plus a cache of
--- extracted trees.
--
-- archive.list(path, {name=}) -> { {path=, type=, size=, mode=, mtime=, link=?}, ... }
-- archive.extract(path, dest, {strip_components=0, include={...}, mode=, max_bytes=, max_entries=, name=})
--    -> { paths relative to dest }
-- archive.digests(path, {strip_components=0, include={...}, max_bytes=, max_entries=, name=})
--    -> { {path=, type="file"|"dir"|"symlink"|"hardlink", mode=, size=, sha256=?, link=?}, ... }
--    what extract with the same options would write (same selection, path
--    rules, refusals and limits), each file's data streamed through SHA-256
--    (holes as zeros; a hard link carries its file's digest); it reads the
--    archive and writes nothing, so it also runs under --check.
-- archive.tree(path, {strip_components=0, include={...}, max_bytes=, readonly=false})
--    -> { dir = <extracted tree>|nil, entries = { {rel=, type="file"|"dir"|"link", mode=, sha256=?}, ... } }
--    the selected members extracted once per machine into a cache (below);
--    entries include the parents of every member, parents first. readonly:
--    a tree not cached yet is described by digests, without dir.
-- Each raises "archive.<fn>: <detail> (<archive>)" on failure; the
-- non-raising versions (nil, err, code) are in archive.try. Extraction
-- refuses (EUNSAFE) any entry that would land outside dest; see the
-- headers of runtime/archive.c and runtime/archive-extract.c for the exact rules.
--
-- The cache: $XDG_CACHE_HOME/etcdrun/unarchive/trees/<key>/ holds the
-- selected members and a manifest of their digests, keyed by the archive's
-- sha256 and the selection; an archive's digest is remembered by (path,
-- size, mtime) in .../digests/. A re-run neither decompresses nor hashes the
-- archive again. Staging directories of killed runs (.partial-<pid>-*) are
-- swept once per process.
local core = require("etcdrun.core.archive")
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")

local M = require("etcdrun.raising").wrap(core, "archive")

--- The cache's root directory.
---@return string
function M.cache_dir()
   local base = os.getenv("XDG_CACHE_HOME")
   if not base or base == "" then
      base = (os.getenv("HOME") or "/tmp") .. "/.cache"
   end
   return base .. "/etcdrun/unarchive"
end

local memo = {}
local swept = {}

local function archive_sha256(path, readonly)
   local st, err, code = fs.stat(path)
   if not st then
      return nil, err, code
   end
   local file = ("%s/digests/%s"):format(M.cache_dir(), fs.sha256(path))
   local m = memo[path]
   if not m then
      local size, mtime, sha = (fs.read(file) or ""):match("^(%d+) (%d+) (%x+)")
      m = sha and { size = tonumber(size), mtime = tonumber(mtime), sha = sha } or nil
   end
   if m and m.size == st.size and m.mtime == st.mtime then
      memo[path] = m
      return m.sha
   end
   local sha
   sha, err, code = fs.sha256_file(path)
   if not sha then
      return nil, err, code
   end
   memo[path] = { size = st.size, mtime = st.mtime, sha = sha }
   if not readonly and fs.mkdir(M.cache_dir() .. "/digests", { mode = "0700" }) ~= nil then
      fs.write(file, ("%d %d %s\n"):format(st.size, st.mtime, sha), { mode = "0600" })
   end
   return sha
end

local function load_manifest(dir)
   local ok, entries = pcall(cjson.decode, fs.read(dir .. "/.etcdrun-manifest.json") or "")
   if ok and type(entries) == "table" then
      return { dir = dir, entries = entries }
   end
end

-- Every path and its parents (a member's directories are placed too, even
-- when the selection did not name them), sorted, described by describe(rel).
local function with_parents(paths, describe)
   local seen, all = {}, {}
   for _, rel in ipairs(paths) do
      local p = ""
      for part in (rel .. "/"):gmatch("([^/]+)/") do
         p = p == "" and part or (p .. "/" .. part)
         if not seen[p] then
            seen[p] = true
            all[#all + 1] = p
         end
      end
   end
   table.sort(all)
   local entries = {}
   for i, rel in ipairs(all) do
      entries[i] = describe(rel)
   end
   return entries
end

local KINDS = { file = "file", hardlink = "file", dir = "dir", symlink = "link" }

-- Not cached, nothing to be written: the tree extraction would make, from digests.
local function preview(path, sel)
   local list, err, code = core.digests(path, sel)
   if not list then
      return nil, err, code
   end
   local by, paths = {}, {}
   for i, d in ipairs(list) do
      by[d.path], paths[i] = d, d.path
   end
   return { entries = with_parents(paths, function(rel)
      local d = by[rel] or { type = "dir", mode = 493 } -- a parent extraction makes
      return { rel = rel, type = KINDS[d.type], mode = d.mode, sha256 = d.sha256 }
   end) }
end

local function tree(path, opts)
   opts = opts or {}
   local sel = { strip_components = opts.strip_components or 0, include = opts.include, name = path,
      max_bytes = opts.max_bytes }
   local sha, err, code = archive_sha256(path, opts.readonly)
   if not sha then
      return nil, err, code
   end
   local key = table.concat({ sha, sel.strip_components, table.concat(sel.include or {}, "\0"),
      sel.max_bytes or 4294967296 }, "|")
   local trees = M.cache_dir() .. "/trees"
   local final = trees .. "/" .. fs.sha256(key)
   local t = load_manifest(final)
   if t then
      return t
   elseif opts.readonly then
      return preview(path, sel)
   end
   if not swept[trees] then -- staging directories of runs that were killed (their pid is gone)
      swept[trees] = true
      fs.sweep(trees, ".partial-")
   end
   if fs.mkdir(trees, { mode = "0700" }) == nil then
      return nil, ("archive.tree: cannot create the cache %s"):format(trees), "EIO"
   end
   local dir
   dir, err, code = fs.mkdtemp(trees .. "/.partial-")
   if not dir then
      return nil, err, code
   end
   local paths
   paths, err, code = core.extract(path, dir, sel)
   local entries = paths and with_parents(paths, function(rel)
      local st = fs.stat(dir .. "/" .. rel, { follow = false }) or {}
      return { rel = rel, type = st.type, mode = (st.mode or 0) & 4095,
         sha256 = st.type == "file" and fs.sha256_file(dir .. "/" .. rel) or nil }
   end)
   if entries and fs.write(dir .. "/.etcdrun-manifest.json", cjson.encode(entries), { mode = "0600" })
      and os.rename(dir, final) then -- published atomically
      return { dir = final, entries = entries }
   end
   fs.remove(dir, { recursive = true })
   if not paths then
      return nil, err, code
   end
   t = load_manifest(final) -- a concurrent run that won the race is as good
   if t then
      return t
   end
   return nil, ("archive.tree: cannot publish the extraction of %s in %s"):format(path, final), "EIO"
end

M.try = setmetatable({ tree = tree }, { __index = core })

function M.tree(path, opts)
   local t, err = tree(path, opts)
   if not t then
      error(err, 2)
   end
   return t
end

return M
