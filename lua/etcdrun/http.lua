--- HTTP: the raising facade over etcdrun.core.http, plus the download policy.
--
-- `fetch` and `request` are the core functions (raising on failure; the
-- non-raising originals are in `http.try`). `download` adds what a
-- release download needs on top of `fetch`:
--   * the sha256 is known before anything is fetched: given, or looked up
--     by file name in a SHA256SUMS file (`<hex>  <name>` or `<hex> *<name>`);
--   * a content-addressed cache (files named by their sha256) so that an
--     artifact is fetched once per machine; a cached copy is re-hashed on
--     every use and dropped if it no longer matches;
--   * atomic placement: the bytes go to a temporary file next to `dest`,
--     are verified and fsync'ed, then renamed over `dest`; a failed or
--     mismatched download leaves `dest` untouched and no temporary file;
--   * retries with exponential backoff on network errors, timeouts and
--     HTTP 5xx/408/429, never on other 4xx, TLS or local errors; a
--     checksum mismatch is retried once (a mirror caught mid-update or a
--     corrupted transfer), then fails with ECHECKSUM.
-- Proxy environment variables apply as libcurl applies them.
local core = require("etcdrun.core.http")
local fs = require("etcdrun.core.fs")

local M = require("etcdrun.raising").wrap(core, "http")

local RETRYABLE = {
   ECONNREFUSED = true,
   ECONNRESET = true,
   ETIMEDOUT = true,
   ERESOLVE = true,
   ECURL = true,
}

local function retryable(code, status)
   if code == "EHTTP" then
      return status ~= nil and (status >= 500 or status == 408 or status == 429)
   end
   return RETRYABLE[code] == true
end

local DOWNLOAD_OPTS = {
   url = "string",
   dest = "string",
   sha256 = "string",
   sums_url = "string",
   sums_name = "string",
   cache = "any",
   retries = "number",
   retry_delay = "number",
   connect_timeout = "number",
   timeout = "number",
   stall_timeout = "number",
   mode = "any", -- "0644" or an integer: checked by the core
   progress = "boolean",
   insecure = "boolean",
   ca = "string",
   name = "string",
}

local function fail(msg, code)
   return nil, "http.download: " .. msg, code
end

-- The core names its own op; a download reports as http.download.
local function rename_op(msg)
   return (msg:gsub("^http%.%a+: ", "http.download: "))
end

--- Text with the credentials of every URL in it hidden:
--- scheme://user:pass@host -> scheme://***@host (the core shows URLs the
--- same way). Output redaction (etcdrun.output) applies it to everything
--- printed, so no caller has to remember.
---@param text string
---@return string
function M.redact_urls(text)
   if not text:find("://", 1, true) then
      return text
   end
   -- userinfo holds no whitespace, quotes or brackets: stop at them, so a
   -- later '@' on the same line is not taken for the end of one
   return (text:gsub("(%f[%w][%a][%w+.-]*://)[^/?#@%s\"'<>%[%]]*@", "%1***@"))
end

-- Credentials in a URL never reach a message.
local function shown(url)
   return M.redact_urls(url)
end

local function basename(path)
   return path:match("([^/]*)$")
end

--- Default cache directory: $XDG_CACHE_HOME/etcdrun or ~/.cache/etcdrun.
---@return string|nil
function M.cache_dir()
   local xdg = os.getenv("XDG_CACHE_HOME")
   if xdg and xdg:sub(1, 1) == "/" then -- the spec says: ignore relative values
      return xdg .. "/etcdrun"
   end
   local home = os.getenv("HOME")
   if home and home ~= "" then
      return home .. "/.cache/etcdrun"
   end
   return nil
end

-- A temporary name next to path (".NAME.etcdrun-<pid>-XXXXXX"), created
-- exclusively by fetch; the ones a killed run left there are removed first.
local function temp_near(path)
   return fs.tempname(path)
end

local function file_url(path)
   return "file://" .. path:gsub("[^%w%-%._~/]", function(c)
      return string.format("%%%02X", c:byte())
   end)
end

