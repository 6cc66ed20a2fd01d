-- archive.extract under attack (issue 10): the process's working directory
-- never changes, no link resolves outside the target, the expanded size and
-- the number of entries are limited, and a refused archive leaves nothing.
local helper = require("support.helper")
local cjson = require("cjson")
local archive = require("etcdrun.core.archive")
local fs = require("etcdrun.core.fs")

local q = helper.q

local function mkarchive(path, format, entries)
   helper.write(path .. ".json", cjson.encode(entries))
   local _, err, code = helper.run("/usr/bin/python3 spec/support/mkarchive.py " .. q(path)
      .. " " .. format .. " < " .. q(path .. ".json"))
   assert(code == 0, err)
   return path
end

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

local function exists(path)
   return fs.stat(path, { follow = false }) ~= nil
end

-- Every path under dest, and what each resolves to, stays under dest.
local function all_inside(dest)
   local root = assert(fs.realpath(dest))
   for p in sh("find " .. q(dest)):gmatch("[^\n]+") do
      local real = fs.realpath(p)
      if real then
         assert(real == root or real:sub(1, #root + 1) == root .. "/",
            p .. " resolves to " .. real .. ", outside " .. root)
      end
   end
end

describe("archive.extract hardening", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   describe("the working directory", function()
      it("is never changed, so a relative path in another thread never sees the archive's known_hosts", function()
         local cwd = assert(fs.realpath("."))
         local pid = assert(fs.realpath("/proc/self")):match("(%d+)$")
         assert.is_false(exists("known_hosts")) -- the spec's own precondition
         local t = mkarchive(dir .. "/kh.tar", "tar", {
            { name = "known_hosts", data = "node9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil\n" },
            { name = "filler", data = string.rep("x", 1024 * 1024) },
         })
         -- the archive arrives through a FIFO: half of it, then a look at this
         -- process's cwd and at a relative "known_hosts" (as an SSH worker
         -- thread resolving its known_hosts would), then the rest; the
         -- extraction is in the middle of the archive while we look
         local fifo, log = dir .. "/fifo", dir .. "/cwd.log"
         sh("mkfifo " .. q(fifo))
         -- os.execute, not a pipe: the writer outlives the command that starts it
         assert(os.execute(("( head -c 600000 %s; { readlink /proc/%s/cwd; [ -e /proc/%s/cwd/known_hosts ]"
            .. " && echo seen; } > %s; tail -c +600001 %s ) > %s 2>/dev/null &")
            :format(q(t), pid, pid, q(log), q(t), q(fifo))))
         local dest = dir .. "/dest"
         local got = assert(archive.extract(fifo, dest))
         table.sort(got)
         assert.are.same({ "filler", "known_hosts" }, got)
         assert.are.equal(cwd .. "\n", helper.read(log))
         assert.are.equal(cwd, fs.realpath("."))
         assert.truthy(exists(dest .. "/known_hosts"))
      end)
   end)

   describe("links", function()
      it("refuses a hard link to a file an earlier entry replaced with a symlink", function()
         -- a/b/c/f a file, then a symlink to ../../../ (the target itself),
         -- then w -> a/b/c/f: linked, w would be a symlink above the target
         local t = mkarchive(dir .. "/hl.tar", "tar", {
            { name = "a/b/c/f", data = "file" },
            { name = "a/b/c/f", type = "symlink", link = "../../../" },
            { name = "w", type = "hardlink", link = "a/b/c/f" },
         })
         local dest = dir .. "/dest"
         local r, err, code = archive.extract(t, dest)
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
         assert.truthy(err:find("entry 'w' is a hard link to 'a/b/c/f'", 1, true), err)
         assert.is_false(exists(dest .. "/w"))
         assert.is_false(exists(dest)) -- everything it made is gone again
      end)

      it("refuses a hard link to a symlink of the archive", function()
         local t = mkarchive(dir .. "/hs.tar", "tar", {
            { name = "f", data = "file" },
            { name = "s", type = "symlink", link = "f" },
            { name = "h", type = "hardlink", link = "s" },
         })
         local r, _, code = archive.extract(t, dir .. "/dest")
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
      end)

      it("refuses a hard link through a symlinked directory of the archive", function()
         local t = mkarchive(dir .. "/hd.tar", "tar", {
            { name = "real/f", data = "file" },
            { name = "l", type = "symlink", link = "real" },
            { name = "h", type = "hardlink", link = "l/f" },
         })
         local r, err, code = archive.extract(t, dir .. "/dest")
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
         assert.truthy(err:find("entry 'h'", 1, true), err)
      end)

      it("links to a file replaced by a later file of the archive are fine", function()
         local t = mkarchive(dir .. "/ok.tar", "tar", {
            { name = "a/f", data = "old" },
            { name = "a/f", data = "new" },
            { name = "g", type = "hardlink", link = "a/f" },
            { name = "up", type = "symlink", link = "a/../a/f" },
            { name = "a/top", type = "symlink", link = ".." },
         })
         local dest = dir .. "/dest"
         local r, err, code = archive.extract(t, dest)
         -- "a/../a/f" climbs after a name: refused, the rest is removed
         assert.is_nil(r, err)
         assert.are.equal("EUNSAFE", code)
         t = mkarchive(dir .. "/ok2.tar", "tar", {
            { name = "a/f", data = "old" },
            { name = "a/f", data = "new" },
            { name = "g", type = "hardlink", link = "a/f" },
            { name = "a/top", type = "symlink", link = ".." },
         })
         assert(archive.extract(t, dest))
         assert.are.equal("new", helper.read(dest .. "/g"))
         all_inside(dest)
      end)

      it("replaces a symlink already at a file's path instead of writing through it", function()
         helper.write(dir .. "/victim", "precious")
         sh("mkdir -p " .. q(dir .. "/dest") .. " && ln -s ../victim " .. q(dir .. "/dest/f"))
         local t = mkarchive(dir .. "/f.tar", "tar", { { name = "f", data = "archive" } })
         assert(archive.extract(t, dir .. "/dest"))
         assert.are.equal("precious", helper.read(dir .. "/victim"))
         assert.are.equal("file", fs.stat(dir .. "/dest/f", { follow = false }).type)
         assert.are.equal("archive", helper.read(dir .. "/dest/f"))
      end)

      it("never writes through a symlinked directory already in the target", function()
         sh("mkdir -p " .. q(dir .. "/outside") .. " " .. q(dir .. "/dest")
            .. " && ln -s ../outside " .. q(dir .. "/dest/d"))
         local t = mkarchive(dir .. "/d.tar", "tar", {
            { name = "d/x", data = "pwned" },
         })
         local r, err, code = archive.extract(t, dir .. "/dest")
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
         assert.truthy(err:find("through the symlink 'd'", 1, true), err)
         assert.is_false(exists(dir .. "/outside/x"))
         assert.truthy(exists(dir .. "/dest/d")) -- what was there stays
      end)

      it("refuses a symlink climbing out from a deep directory", function()
         local t = mkarchive(dir .. "/deep.tar", "tar", {
            { name = "a/b/c/up", type = "symlink", link = "../../../../x" },
         })
         local r, _, code = archive.extract(t, dir .. "/dest")
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
         assert.is_false(exists(dir .. "/dest"))
      end)
   end)

   describe("limits", function()
      it("refuses a 10 KiB tar holding a 1 TiB sparse file, quickly, leaving nothing", function()
         sh("cd " .. q(dir) .. " && truncate -s 1T big && tar -cSf big.tar big && rm big")
         assert.is_true(fs.stat(dir .. "/big.tar").size < 64 * 1024)
         local t0 = os.time()
         local r, err, code = archive.extract(dir .. "/big.tar", dir .. "/dest")
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert.matches("^archive%.extract: archive expands beyond 4294967296 bytes .*entry 'big'.*"
            .. "%(.*/big%.tar%)$", err)
         assert.is_true(os.time() - t0 < 5)
         assert.is_false(exists(dir .. "/dest"))
      end)

      it("counts a sparse file by its declared size", function()
         sh("cd " .. q(dir) .. " && truncate -s 3M sparse && printf x >> sparse && tar -cSf s.tar sparse")
         local r, _, code = archive.extract(dir .. "/s.tar", dir .. "/d1", { max_bytes = 3 * 1024 * 1024 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert(archive.extract(dir .. "/s.tar", dir .. "/d2", { max_bytes = 3 * 1024 * 1024 + 1 }))
         assert.are.equal(3 * 1024 * 1024 + 1, fs.stat(dir .. "/d2/sparse").size)
      end)

      it("stops a compression bomb at max_bytes and removes what it wrote", function()
         local bomb = dir .. "/bomb.tar.gz"
         sh("cd " .. q(dir) .. " && mkdir -p src && printf small > src/a && head -c 8388608 /dev/zero > src/zeros"
            .. " && tar -czf " .. q(bomb) .. " -C src a zeros")
         assert.is_true(fs.stat(bomb).size < 64 * 1024)
         sh("mkdir -p " .. q(dir .. "/dest"))
         helper.write(dir .. "/dest/mine", "kept")
         local r, err, code = archive.extract(bomb, dir .. "/dest", { max_bytes = 1024 * 1024 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert.truthy(err:find("archive expands beyond 1048576 bytes", 1, true), err)
         assert.are.same({ "mine" }, fs.list(dir .. "/dest"))
         assert.are.equal("kept", helper.read(dir .. "/dest/mine"))
         assert(archive.extract(bomb, dir .. "/dest", { max_bytes = 8388608 + 5 }))
      end)

      it("limits zip archives too", function()
         local z = mkarchive(dir .. "/z.zip", "zip", { { name = "f", data = string.rep("y", 4096) } })
         local r, _, code = archive.extract(z, dir .. "/dz", { max_bytes = 4095 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert.is_false(exists(dir .. "/dz"))
      end)

      it("limits the number of entries", function()
         local entries = {}
         for i = 1, 20 do
            entries[i] = { name = "f" .. i, data = "x" }
         end
         local t = mkarchive(dir .. "/many.tar", "tar", entries)
         local r, err, code = archive.extract(t, dir .. "/dm", { max_entries = 10 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert.truthy(err:find("more than 10 entries", 1, true), err)
         assert.is_false(exists(dir .. "/dm"))
         assert.are.equal(20, #assert(archive.extract(t, dir .. "/dm", { max_entries = 20 })))
      end)

      it("raises on a malformed limit", function()
         local t = mkarchive(dir .. "/one.tar", "tar", { { name = "f", data = "x" } })
         assert.has_error(function() archive.extract(t, dir .. "/o", { max_bytes = -1 }) end)
         assert.has_error(function() archive.extract(t, dir .. "/o", { max_bytes = "big" }) end)
         assert.has_error(function() archive.extract(t, dir .. "/o", { max_entries = 1.5 }) end)
      end)
   end)
end)
