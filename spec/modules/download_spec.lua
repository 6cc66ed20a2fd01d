-- download: fetched once by the controller (from a test HTTP server on
-- 127.0.0.1, through a private cache), verified, pushed to a lab node
-- (etcd9) only when its digest differs. The node never talks to the server.
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local fs = require("etcdrun.fs")
local http = require("etcdrun.core.http")
local cjson = require("cjson")

local q = helper.q
local BASE = "/root/etcdrun-download-test"


-- Inside an `it`: report the test as skipped (with why) when no lab can run here.
local function no_lab(dir, why_not)
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

describe("download", function()
   describe("arguments", function()
      local cases = {
         { { dest = "/x", sha256 = "ab" }, "argument 'url' is required" },
         { { url = "http://h/f", dest = "/x" }, "one of sha256, sums_url is required" },
         { { url = "http://h/f", dest = "/x", sha256 = "a", sums_url = "http://h/S" },
            "arguments sha256 and sums_url are mutually exclusive" },
         { { url = "http://h/f", dest = "x", sha256 = "a" }, "argument 'dest' must be an absolute path, got 'x'" },
         { { url = "http://h/f", dest = "/x", sha256 = "a", mode = 420 }, "argument 'mode': write modes as strings" },
         { { url = "http://h/f", dest = "/x", sha256 = "a", checksum = "a" }, "unknown argument 'checksum'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("download", c[1], "site.lua:4")
            assert.is_nil(ok)
            assert.matches("site.lua:4: module 'download': " .. c[2], err, 1, true)
         end)
      end
   end)

   describe("plan", function()
      local st, NONE = plancases.st, plancases.NONE
      local S, T = string.rep("5", 64), string.rep("7", 64)
      local URL = "https://example.org/r/tool.tgz"
      local args = { url = URL, sha256 = S, dest = "/opt/tool.tgz" }
      local function with(extra)
         local a = { url = URL, sha256 = S, dest = "/opt/tool.tgz" }
         for k, v in pairs(extra) do
            a[k] = v
         end
         return a
      end
      local function state(extra)
         local s = { sha = S, dest = "/opt/tool.tgz" }
         for k, v in pairs(extra or {}) do
            s[k] = v
         end
         return s
      end
      plancases.run(it, "download", {
         { name = "absent and not cached: download and push, diff from nothing",
           state = state(), args = args,
           want = { changed = true, msg = "would download and push " .. URL .. " to /opt/tool.tgz",
              diff = { path = "/opt/tool.tgz", before = "", after = "sha256 " .. S .. "\nmode 0644\n" },
              sha = S, existed = false, attrs_only = NONE,
              result = { dest = "/opt/tool.tgz", url = URL, sha256 = S } } },
         { name = "absent but cached on the controller: push only",
           state = state({ cache_path = "/c/" .. S }), args = args,
           want = { changed = true, msg = "would push (cached) " .. URL .. " to /opt/tool.tgz",
              result = { dest = "/opt/tool.tgz", url = URL, sha256 = S, cache_path = "/c/" .. S } } },
         { name = "another content there: replaced, before shows its digest, the mode asked",
           state = state({ st = st("file", "0600"), have = T }), args = with({ mode = "0755" }),
           want = { changed = true, existed = true,
              diff = { path = "/opt/tool.tgz", before = "sha256 " .. T .. "\n",
                 after = "sha256 " .. S .. "\nmode 0755\n" } } },
         { name = "the same digest and attributes: up to date",
           state = state({ st = st("file", "0644"), have = S }), args = args,
           want = { changed = false, msg = "up to date (sha256 matches)", diff = NONE } },
         { name = "the same digest, mode and owner drifted: fixed without sending",
           state = state({ st = st("file", "0644"), have = S }), args = with({ mode = "0600", owner = "nobody" }),
           want = { changed = true, msg = "up to date; mode 0644 -> 0600, owner root -> nobody", attrs_only = true,
              dest = "/opt/tool.tgz", diff = NONE } },
         { name = "an owner and group that already match",
           state = state({ st = st("file", "0644", "etcd"), have = S }),
           args = with({ owner = "etcd", group = "etcd" }),
           want = { changed = false } },
         { name = "check mode decides the same (nothing is fetched before apply)",
           state = state(), args = args, opts = { check = true },
           want = { changed = true, msg = "would download and push " .. URL .. " to /opt/tool.tgz" } },
         { name = "a directory inside the directory (dest/name) is not a file: fails naming the host",
           state = state({ dest = "/opt/d/tool.tgz", st = st("dir", "0755") }), args = with({ dest = "/opt/d" }),
           opts = { host = "etcd9" },
           want = { failed = true, msg = "download: etcd9:/opt/d/tool.tgz exists and is not a regular file",
              result = { code = "EEXIST" } } },
         { name = "a fifo at dest is not a regular file either",
           state = state({ st = st("fifo", "0644") }), args = args, opts = { host = "etcd9" },
           want = { failed = true, msg = "download: etcd9:/opt/tool.tgz exists and is not a regular file" } },
      })
   end)

   describe("to a node", function()
      local dir, why_not, h, srv, files, cache, pid, port, logfile
      local data = {}

      local function url(name)
         return ("http://127.0.0.1:%d/files/%s"):format(port, name)
      end

      -- requests the server saw for /files/name
      local function hits(name)
         local n = 0
         for line in (helper.read(logfile) or ""):gmatch("[^\n]+") do
            if line == "GET /files/" .. name then
               n = n + 1
            end
         end
         return n
      end

      -- over the module's own session: fast, and still the node's real state
      local function on_node(cmd)
         local r = assert(h:exec(cmd))
         return r.stdout .. r.stderr
      end

      local function run(args, opts)
         args.cache = args.cache or cache
         return modtest.run("download", args, h, opts)
      end

      setup(function()
         dir, why_not = lab.ensure(10)
         if not dir then
            return
         end
         srv = helper.tmpdir()
         files, cache = srv .. "/files", srv .. "/cache"
         fs.mkdir(files)
         local sums = {}
         for name, size in pairs({ ["tool-1.0.tar.gz"] = 300000, ["other.bin"] = 1000 }) do
            local parts = {}
            for i = 1, size // 16 + 1 do
               parts[i] = ("%015d\n"):format(i * 7919)
            end
            data[name] = table.concat(parts):sub(1, size)
            helper.write(files .. "/" .. name, data[name])
            sums[#sums + 1] = fs.sha256(data[name]) .. "  " .. name
         end
         helper.write(files .. "/SHA256SUMS", table.concat(sums, "\n") .. "\n")
         logfile = srv .. "/requests.log"
         local out = helper.run("/usr/bin/python3 spec/support/httpd.py --dir " .. q(files) .. " --port-file "
            .. q(srv .. "/ports.json") .. " --log " .. q(logfile) .. " --lifetime 60 >/dev/null 2>&1 & echo $!")
         pid = out:match("%d+")
         for _ = 1, 200 do
            local s = helper.read(srv .. "/ports.json")
            if s then
               port = cjson.decode(s).http
               break
            end
            http.sleep(0.05)
         end
         assert(port, "test server did not start")
         h = lab.host(dir, 9)
         assert(h:exec("rm -rf " .. BASE .. " && mkdir -p " .. BASE))
      end)

      teardown(function()
         if pid then
            helper.run("kill " .. pid)
         end
         if h then
            h:exec("rm -rf " .. BASE)
            h:close()
         end
      end)


      it("check mode reads the checksum list only; then fetches once, pushes once", function()
         if no_lab(dir, why_not) then return end
         local name = "tool-1.0.tar.gz"
         local sha = fs.sha256(data[name])
         local a = { url = url(name), sums_url = url("SHA256SUMS"), dest = BASE .. "/tool.tgz" }
         local r = run(a, { check = true })
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal(("would download and push %s to %s/tool.tgz"):format(url(name), BASE), r.msg)
         assert.are.same({ path = BASE .. "/tool.tgz", before = "", after = "sha256 " .. sha .. "\nmode 0644\n" },
            r.diff)
         assert.are.equal("", on_node("ls -A " .. BASE))
         assert.are.equal(0, hits(name))
         assert.is_nil(fs.try.stat(cache))

         r = run(a)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("pushed " .. BASE .. "/tool.tgz", r.msg)
         assert.are.equal(cache .. "/" .. sha, r.cache_path)
         assert.are.equal(sha .. " 644 root\n", on_node("cd " .. BASE .. " && echo $(sha256sum < tool.tgz | cut -c1-64)"
            .. " $(stat -c '%a %U' tool.tgz)"))
         assert.are.equal(1, hits(name))
         assert.are.equal(1, hits("SHA256SUMS"))

         r = run(a)
         assert.is_false(r.changed, r.msg)
         assert.are.equal("up to date (sha256 matches)", r.msg)
         assert.are.equal(1, hits(name))

         -- gone from the node: pushed again from the controller, not fetched again
         on_node("rm " .. BASE .. "/tool.tgz")
         r = run(a)
         assert.is_true(r.changed)
         assert.are.equal(1, hits(name))
         -- a new process, same cache: still no fetch
         local out, err, code = helper.etcdrun_e(([[
            package.path = "./spec/?.lua;" .. package.path
            local h = require("etcdrun.host").new({ name = "etcd9", address = "198.18.0.19", user = "root" },
               { ssh_config = %q })
            h:exec("rm -f %s/tool.tgz")
            local r = require("support.modtest").run("download", { url = %q, sha256 = %q, dest = "%s/tool.tgz",
               cache = %q }, h)
            print(r.changed, r.msg)]]):format(dir .. "/ssh_config", BASE, url(name), sha, BASE, cache))
         assert.are.equal(0, code, err)
         assert.are.equal("true\tpushed " .. BASE .. "/tool.tgz\n", out)
         assert.are.equal(1, hits(name))
      end)

      it("fixes a drifted mode and owner without sending the file again", function()
         if no_lab(dir, why_not) then return end
         local a = { url = url("other.bin"), sha256 = fs.sha256(data["other.bin"]), dest = BASE .. "/other.bin",
            mode = "0600" }
         assert.is_true(run(a).changed)
         on_node("chmod 644 " .. BASE .. "/other.bin && touch -d @1000000000 " .. BASE .. "/other.bin")
         a.owner = "nobody"
         local r = run(a)
         assert.is_true(r.changed)
         assert.are.equal("up to date; mode 0644 -> 0600, owner root -> nobody", r.msg)
         assert.are.equal("600 nobody 1000000000\n", on_node("stat -c '%a %U %Y' " .. BASE .. "/other.bin"))
         assert.is_false(run(a).changed)
      end)

      it("puts the file into an existing directory under the URL's name", function()
         if no_lab(dir, why_not) then return end
         local r = run({ url = url("other.bin"), sha256 = fs.sha256(data["other.bin"]), dest = BASE })
         assert.is_false(r.failed, r.msg)
         assert.are.equal(BASE .. "/other.bin", r.dest)
      end)

      it("a wrong checksum fails before the node is touched", function()
         if no_lab(dir, why_not) then return end
         on_node("rm -rf " .. BASE .. "/*")
         local bad = string.rep("0", 64)
         local r = run({ url = url("tool-1.0.tar.gz"), sha256 = bad, dest = BASE .. "/bad.tgz", cache = srv .. "/c2" })
         assert.is_true(r.failed)
         assert.are.equal("ECHECKSUM", r.code)
         assert.matches("sha256 mismatch: expected " .. bad, r.msg, 1, true)
         assert.are.equal("", on_node("ls -A " .. BASE))
         -- nothing bad was left in the cache either
         assert.are.same({}, fs.list(srv .. "/c2"))
      end)

      it("fails clearly: name missing from the checksum list, bad sha256, missing directory", function()
         if no_lab(dir, why_not) then return end
         local r = run({ url = url("nothere.bin"), sums_url = url("SHA256SUMS"), dest = BASE .. "/n" })
         assert.are.equal("ENOSUM", r.code)
         assert.are.equal("download: no sha256 for 'nothere.bin' in " .. url("SHA256SUMS"), r.msg)
         r = run({ url = url("other.bin"), sha256 = "xyz", dest = BASE .. "/n" })
         assert.are.equal("download: argument 'sha256' must be 64 hex digits", r.msg)
         r = run({ url = url("other.bin"), sha256 = fs.sha256(data["other.bin"]), dest = BASE .. "/no/such/f" })
         assert.is_true(r.failed)
         assert.matches("etcd9:" .. BASE .. "/no/such", r.msg, 1, true)
      end)

      it("works from a file:// URL", function()
         if no_lab(dir, why_not) then return end
         local r = run({ url = "file://" .. files .. "/other.bin", sha256 = fs.sha256(data["other.bin"]),
            dest = BASE .. "/f.bin" })
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal(data["other.bin"], h:read(BASE .. "/f.bin"))
      end)
   end)
end)