-- Run attempt() up to 1 + retries times while it fails retryably.
local function with_retries(o, attempt)
   local delay = o.retry_delay
   local res, err, code, status
   for i = 1, o.retries + 1 do
      res, err, code, status = attempt()
      if res ~= nil or i > o.retries or not retryable(code, status) then
         break
      end
      local ok, serr, scode = core.sleep(delay)
      if not ok then
         return nil, serr, scode
      end
      delay = math.min(delay * 2, 60)
   end
   return res, err, code, status
end

local function fetch_opts(o, extra)
   local t = {
      connect_timeout = o.connect_timeout,
      timeout = o.timeout,
      stall_timeout = o.stall_timeout,
      insecure = o.insecure,
      ca = o.ca,
      exclusive = true,
   }
   for k, v in pairs(extra or {}) do
      t[k] = v
   end
   return t
end

-- The expected digest: given, or the line for name in the SHA256SUMS file.
local function expected_sha256(o)
   if o.sha256 then
      local hex = o.sha256:lower()
      if not hex:match("^%x+$") or #hex ~= 64 then
         error("http.download: option 'sha256' must be 64 hex digits", 3)
      end
      return hex
   end
   local name = o.sums_name or basename(o.url:gsub("[?#].*$", ""))
   local r, err, code = with_retries(o, function()
      local res, e, c = core.request({
         url = o.sums_url,
         connect_timeout = o.connect_timeout,
         timeout = math.min(o.timeout, 60),
         insecure = o.insecure,
         ca = o.ca,
         follow = true,
         max_bytes = 4 * 1024 * 1024,
      })
      if res and res.status >= 400 then
         return nil, string.format("http.request: HTTP %d (%s)", res.status, shown(o.sums_url)),
            "EHTTP", res.status
      end
      return res, e, c
   end)
   if not r then
      return nil, rename_op(err), code
   end
   for line in r.body:gmatch("[^\r\n]+") do
      local hex, file = line:match("^(%x+)%s+%*?(.-)%s*$")
      if hex and #hex == 64 and (file == name or file == "./" .. name) then
         return hex:lower()
      end
   end
   return fail(string.format("no sha256 for '%s' in the checksum list (%s)", name,
      shown(o.sums_url)), "ENOSUM")
end

-- Fetch url into a temp file next to dest and check its digest; on success
-- the temp file holds exactly the expected bytes. Retries as documented.
local function fetch_verified(o, url, dest, expected, extra)
   local mismatch_retried = false
   while true do
      local tmp, terr, tcode = temp_near(dest)
      if not tmp then
         return nil, rename_op(terr), tcode
      end
      local r, err, code = with_retries(o, function()
         return core.fetch(url, tmp, fetch_opts(o, extra))
      end)
      if not r then
         os.remove(tmp)
         return nil, rename_op(err), code
      end
      if r.sha256 == expected then
         return tmp, r
      end
      os.remove(tmp)
      if mismatch_retried or url:sub(1, 7) == "file://" then
         return fail(string.format("sha256 mismatch: expected %s, got %s (%s)", expected,
            r.sha256, shown(url)), "ECHECKSUM")
      end
      mismatch_retried = true
   end
end

local function place(tmp, dest)
   local ok, err = os.rename(tmp, dest)
   if not ok then
      os.remove(tmp)
      return fail(string.format("cannot rename into place: %s (%s)", err, dest), "EIO")
   end
   return true
end

local function check_download_opts(opts)
   if type(opts) ~= "table" then
      error("http.download: expected an options table", 3)
   end
   for k, v in pairs(opts) do
      local want = DOWNLOAD_OPTS[k]
      if want == nil then
         error(string.format("http.download: unknown option '%s'", tostring(k)), 3)
      end
      if want ~= "any" and type(v) ~= want then
         error(string.format("http.download: option '%s' must be a %s", k, want), 3)
      end
      if k == "mode" and type(v) ~= "string" and math.type(v) ~= "integer" then
         error("http.download: option 'mode' must be an octal string like \"0644\" or an integer", 3)
      end
   end
   if not opts.url or not opts.dest then
      error("http.download: options 'url' and 'dest' are required", 3)
   end
   if not opts.sha256 and not opts.sums_url then
      error("http.download: one of 'sha256' or 'sums_url' is required", 3)
   end
   local cache = opts.cache
   if cache ~= nil and type(cache) ~= "boolean" and type(cache) ~= "string" then
      error("http.download: option 'cache' must be a boolean or a directory", 3)
   end
   if type(cache) == "string" and cache:sub(1, 1) ~= "/" then
      error("http.download: option 'cache' must be an absolute directory", 3)
   end
