local helper = require("support.helper")
local cjson = require("cjson")
local http = require("etcdrun.core.http")
local ehttp = require("etcdrun.http")
local fs = require("etcdrun.core.fs")

local q = helper.q

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

local function now()
   return tonumber((sh("date +%s.%N")))
end

-- A CA, a server certificate for 127.0.0.1 and a client certificate (EC).
local function make_certs(d)
   local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
   sh("cd " .. q(d) .. " && openssl req -x509 " .. ec .. " -keyout ca.key -out ca.crt"
      .. " -subj /CN=etcdrun-test-ca -days 1 2>/dev/null")
   helper.write(d .. "/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
      .. "extendedKeyUsage=serverAuth\n")
   helper.write(d .. "/client.ext", "extendedKeyUsage=clientAuth\n")
   for _, who in ipairs({ "server", "client" }) do
      sh("cd " .. q(d) .. " && openssl req " .. ec .. " -keyout " .. who .. ".key -out "
         .. who .. ".csr -subj /CN=" .. who .. " 2>/dev/null && openssl x509 -req -in "
         .. who .. ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile "
         .. who .. ".ext -out " .. who .. ".crt 2>/dev/null")
   end
end

describe("http", function()
   local dir, files, logfile, pid, ports, certs
   local artifact = {} -- name -> {data=, sha=}

   local function url(path, kind)
      kind = kind or "http"
      return string.format("%s://127.0.0.1:%d%s", kind == "http" and "http" or "https",
         ports[kind], path)
   end

   -- How many requests the server saw for a path (its request log).
   local function hits(path)
      local n = 0
      for line in (helper.read(logfile) or ""):gmatch("[^\n]+") do
         if line:match("^%u+ (.*)$") == path then
            n = n + 1
         end
      end
      return n
   end

   -- Names in a directory, to show that no temporary file was left behind.
   local function names(d)
      return assert(fs.list(d))
   end

   setup(function()
      dir = helper.tmpdir()
      files = dir .. "/files"
      certs = dir .. "/certs"
      assert(fs.mkdir(files))
      assert(fs.mkdir(certs))
      local sums = {}
      for name, size in pairs({ ["etcd.tar.gz"] = 40000, ["big.bin"] = 2 * 1024 * 1024 + 7 }) do
         local parts = {}
         for i = 1, size // 64 + 1 do
            parts[i] = string.format("%-63d\n", i * 7919)
         end
         local data = table.concat(parts):sub(1, size)
         helper.write(files .. "/" .. name, data)
         artifact[name] = { data = data, sha = fs.sha256(data) }
         table.insert(sums, artifact[name].sha .. "  " .. name)
      end
      table.insert(sums, string.rep("ab", 32) .. " *other.zip")
      helper.write(files .. "/SHA256SUMS", table.concat(sums, "\n") .. "\n")
      make_certs(certs)

      logfile = dir .. "/requests.log"
      local portfile = dir .. "/ports.json"
      pid = sh("/usr/bin/python3 spec/support/httpd.py --dir " .. q(files)
         .. " --port-file " .. q(portfile) .. " --log " .. q(logfile)
         .. " --lifetime 120 --stall 3 --cert " .. q(certs .. "/server.crt")
         .. " --key " .. q(certs .. "/server.key")
         .. " --client-ca " .. q(certs .. "/ca.crt")
         .. " >" .. q(dir .. "/httpd.out") .. " 2>&1 & echo $!"):match("%d+")
      for _ = 1, 200 do
         local s = helper.read(portfile)
         if s then
            ports = cjson.decode(s)
            break
         end
         http.sleep(0.05)
      end
      assert(ports, "test server did not start: " .. (helper.read(dir .. "/httpd.out") or ""))
   end)

   teardown(function()
      if pid then
         helper.run("kill " .. pid)
      end
   end)

   local work
   before_each(function()
      work = helper.tmpdir()
   end)

   describe("fetch", function()
      it("streams to a file and reports status, size, sha256 and type", function()
         local dest = work .. "/a"
         local r = assert(http.fetch(url("/files/etcd.tar.gz"), dest))
         assert.are.equal(200, r.status)
         assert.are.equal(40000, r.bytes)
         assert.are.equal(artifact["etcd.tar.gz"].sha, r.sha256)
         assert.are.equal("application/octet-stream", r.content_type)
         assert.are.equal(artifact["etcd.tar.gz"].data, helper.read(dest))
      end)

      it("follows redirects and applies a mode", function()
         local dest = work .. "/r"
         local r = assert(http.fetch(url("/redirect/etcd.tar.gz"), dest, { mode = 493 }))
         assert.are.equal(url("/files/etcd.tar.gz"), r.url)
         assert.are.equal(493, fs.stat(dest).mode)
      end)

      it("fails with EHTTP and the status on 404, creating nothing", function()
         local dest = work .. "/nf"
         local r, err, code, status = http.fetch(url("/files/missing"), dest)
         assert.is_nil(r)
         assert.are.equal("EHTTP", code)
         assert.are.equal(404, status)
         assert.are.equal("http.fetch: HTTP 404 Not Found (" .. url("/files/missing") .. ")", err)
         assert.are.same({}, names(work))
      end)

      it("fails with ECONNRESET when the body is cut, removing the partial file", function()
         local r, err, code = http.fetch(url("/drop/etcd.tar.gz"), work .. "/d")
         assert.is_nil(r)
         assert.are.equal("ECONNRESET", code)
         assert.truthy(err:find(url("/drop/etcd.tar.gz"), 1, true))
         assert.are.same({}, names(work))
      end)

      it("times out on a stalled server within the total timeout", function()
         local t0 = now()
         local r, err, code = http.fetch(url("/stall"), work .. "/s", { timeout = 0.5 })
         assert.is_nil(r)
         assert.are.equal("ETIMEDOUT", code)
         assert.matches("^http%.fetch: .*%(http://127%.0%.0%.1:%d+/stall%)$", err)
         assert.is_true(now() - t0 < 2.5)
         assert.are.same({}, names(work))
      end)

      it("fails with ECONNREFUSED when nothing listens", function()
         local r, err, code = http.fetch("http://127.0.0.1:1/x", work .. "/c",
            { connect_timeout = 2 })
         assert.is_nil(r)
         assert.are.equal("ECONNREFUSED", code)
         assert.matches("%(http://127%.0%.0%.1:1/x%)$", err)
      end)

      it("reads file:// URLs and fails with ENOENT on a missing one", function()
         local r = assert(http.fetch("file://" .. files .. "/etcd.tar.gz", work .. "/f"))
         assert.are.equal(artifact["etcd.tar.gz"].sha, r.sha256)
         local n, err, code = http.fetch("file://" .. files .. "/nope", work .. "/g")
         assert.is_nil(n)
         assert.are.equal("ENOENT", code)
         assert.matches("/nope%)$", err)
      end)

      it("hides credentials of a URL in messages", function()
         local _, err = http.fetch("http://user:secret@127.0.0.1:1/x", work .. "/c")
         assert.is_nil(err:find("secret", 1, true))
         assert.truthy(err:find("http://***@127.0.0.1:1/x", 1, true))
      end)

      it("refuses an untrusted certificate, trusts a given CA (path or PEM)", function()
         local u = url("/files/etcd.tar.gz", "https")
         local r, err, code = http.fetch(u, work .. "/t1")
         assert.is_nil(r)
         assert.are.equal("ETLS", code)
         assert.truthy(err:find("(" .. u .. ")", 1, true))
         assert.are.same({}, names(work))
         assert(http.fetch(u, work .. "/t2", { ca = certs .. "/ca.crt" }))
         assert(http.fetch(u, work .. "/t3", { ca = helper.read(certs .. "/ca.crt") }))
         assert(http.fetch(u, work .. "/t4", { insecure = true }))
      end)

      it("draws a progress bar only when asked or on a TTY", function()
         local code = string.format([[
            local http = require("etcdrun.core.http")
            assert(http.fetch(%q, %q, {progress = %s}))]], url("/files/big.bin"),
            work .. "/big", "%s")
         local _, forced = helper.etcdrun_e(code:format("true"))
         assert.matches("big%.bin.*100%%.*2%.0/2%.0 MiB\n$", forced)
         local _, auto = helper.etcdrun_e(code:format("nil"))
         assert.are.equal("", auto) -- stderr is a file here, not a TTY
      end)

      it("raises on misuse", function()
         assert.has_error(function()
            http.fetch(url("/files/etcd.tar.gz"), work .. "/x", { timout = 1 })
         end)
         assert.has_error(function()
            http.fetch(url("/files/etcd.tar.gz"), work .. "/x", { timeout = "1" })
         end)
      end)
   end)

   describe("request", function()
      it("sends method, headers and body; returns status, headers, body", function()
         local r = assert(http.request({
            url = url("/echo"),
            method = "PUT",
            body = "payload",
            headers = { ["X-Token"] = "t1", "X-Other: o2" },
         }))
         assert.are.equal(200, r.status)
         assert.are.equal("application/json", r.headers["content-type"])
         assert.are.equal("one", r.headers["x-echo"])
         local e = cjson.decode(r.body)
         assert.are.same({ "PUT", "payload", "t1", "o2" },
            { e.method, e.body, e.headers["x-token"], e.headers["x-other"] })
      end)

      it("returns an HTTP error status as a result", function()
         local r = assert(http.request({ url = url("/status/503") }))
         assert.are.equal(503, r.status)
         assert.are.equal("status 503\n", r.body)
      end)

      it("does mutual TLS with file paths and with PEM strings", function()
         local r = assert(http.request({
            url = url("/echo", "mtls"),
            cert = certs .. "/client.crt",
            key = certs .. "/client.key",
            ca = certs .. "/ca.crt",
         }))
         assert.are.equal(200, r.status)
         assert.are.equal("client", cjson.decode(r.body).client_cn)
         r = assert(http.request({
            url = url("/echo", "mtls"),
            cert = helper.read(certs .. "/client.crt"),
            key = helper.read(certs .. "/client.key"),
            ca = helper.read(certs .. "/ca.crt"),
         }))
         assert.are.equal("client", cjson.decode(r.body).client_cn)
      end)

      it("fails naming the URL when the server wants a client certificate", function()
         local u = url("/echo", "mtls")
         local r, err, code = http.request({ url = u, ca = certs .. "/ca.crt", timeout = 5 })
         assert.is_nil(r)
         assert.truthy(code == "ETLS" or code == "ECONNRESET", code)
         assert.truthy(err:find("(" .. u .. ")", 1, true), err)
      end)

      it("fails with ETLS on a bad client key", function()
         local r, err, code = http.request({
            url = url("/echo", "mtls"),
            cert = certs .. "/client.crt",
            key = certs .. "/nope.key",
            ca = certs .. "/ca.crt",
         })
         assert.is_nil(r)
         assert.are.equal("ETLS", code)
         assert.matches("^http%.request: ", err)
      end)

      it("raises without a url or with an unknown option", function()
         assert.has_error(function() http.request({}) end)
         assert.has_error(function() http.request({ url = url("/echo"), methd = "GET" }) end)
         assert.has_error(function()
            http.request({ url = url("/echo"), method = "GET /x HTTP/1.1\r\nX: y" })
         end)
      end)
   end)

   describe("download", function()
      local function dl(opts)
         opts.retry_delay = opts.retry_delay or 0.01
         if opts.cache == nil then
            opts.cache = false
         end
         return ehttp.try_download(opts)
      end

      it("downloads with a given sha256, atomically", function()
         local dest = work .. "/etcd.tar.gz"
         local r = assert(dl({ url = url("/files/etcd.tar.gz"), dest = dest,
            sha256 = artifact["etcd.tar.gz"].sha:upper(), mode = 384 }))
         assert.are.same({ dest, artifact["etcd.tar.gz"].sha, 40000, false },
            { r.path, r.sha256, r.bytes, r.cached })
         assert.are.equal(artifact["etcd.tar.gz"].data, helper.read(dest))
         assert.are.equal(384, fs.stat(dest).mode)
         assert.are.same({ "etcd.tar.gz" }, names(work))
      end)

      it("leaves dest untouched and no temp file on a checksum mismatch", function()
         local dest = work .. "/etcd.tar.gz"
         helper.write(dest, "old")
         local path = "/files/etcd.tar.gz?mismatch"
         local r, err, code = dl({ url = url(path), dest = dest, sha256 = string.rep("0", 64) })
         assert.is_nil(r)
         assert.are.equal("ECHECKSUM", code)
         assert.are.equal("http.download: sha256 mismatch: expected " .. string.rep("0", 64)
            .. ", got " .. artifact["etcd.tar.gz"].sha .. " (" .. url(path) .. ")", err)
         assert.are.equal("old", helper.read(dest))
         assert.are.same({ "etcd.tar.gz" }, names(work))
         assert.are.equal(2, hits(path)) -- a mismatch is retried once
      end)

      it("does not retry a 404", function()
         local dest = work .. "/x"
         local r, err, code = dl({ url = url("/files/none?404"), dest = dest,
            sha256 = string.rep("0", 64) })
         assert.is_nil(r)
         assert.are.equal("EHTTP", code)
         assert.are.equal("http.download: HTTP 404 Not Found (" .. url("/files/none?404") .. ")",
            err)
         assert.are.equal(1, hits("/files/none?404"))
         assert.are.same({}, names(work))
      end)

      it("retries a dropped connection, then fails leaving dest untouched", function()
         local dest = work .. "/etcd.tar.gz"
         helper.write(dest, "old")
         local path = "/drop/etcd.tar.gz?dl"
         local r, err, code = dl({ url = url(path), dest = dest, retries = 2,
            sha256 = artifact["etcd.tar.gz"].sha })
         assert.is_nil(r)
         assert.are.equal("ECONNRESET", code)
         assert.are.equal("http.download: transfer closed with 20000 bytes remaining to read ("
            .. url(path) .. ")", err)
         assert.are.equal(3, hits(path))
         assert.are.equal("old", helper.read(dest))
         assert.are.same({ "etcd.tar.gz" }, names(work))
      end)

      it("retries a 503 with backoff and succeeds", function()
         local path = "/flaky/k1/etcd.tar.gz"
         local r = assert(dl({ url = url(path), dest = work .. "/e",
            sha256 = artifact["etcd.tar.gz"].sha }))
         assert.are.equal(40000, r.bytes)
         assert.are.equal(2, hits(path))
      end)

      it("fails with ETIMEDOUT on a stalled server", function()
         local t0 = now()
         local r, err, code = dl({ url = url("/stall"), dest = work .. "/s", timeout = 0.3,
            retries = 1, sha256 = string.rep("0", 64) })
         assert.is_nil(r)
         assert.are.equal("ETIMEDOUT", code)
         assert.matches("/stall%)$", err)
         assert.is_true(now() - t0 < 2.5)
         assert.are.same({}, names(work))
      end)

      it("looks the digest up in SHA256SUMS", function()
         local r = assert(dl({ url = url("/files/etcd.tar.gz?sums"), dest = work .. "/e",
            sums_url = url("/files/SHA256SUMS") }))
         assert.are.equal(artifact["etcd.tar.gz"].sha, r.sha256)
         r = assert(dl({ url = url("/redirect/big.bin"), dest = work .. "/b",
            sums_url = url("/files/SHA256SUMS") }))
         assert.are.equal(artifact["big.bin"].sha, r.sha256)
      end)

      it("fails with ENOSUM naming the file and the sums URL", function()
         local sums = url("/files/SHA256SUMS")
         local r, err, code = dl({ url = url("/files/etcd-v9.tar.gz"), dest = work .. "/e",
            sums_url = sums })
         assert.is_nil(r)
         assert.are.equal("ENOSUM", code)
         assert.are.equal("http.download: no sha256 for 'etcd-v9.tar.gz' in the checksum list ("
            .. sums .. ")", err)
         assert.are.equal(0, hits("/files/etcd-v9.tar.gz"))
         local _, err2, code2 = dl({ url = url("/files/etcd.tar.gz"), dest = work .. "/e",
            sums_url = url("/files/NOSUMS") })
         assert.are.equal("EHTTP", code2)
         assert.truthy(err2:find("NOSUMS", 1, true))
      end)

      it("fetches an artifact once through the cache", function()
         local cache = work .. "/cache"
         local path = "/files/etcd.tar.gz?cache"
         local sha = artifact["etcd.tar.gz"].sha
         local r1 = assert(dl({ url = url(path), dest = work .. "/one", sha256 = sha,
            cache = cache }))
         local r2 = assert(dl({ url = url(path), dest = work .. "/two", sha256 = sha,
            cache = cache, mode = 493 }))
         assert.are.same({ false, true }, { r1.cached, r2.cached })
         assert.are.equal(1, hits(path))
         assert.are.same({ sha }, names(cache))
         assert.are.equal(artifact["etcd.tar.gz"].data, helper.read(work .. "/two"))
         assert.are.equal(493, fs.stat(work .. "/two").mode)
         assert.are.same({ "cache", "one", "two" }, names(work))
         -- a corrupted cache entry is noticed and replaced
         helper.write(cache .. "/" .. sha, "rotten")
         local r3 = assert(dl({ url = url(path), dest = work .. "/three", sha256 = sha,
            cache = cache }))
         assert.is_false(r3.cached)
         assert.are.equal(2, hits(path))
         assert.are.equal(sha, fs.sha256_file(cache .. "/" .. sha))
         -- a mismatch leaves nothing in the cache and no temporary file
         local bad = string.rep("1", 64)
         assert.is_nil(dl({ url = url(path), dest = work .. "/four", sha256 = bad,
            cache = cache }))
         assert.are.same({ sha }, names(cache))
         assert.are.same({ "cache", "one", "three", "two" }, names(work))
      end)

      it("uses $XDG_CACHE_HOME/etcdrun by default", function()
         local out, err, code = helper.run("XDG_CACHE_HOME=" .. q(work) .. " "
            .. q(helper.etcdrun) .. " -e " .. q(string.format([[
               local r = require("etcdrun.http").download{url = %q, dest = %q, sha256 = %q}
               io.write(tostring(r.cached))]], url("/files/etcd.tar.gz?xdg"), work .. "/d",
               artifact["etcd.tar.gz"].sha)))
         assert.are.equal(0, code, err)
         assert.are.equal("false", out)
         assert.is_truthy(fs.stat(work .. "/etcdrun/" .. artifact["etcd.tar.gz"].sha))
      end)

      it("downloads file:// URLs", function()
         local r = assert(dl({ url = "file://" .. files .. "/etcd.tar.gz", dest = work .. "/f",
            sha256 = artifact["etcd.tar.gz"].sha }))
         assert.are.equal(40000, r.bytes)
      end)

      it("verifies TLS: refuses an unknown CA, accepts the given one", function()
         local u = url("/files/etcd.tar.gz", "https")
         local sha = artifact["etcd.tar.gz"].sha
         local r, err, code = dl({ url = u, dest = work .. "/t", sha256 = sha })
         assert.is_nil(r)
         assert.are.equal("ETLS", code)
         assert.truthy(err:find(u, 1, true))
         assert(dl({ url = u, dest = work .. "/t", sha256 = sha, ca = certs .. "/ca.crt" }))
      end)

      it("the facade raises; misuse raises", function()
         local ok, err = pcall(ehttp.download, { url = url("/files/none"), dest = work .. "/n",
            sha256 = string.rep("0", 64), cache = false })
         assert.is_false(ok)
         assert.matches("^http%.download: HTTP 404", err)
         assert.has_error(function()
            ehttp.download({ url = url("/x"), dest = work .. "/n", sha = "00" })
         end)
         assert.has_error(function()
            ehttp.download({ url = url("/x"), dest = work .. "/n" })
         end)
         assert.has_error(function()
            ehttp.download({ url = url("/x"), dest = work .. "/n", sha256 = "xyz" })
         end)
         assert.has_error(function()
            ehttp.download({ url = url("/x"), dest = work .. "/n", sha256 = string.rep("0", 64),
               cache = "relative/dir" })
         end)
      end)
   end)
end)
