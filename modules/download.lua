-- download: a file from a URL onto the host, fetched by the controller.
--
-- The expected sha256 is known before anything moves (given, or looked up in
-- a SHA256SUMS file). The host's copy is compared by digest first: when it
-- already matches, nothing is fetched at all. Otherwise the controller
-- fetches the URL once into its content-addressed cache (etcdrun.http),
-- verifies it, and only then pushes it to the host (atomic write): a
-- checksum mismatch fails before the host is touched, and nodes need no
-- internet access. Every host of a run that needs the same file is served
-- from one staged copy.
--
-- gather fetches nothing but the (small) SHA256SUMS list when sums_url is
-- used, reads the host's digest and looks the file up in the cache; plan
-- decides whether it would be fetched and pushed, only pushed (cached), or
-- left (then perhaps its attributes fixed); apply fetches, verifies, pushes.
local http = require("etcdrun.http")
local fs = require("etcdrun.fs")
local fa = require("etcdrun.fileattrs")

local M = {
   examples = [[task "etcd tarball" { download = {
   url = "https://github.com/etcd-io/etcd/releases/download/v3.5.17/etcd-v3.5.17-linux-amd64.tar.gz",
   sums_url = "https://github.com/etcd-io/etcd/releases/download/v3.5.17/SHA256SUMS",
   dest = "/var/cache/etcd.tar.gz", mode = "0644" } }]],
   doc = "Fetch a URL once on the controller (cached, sha256-verified) and push it to the host if its digest differs.",
   args = {
      url = { type = "string", required = true, doc = "http(s):// or file:// URL, fetched by the controller" },
      dest = { type = "path", required = true, absolute = true,
         doc = "file on the host (an existing directory gets the URL's file name)" },
      sha256 = { type = "string", doc = "expected sha256 (64 hex digits)" },
      sums_url = { type = "string", doc = "URL of a SHA256SUMS file listing the file's sha256" },
      sums_name = { type = "string", doc = "name to look up in sums_url (default: the URL's file name)" },
      mode = { type = "mode", default = "0644", doc = "file mode, an octal string" },
      owner = { type = "string", doc = "file owner" },
      group = { type = "string", doc = "file group" },
      cache = { type = "path", absolute = true, doc = "controller cache directory (default ~/.cache/etcdrun)" },
      timeout = { type = "integer", default = 600, doc = "seconds allowed for the whole fetch" },
   },
   one_of = { { "sha256", "sums_url" } },
   exclusive = { { "sha256", "sums_url" } },
}

-- Per process: SHA256SUMS bodies by URL (one request per run, not per
-- host), and verified staged copies by sha256 in one private directory,
-- removed when the process ends (the Lua state is closed).
local sums_seen = {}
local staged = setmetatable({}, {
   __gc = function(t)
      if t.dir then
         fs.try.remove(t.dir, { recursive = true })
      end
   end,
})

local function basename(url)
   return (url:gsub("[?#].*$", ""):match("([^/]*)$"))
end

local function expected_sha256(args)
   if args.sha256 then
      local hex = args.sha256:lower()
      if #hex ~= 64 or not hex:match("^%x+$") then
         return nil, "download: argument 'sha256' must be 64 hex digits", "EARGS"
      end
      return hex
   end
   local body = sums_seen[args.sums_url]
   if not body then
      local r, err, code = http.try.request({ url = args.sums_url, follow = true, timeout = 60,
         max_bytes = 4 * 1024 * 1024 })
      if not r then
         return nil, "download: " .. err, code
      end
      if r.status >= 400 then
         return nil, ("download: HTTP %d fetching the checksum list (%s)"):format(r.status, args.sums_url), "EHTTP"
      end
      body = r.body
      sums_seen[args.sums_url] = body
   end
   local name = args.sums_name or basename(args.url)
   for line in body:gmatch("[^\r\n]+") do
      local hex, file = line:match("^(%x+)%s+%*?(.-)%s*$")
      if hex and #hex == 64 and (file == name or file == "./" .. name) then
         return hex:lower()
      end
   end
   return nil, ("download: no sha256 for '%s' in %s"):format(name, args.sums_url), "ENOSUM"
end

local function cache_dir(args)
   return args.cache or http.cache_dir()
end