end

--- Non-raising download; see `download`.
---@return table|nil result, string|nil err, string|nil code
function M.try_download(opts)
   check_download_opts(opts)
   local o = {
      url = opts.url,
      dest = opts.dest,
      sha256 = opts.sha256,
      sums_url = opts.sums_url,
      sums_name = opts.sums_name,
      retries = math.max(0, math.floor(opts.retries or 3)),
      retry_delay = opts.retry_delay or 1,
      connect_timeout = opts.connect_timeout or 10,
      timeout = opts.timeout or 600,
      stall_timeout = opts.stall_timeout or 60,
      insecure = opts.insecure,
      ca = opts.ca,
   }
   local expected, err, code = expected_sha256(o)
   if not expected then
      return nil, err, code
   end
   local cache = opts.cache
   if cache == nil or cache == true then
      cache = M.cache_dir()
   end
   local placing = { mode = opts.mode, progress = false, name = opts.name }

   if not cache then
      local tmp, r, fcode = fetch_verified(o, o.url, o.dest, expected,
         { mode = opts.mode, progress = opts.progress, name = opts.name })
      if not tmp then
         return nil, r, fcode
      end
      local ok, perr, pcode = place(tmp, o.dest)
      if not ok then
         return nil, perr, pcode
      end
      return { path = o.dest, sha256 = expected, bytes = r.bytes, cached = false }
   end

   -- With a cache, the network fills the cache and dest is copied from it
   -- (file:// through the same fetch), so dest is always placed the same
   -- way: hashed while copied, fsync'ed, renamed.
   local entry = cache .. "/" .. expected
   local made, merr, mcode = fs.mkdir(cache, { mode = 448, parents = true }) -- 0700
   if made == nil and mcode ~= "EEXIST" then
      return nil, rename_op(merr), mcode
   end
   local cached = fs.stat(entry) ~= nil
   if cached then
      local tmp, r = fetch_verified(o, file_url(entry), o.dest, expected, placing)
      if tmp then
         local ok, perr, pcode = place(tmp, o.dest)
         if not ok then
            return nil, perr, pcode
         end
         return { path = o.dest, sha256 = expected, bytes = r.bytes, cached = true }
      end
      fs.remove(entry) -- corrupt or unreadable: fetch it again
   end
   local tmp, r, fcode = fetch_verified(o, o.url, entry, expected,
      { mode = 420, progress = opts.progress, name = opts.name }) -- 0644
   if not tmp then
      return nil, r, fcode
   end
   local ok, perr, pcode = place(tmp, entry)
   if not ok then
      return nil, perr, pcode
   end
   tmp, r, fcode = fetch_verified(o, file_url(entry), o.dest, expected, placing)
   if not tmp then
      return nil, r, fcode
   end
   ok, perr, pcode = place(tmp, o.dest)
   if not ok then
      return nil, perr, pcode
   end
   return { path = o.dest, sha256 = expected, bytes = r.bytes, cached = false }
end

--- Download a URL to dest, verified by sha256, through the cache.
---@param opts table url=, dest=, sha256=|sums_url=, sums_name=, cache=true|false|dir,
---  retries=3, retry_delay=1, connect_timeout=10, timeout=600, stall_timeout=60,
---  mode=, progress=, insecure=, ca=, name=
---@return table {path=, sha256=, bytes=, cached=boolean}
function M.download(opts)
   local r, err = M.try_download(opts)
   if not r then
      error(err, 2)
   end
   return r
end

return M
