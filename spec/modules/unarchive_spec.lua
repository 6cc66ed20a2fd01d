-- unarchive: extracted on the controller, selected members pushed to a lab
-- node only where their digest differs. A small archive on etcd9, and the
-- lab's etcd release (download on the controller + unarchive) on etcd7.
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local fs = require("etcdrun.fs")
local cjson = require("cjson")

local q = helper.q

local function mkarchive(path, format, entries)
   helper.write(path .. ".json", cjson.encode(entries))
   local _, err, code = helper.run("/usr/bin/python3 spec/support/mkarchive.py " .. q(path) .. " " .. format
      .. " < " .. q(path .. ".json"))
   assert(code == 0, err)
end

local function node(i, dir)
   return host.new({ name = "etcd" .. i, address = "198.18.0." .. (10 + i), user = "root" },
      { ssh_config = dir .. "/ssh_config" })
end


-- Inside an `it`: report the test as skipped (with why) when no lab can run here.
local function no_lab(dir, why_not)
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

describe("unarchive", function()
   describe("arguments", function()
      local cases = {
         { { dest = "/x" }, "argument 'src' is required" },
         { { src = "a.tgz" }, "argument 'dest' is required" },
         { { src = "a.tgz", dest = "opt" }, "argument 'dest' must be an absolute path, got 'opt'" },
         { { src = "a.tgz", dest = "/x", strip_components = "1" }, "argument 'strip_components' must be an integer" },
         { { src = "a.tgz", dest = "/x", include = { true } }, "argument 'include'[1] must be a string" },
         { { src = "a.tgz", dest = "/x", exclude = {} }, "unknown argument 'exclude'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("unarchive", c[1], "site.lua:5")
            assert.is_nil(ok)
            assert.matches("site.lua:5: module 'unarchive': " .. c[2], err, 1, true)
         end)
      end
   end)

   describe("plan", function()
      local NONE = plancases.NONE
      local A, B = string.rep("a", 64), string.rep("b", 64)
      -- a tree as archive.tree gives it (cached, or from digests under --check)
      local function tree(dir)
         return { dir = dir, entries = {
            { rel = "README", type = "file", mode = 420, sha256 = A },
            { rel = "bin", type = "dir", mode = 493 },
            { rel = "bin/tool", type = "file", mode = 493, sha256 = B },
            { rel = "link", type = "link", mode = 511 },
         } }
      end
      -- what the host has, by entry index (as host_state parses it)
      local function F(sha, mode, user, hashed)
         return { type = "F", sha256 = sha, mode = tonumber(mode, 8), user = user or "root", group = user or "root",
            hashed = hashed }
      end
      -- dir false: a tree from archive.digests (check mode, not cached), without dir
      local function state(on_host, dir)
         if dir == nil then
            dir = "/cache/t"
         end
         return { src = "/c/pkg.tgz", dest = "/opt/p", tree = tree(dir or nil), host = on_host }
      end
      local args = { src = "/c/pkg.tgz", dest = "/opt/p" }
      local function with(extra)
         local a = { src = "/c/pkg.tgz", dest = "/opt/p" }
         for k, v in pairs(extra) do
            a[k] = v
         end
         return a
      end
      local UP = { F(A, "644"), { type = "D" }, F(B, "755"), { type = "L" } }
      local FILES = { "/opt/p/README", "/opt/p/bin/tool" }
      plancases.run(it, "unarchive", {
         { name = "dest missing: makes it and its directory, pushes every file, skips the link",
           state = state(false), args = args,
           want = { changed = true, msg = "would place 2 of 2 files in /opt/p", mkdest = true,
              diff = { path = "/opt/p", before = "", after = "README  " .. A:sub(1, 16) .. "  0644\nbin/\n"
                 .. "bin/tool  " .. B:sub(1, 16) .. "  0755\n" },
              result = { files = FILES, changed_files = FILES, skipped = { "link" }, dest = "/opt/p" } },
           also = function(p)
              assert.are.same({ "README", "bin/tool" }, { p.push[1].e.rel, p.push[2].e.rel })
              assert.are.same({ "bin" }, { p.dirs[1].rel })
              assert.are.equal("/cache/t", p.tree.dir)
           end },
         { name = "check mode, tree from digests (no dir): the same per-file answer",
           state = state(false, false), args = args, opts = { check = true },
           want = { changed = true, msg = "would place 2 of 2 files in /opt/p" },
           also = function(p)
              assert.is_nil(p.tree.dir)
              assert.are.equal("README  " .. A:sub(1, 16) .. "  0644\nbin/\nbin/tool  " .. B:sub(1, 16) .. "  0755\n",
                 p.diff.after)
           end },
         { name = "everything there with the archive's digests and modes: up to date",
           state = state(UP), args = args,
           want = { changed = false, msg = "2 files up to date", diff = NONE } },
         { name = "a trailing slash on dest is dropped",
           state = state(UP), args = with({ dest = "/opt/p/" }),
           want = { changed = false, result = { files = FILES, changed_files = {}, skipped = { "link" },
              dest = "/opt/p" } } },
         { name = "one file's content differs: only it is pushed, before shows the host's digest",
           state = state({ F(B, "644"), { type = "D" }, F(B, "755"), { type = "L" } }), args = args,
           want = { changed = true, msg = "would place 1 of 2 files in /opt/p",
              diff = { path = "/opt/p", before = "README  " .. B:sub(1, 16) .. "  0644\n",
                 after = "README  " .. A:sub(1, 16) .. "  0644\n" } },
           also = function(p)
              assert.are.equal(1, #p.push)
              assert.are.same({}, p.fix)
           end },
         { name = "same content, the mode differs from the one asked: fixed in place, not pushed",
           state = state(UP), args = with({ mode = "0700" }),
           want = { changed = true, msg = "would place 2 of 2 files in /opt/p",
              diff = { path = "/opt/p", before = "README: mode 0644 -> 0700\nbin/tool: mode 0755 -> 0700\n",
                 after = "README  " .. A:sub(1, 16) .. "  0700\nbin/tool  " .. B:sub(1, 16) .. "  0700\n" } },
           also = function(p)
              assert.are.same({}, p.push)
              assert.are.same({ { path = "/opt/p/README", mode = 448 }, { path = "/opt/p/bin/tool", mode = 448 } },
                 p.fix)
           end },
         { name = "the owner differs",
           state = state(UP), args = with({ owner = "nobody" }),
           want = { changed = true, msg = "would place 2 of 2 files in /opt/p" },
           also = function(p)
              assert.are.equal("README: owner root -> nobody\nbin/tool: owner root -> nobody\n", p.diff.before)
           end },
         { name = "an owner given by name that matches: up to date",
           state = state(UP), args = with({ owner = "root", group = "root" }),
           want = { changed = false } },
         { name = "a missing directory is made",
           state = state({ F(A, "644"), nil, nil, nil }), args = args,
           want = { changed = true, msg = "would place 1 of 2 files in /opt/p" },
           also = function(p)
              assert.are.same({ "bin" }, { p.dirs[1].rel })
              assert.is_false(p.mkdest)
           end },
         { name = "a directory where the archive has a file fails, naming the host",
           state = state({ { type = "D" }, { type = "D" }, F(B, "755") }), args = args, opts = { host = "etcd9" },
           want = { failed = true, msg = "unarchive: etcd9:/opt/p/README is a directory, the archive has a file there",
              result = { code = "EEXIST" } } },
         { name = "a file where the archive has a directory fails",
           state = state({ F(A, "644"), F(A, "644") }), args = args, opts = { host = "etcd9" },
           want = { failed = true, msg = "unarchive: etcd9:/opt/p/bin exists and is not a directory" } },
         { name = "the archive is missing: a failure",
           state = { src = "/c/none.tgz", missing = true, controller = "controller" }, args = args,
           want = { failed = true, msg = "unarchive: archive not found (controller:/c/none.tgz)",
              result = { code = "ENOENT" } } },
         { name = "the archive is missing under --check (an earlier task makes it): a change",
           state = { src = "/c/none.tgz", missing = true, controller = "controller" }, args = args,
           opts = { check = true },
           want = { changed = true, failed = NONE,
              msg = "would extract /c/none.tgz: it does not exist yet (made by an earlier task)" } },
      })
   end)

   describe("on the controller (no lab)", function()
      it("check mode answers per file from the archive's digests, writing nothing; the run agrees", function()
         local work = helper.tmpdir()
         local src = work .. "/p.tar.gz"
         mkarchive(src, "tar.gz", {
            { name = "p/sub/a", data = "alpha\n", mode = 384 },
            { name = "p/b", data = "beta\n", mode = 493 },
            { name = "p/l", type = "symlink", link = "b" },
         })
         local ctl = localhost.new()
         local a = { src = src, dest = work .. "/out", strip_components = 1 }
         local trees = require("etcdrun.archive").cache_dir() .. "/trees"
         local before = fs.try.list(trees) or {}
         local r = modtest.run("unarchive", a, ctl, { check = true })
         assert.is_false(r.failed, r.msg)
         assert.are.equal("would place 2 of 2 files in " .. work .. "/out", r.msg)
         assert.are.same({ "p.tar.gz", "p.tar.gz.json" }, fs.list(work))
         assert.are.same(before, fs.try.list(trees) or {})
         local r2 = modtest.run("unarchive", a, ctl)
         assert.is_false(r2.failed, r2.msg)
         assert.are.same(r.diff, r2.diff)
         assert.are.same({ "l" }, r2.skipped)
         assert.are.equal("alpha\n", helper.read(work .. "/out/sub/a"))
         r = modtest.run("unarchive", a, ctl, { check = true })
         assert.are.equal("2 files up to date", r.msg)
      end)
   end)

   describe("a small archive on etcd9", function()
      local dir, why_not, h, src, work
      local base = "/root/etcdrun-unarchive-test"
      local dest = base .. "/opt"

      local function run(args, opts)
         local a = { src = src, dest = dest, strip_components = 1 }
         for k, v in pairs(args or {}) do
            a[k] = v
         end
         return modtest.run("unarchive", a, h, opts)
      end

      -- over the module's own session: fast, and still the node's real state
      local function on_node(cmd)
         local r = assert(h:exec(cmd))
         return r.stdout .. r.stderr
      end

      setup(function()
         dir, why_not = lab.ensure(10)
         if not dir then
            return
         end
         work = helper.tmpdir()
         src = work .. "/pkg-1.0.tar.gz"
         mkarchive(src, "tar.gz", {
            { name = "pkg-1.0/", type = "dir" },
            { name = "pkg-1.0/bin/", type = "dir" },
            { name = "pkg-1.0/bin/tool", data = "#!/bin/sh\necho tool 1.0\n", mode = 493 },
            { name = "pkg-1.0/README", data = "read me\n", mode = 420 },
            { name = "pkg-1.0/link", type = "symlink", link = "README" },
         })
         h = node(9, dir)
         assert(h:exec("rm -rf " .. base .. " && mkdir -p " .. base))
      end)

      teardown(function()
         if h then
            h:exec("rm -rf " .. base)
            h:close()
         end
      end)

      before_each(function()
         if dir then
            on_node("rm -rf " .. dest)
         end
      end)

      it("check mode reports and writes nothing; then places, then leaves alone", function()
         if no_lab(dir, why_not) then return end
         local r = run(nil, { check = true })
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("would place 2 of 2 files in " .. dest, r.msg)
         assert.matches("^README  %x+  0644\nbin/\nbin/tool  %x+  0755\n$", r.diff.after)
         assert.are.equal("", on_node("ls -A " .. base))

         r = run()
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.same({ dest .. "/README", dest .. "/bin/tool" }, r.files)
         assert.are.same({ "link" }, r.skipped)
         assert.are.equal("tool 1.0\n", on_node(dest .. "/bin/tool"))
         assert.are.equal("644 README\n755 bin\n755 bin/tool\n",
            on_node("cd " .. dest .. " && stat -c '%a %n' README bin bin/tool"))

         r = run()
         assert.is_false(r.changed, r.msg)
         assert.are.equal("2 files up to date", r.msg)
      end)

      it("pushes only the member whose content differs", function()
         if no_lab(dir, why_not) then return end
         run()
         on_node("echo changed > " .. dest .. "/README && touch -d @1000000000 " .. dest .. "/bin/tool")
         local r = run()
         assert.is_true(r.changed)
         assert.are.same({ dest .. "/README" }, r.changed_files)
         assert.are.equal("placed 1 of 2 files in " .. dest, r.msg)
         assert.matches("^README  %x+  0644\n$", r.diff.before)
         assert.are.equal("read me\n1000000000\n",
            on_node("cat " .. dest .. "/README; stat -c %Y " .. dest .. "/bin/tool"))
      end)

      it("selects members, overrides the mode and sets the owner", function()
         if no_lab(dir, why_not) then return end
         local a = { include = { "bin/tool" }, mode = "0700", owner = "nobody" }
         local r = run(a)
         assert.is_false(r.failed, r.msg)
         assert.are.same({ dest .. "/bin/tool" }, r.files)
         assert.are.equal("bin/tool\n", on_node("cd " .. dest .. " && find . -type f | cut -c3-"))
         assert.are.equal("700 nobody\n", on_node("stat -c '%a %U' " .. dest .. "/bin/tool"))
         assert.is_false(run(a).changed)
         on_node("chmod 755 " .. dest .. "/bin/tool")
         r = run(a)
         assert.are.same({ dest .. "/bin/tool" }, r.changed_files)
         assert.are.equal("bin/tool: mode 0755 -> 0700\n", r.diff.before)
         assert.are.equal("700\n", on_node("stat -c '%a' " .. dest .. "/bin/tool"))
      end)

      it("fails clearly: no matching member, missing archive, a directory in the way", function()
         if no_lab(dir, why_not) then return end
         local r = run({ include = { "nope" } })
         assert.is_true(r.failed)
         assert.are.equal("unarchive: archive.extract: no entry matches 'nope' (" .. src .. ")", r.msg)
         r = run({ src = work .. "/none.tgz" })
         assert.are.equal("unarchive: archive not found (controller:" .. work .. "/none.tgz)", r.msg)
         r = run({ src = work .. "/none.tgz" }, { check = true })
         assert.is_false(r.failed)
         assert.is_true(r.changed)
         on_node("mkdir -p " .. dest .. "/README")
         r = run()
         assert.is_true(r.failed)
         assert.are.equal("unarchive: etcd9:" .. dest .. "/README is a directory, the archive has a file there", r.msg)
      end)
   end)

   describe("the etcd release on etcd7", function()
      local dir, why_not, h, work, url, sums
      local ctl = localhost.new()
      local bin = "/opt/etcdrun-test/bin"

      setup(function()
         dir, why_not = lab.ensure(10)
         if not dir then
            return
         end
         local base = assert(lab.read(dir .. "/release_url")):gsub("%s+$", "") .. "/v3.4.23"
         url, sums = base .. "/etcd-v3.4.23-linux-amd64.tar.gz", base .. "/SHA256SUMS"
         work = helper.tmpdir()
         h = node(7, dir)
         assert(h:exec("rm -rf /opt/etcdrun-test"))
      end)

      teardown(function()
         if h then
            h:exec("rm -rf /opt/etcdrun-test")
            h:close()
         end
      end)


      it("downloads on the controller, places etcd and etcdctl, runs; the re-run changes nothing", function()
         if no_lab(dir, why_not) then return end
         local tarball = work .. "/etcd-v3.4.23-linux-amd64.tar.gz"
         local dl = { url = url, sums_url = sums, dest = tarball, cache = work .. "/cache" }
         local ua = { src = tarball, dest = bin, strip_components = 1, include = { "etcd", "etcdctl" } }
         -- check mode on a fresh controller: nothing fetched, nothing on the node
         local r = modtest.run("download", dl, ctl, { check = true })
         assert.is_true(r.changed)
         r = modtest.run("unarchive", ua, h, { check = true })
         assert.is_true(r.changed)
         assert.are.same({}, fs.list(work))
         assert.are.equal("", lab.ssh(dir, "etcd7", "ls /opt/etcdrun-test 2>&1 | grep -v 'No such'"))

         r = modtest.run("download", dl, ctl)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         r = modtest.run("unarchive", ua, h)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.same({ bin .. "/etcd", bin .. "/etcdctl" }, r.changed_files)
         local out, code = lab.ssh(dir, "etcd7", bin .. "/etcd --version && " .. bin .. "/etcdctl version")
         assert.are.equal(0, code, out)
         assert.matches("etcd Version: 3.4.23", out, 1, true)
         assert.matches("etcdctl version: 3.4.23", out, 1, true)

         assert.is_false(modtest.run("download", dl, ctl).changed)
         r = modtest.run("unarchive", ua, h)
         assert.is_false(r.changed, r.msg)
         assert.are.equal("2 files up to date", r.msg)
      end)

      it("a wrong checksum stops before the node is touched", function()
         if no_lab(dir, why_not) then return end
         h:exec("rm -rf /opt/etcdrun-test")
         local r = modtest.run("download", { url = url, sha256 = string.rep("ab", 32), dest = bin .. "/etcd.tgz",
            cache = work .. "/cache2" }, h)
         assert.is_true(r.failed)
         assert.are.equal("ECHECKSUM", r.code)
         local out = lab.ssh(dir, "etcd7", "test -e /opt/etcdrun-test && echo present || echo absent")
         assert.are.equal("absent\n", out)
      end)
   end)
end)