-- A verified local copy of the file with digest `sha`, fetched at most once
-- per process (and at most once per machine, through the cache).
local function stage(args, sha)
   if staged[sha] and fs.try.stat(staged[sha]) then
      return staged[sha]
   end
   if not staged.dir then
      local d, err, code = fs.try.mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/etcdrun-stage-")
      if not d then
         return nil, err, code
      end
      staged.dir = d
   end
   local dest = staged.dir .. "/" .. sha
   local r, err, code = http.try_download({ url = args.url, sha256 = sha, dest = dest,
      cache = cache_dir(args) or false, timeout = args.timeout, mode = 384 })
   if not r then
      return nil, err, code
   end
   staged[sha] = dest
   return dest
end

-- user:password in a URL is a secret: the output hides it wherever it shows
-- (URLs themselves are shown as scheme://***@host by every output).
local function mark_credentials(ctx, url)
   local userinfo = url and url:match("^%a[%w+.-]*://([^/?#@]*)@")
   if userinfo and userinfo ~= "" then
      ctx.secret(userinfo)
      local pass = userinfo:match(":(.+)$")
      if pass then
         ctx.secret(pass)
      end
   end
end

--- The expected sha256 (given, or from the checksum list: one small GET),
--- the destination's stat (an existing directory gets the URL's file name),
--- its sha256 when it is a file, and whether the controller's cache holds
--- the file already.
function M.gather(ctx, args)
   mark_credentials(ctx, args.url)
   mark_credentials(ctx, args.sums_url)
   local sha, err, code = expected_sha256(args)
   if not sha then
      return nil, err, code
   end
   local h, dest = ctx.host, args.dest
   local st, scode
   st, err, scode = h:stat(dest)
   if st and st.type == "dir" then
      dest = dest:gsub("/+$", "") .. "/" .. basename(args.url)
      st, err, scode = h:stat(dest)
   end
   if not st and scode ~= "ENOENT" then
      return nil, err, scode -- unreachable, permission denied: not "missing"
   end
   local cache = cache_dir(args)
   local state = { sha = sha, dest = dest, st = st,
      cache_path = cache and fs.try.stat(cache .. "/" .. sha) and (cache .. "/" .. sha) or nil }
   if st and st.type == "file" then
      state.have, err, code = h:sha256(dest)
      if not state.have then
         return nil, err, code
      end
   end
   return state
end

--- Up to date when the host's digest matches (then only attributes may
--- change); otherwise the file is pushed, fetched first unless cached.
function M.plan(state, args, opts)
   local sha, dest, st, have = state.sha, state.dest, state.st, state.have
   local result = { dest = dest, url = args.url, sha256 = sha, cache_path = state.cache_path }
   if st and st.type ~= "file" then
      return { failed = true, result = { code = "EEXIST" },
         msg = ("download: %s:%s exists and is not a regular file"):format(opts.host, dest) }
   end
   if have == sha then
      local ch = fa.changes(st, { mode = args.mode, owner = args.owner, group = args.group })
      if #ch > 0 then
         return { changed = true, msg = "up to date; " .. fa.describe(ch), attrs_only = true, dest = dest,
            result = result }
      end
      return { changed = false, msg = "up to date (sha256 matches)", result = result }
   end
   return {
      changed = true,
      msg = ("would %s %s to %s"):format(state.cache_path and "push (cached)" or "download and push", args.url, dest),
      diff = { path = dest, before = have and ("sha256 " .. have .. "\n") or "",
         after = ("sha256 %s\nmode %04o\n"):format(sha, args.mode) },
      dest = dest, sha = sha, existed = have ~= nil,
      result = result,
   }
end

function M.apply(ctx, args, plan)
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   if plan.attrs_only then
      local ok, err, code = fa.fix(ctx.host, "download", plan.dest, attrs)
      if not ok then
         return nil, err, code
      end
      return { msg = plan.msg }
   end
   -- fetch and verify first: a bad checksum stops here, before the host
   local src, err, code = stage(args, plan.sha)
   if not src then
      return nil, err, code
   end
   local ok
   ok, err, code = ctx.host:put_file(src, plan.dest, attrs)
   if not ok then
      return nil, err, code
   end
   local cache = cache_dir(args)
   return { msg = (plan.existed and "replaced " or "pushed ") .. plan.dest,
      cache_path = cache and (cache .. "/" .. plan.sha) or nil }
end

return M
