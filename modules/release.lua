-- release: files of a software release (one per architecture, say) fetched
-- once onto the controller and verified against the release's checksum list
-- (SHA256SUMS) before anything uses them. gather reads the list and the
-- digests of the copies already in the cache; plan says which are missing or
-- differ; apply downloads those (a mismatch fails before any node is touched).
-- The result's `paths` maps each file name to its path on the controller,
-- also under --check, where nothing is fetched and a missing file is what an
-- unarchive of it reports as "would extract".
local fs = require("etcdrun.fs")
local http = require("etcdrun.http")

local M = {
   doc = "Fetch release files (e.g. one per architecture) into the controller's cache, verified against SHA256SUMS.",
   args = {
      base_url = { type = "string", required = true, doc = "the release directory (http(s):// or file://)" },
      files = { type = "list", elements = "string", required = true, doc = "file names in that directory" },
      sums = { type = "string", default = "SHA256SUMS", doc = "the checksum list's name in that directory" },
      cache = { type = "path", absolute = true, doc = "where the files are kept (default ~/.cache/etcdrun/releases)" },
      timeout = { type = "integer", default = 600, doc = "seconds allowed per file" },
   },
   examples = [[controller "etcd release" { release = {
   base_url = "https://github.com/etcd-io/etcd/releases/download/v3.5.17",
   files = { "etcd-v3.5.17-linux-amd64.tar.gz" } }, register = "release" }]],
}

local function cache_of(args)
   return args.cache or ((http.cache_dir() or "/tmp/etcdrun-cache") .. "/releases")
end

local function base(args)
   return (args.base_url:gsub("/+$", ""))
end

function M.gather(_, args)
   local sums_url = base(args) .. "/" .. args.sums
   local r, err, code = http.try.request({ url = sums_url, follow = true, timeout = 60, max_bytes = 4 * 1024 * 1024 })
   if not r then
      return nil, ("release: %s"):format(err), code
   end
   if r.status >= 400 then
      return nil, ("release: HTTP %d fetching %s"):format(r.status, http.redact_urls(sums_url)), "EHTTP"
   end
   local state = { sums = {}, have = {}, cache = cache_of(args) }
   for line in r.body:gmatch("[^\r\n]+") do
      local hex, file = line:match("^(%x+)%s+%*?(.-)%s*$")
      if hex and #hex == 64 then
         state.sums[(file:gsub("^%./", ""))] = hex:lower()
      end
   end
   for _, f in ipairs(args.files) do
      state.have[f] = fs.try.stat(state.cache .. "/" .. f) and fs.try.sha256_file(state.cache .. "/" .. f) or false
   end
   return state
end

function M.plan(state, args)
   local paths, fetch, cached = {}, {}, {}
   for _, f in ipairs(args.files) do
      paths[f] = state.cache .. "/" .. f
      local want = state.sums[f]
      if not want then
         return { failed = true, msg = ("release: no sha256 for %s in %s/%s"):format(f,
            http.redact_urls(base(args)), args.sums) }
      end
      if state.have[f] == want then
         cached[#cached + 1] = f
      else
         fetch[#fetch + 1] = f
      end
   end
   local result = { paths = paths, cache = state.cache }
   if #fetch == 0 then
      return { changed = false, msg = table.concat(cached, ", ") .. " (cached, sha256 verified)", result = result }
   end
   return { changed = true, msg = "would download " .. table.concat(fetch, ", "), result = result, fetch = fetch,
      diff = { path = state.cache, before = table.concat(cached, "\n") .. (#cached > 0 and "\n" or ""),
         after = table.concat(args.files, "\n") .. "\n" } }
end

function M.apply(_, args, plan)
   local made, merr, mcode = fs.try.mkdir(plan.result.cache, { mode = 448, parents = true }) -- 0700
   if made == nil and mcode ~= "EEXIST" then
      return nil, merr, mcode
   end
   local done = {}
   for _, f in ipairs(plan.fetch) do
      local r, err, code = http.try_download({ url = base(args) .. "/" .. f, sums_url = base(args) .. "/" .. args.sums,
         sums_name = f, dest = plan.result.paths[f], cache = true, timeout = args.timeout })
      if not r then
         return nil, err, code
      end
      done[#done + 1] = f
   end
   return { msg = "downloaded and verified " .. table.concat(done, ", ") }
end

return M
