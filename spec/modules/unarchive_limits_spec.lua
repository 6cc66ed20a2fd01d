-- unarchive refuses an archive that expands beyond max_bytes (default 4 GiB)
-- before anything reaches the host, and leaves no staging directory in its
-- cache (issue 10). Lab-free: the host is the controller itself.
local helper = require("support.helper")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local fs = require("etcdrun.fs")

local q = helper.q

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

local function trees()
   local base = os.getenv("XDG_CACHE_HOME")
   if not base or base == "" then
      base = (os.getenv("HOME") or "/tmp") .. "/.cache"
   end
   return base .. "/etcdrun/unarchive/trees"
end

-- staging directories of this process left in the cache
local function my_partials()
   local pid = assert(fs.realpath("/proc/self")):match("(%d+)$")
   local left = {}
   for _, n in ipairs(fs.try.list(trees()) or {}) do
      if n:find("^%.partial%-" .. pid .. "%-") then
         left[#left + 1] = n
      end
   end
   return left
end

describe("unarchive limits", function()
   local dir, h
   before_each(function()
      dir = helper.tmpdir()
      h = localhost.new()
   end)

   it("refuses a compression bomb beyond max_bytes, places nothing, leaves no staging dir", function()
      sh("cd " .. q(dir) .. " && mkdir -p src/pkg && printf hi > src/pkg/a && head -c 8388608 /dev/zero > src/pkg/zeros"
         .. " && tar -czf bomb.tar.gz -C src pkg")
      local r = modtest.run("unarchive", { src = dir .. "/bomb.tar.gz", dest = dir .. "/out", strip_components = 1,
         max_bytes = 1048576 }, h)
      assert.is_true(r.failed)
      assert.are.equal("EFBIG", r.code)
      assert.truthy(r.msg:find("archive expands beyond 1048576 bytes", 1, true), r.msg)
      assert.is_nil(fs.try.stat(dir .. "/out"))
      assert.are.same({}, my_partials())
      -- within the limit it is placed
      r = modtest.run("unarchive", { src = dir .. "/bomb.tar.gz", dest = dir .. "/out", strip_components = 1,
         max_bytes = 8388608 + 2 }, h)
      assert.is_false(r.failed, r.msg)
      assert.are.equal(8388608, fs.stat(dir .. "/out/zeros").size)
   end)

   it("refuses a 1 TiB sparse file by default, at once", function()
      sh("cd " .. q(dir) .. " && truncate -s 1T big && tar -cSf big.tar big && rm big")
      local t0 = os.time()
      local r = modtest.run("unarchive", { src = dir .. "/big.tar", dest = dir .. "/out" }, h)
      assert.is_true(r.failed)
      assert.are.equal("EFBIG", r.code)
      assert.truthy(r.msg:find("archive expands beyond 4294967296 bytes", 1, true), r.msg)
      assert.is_true(os.time() - t0 < 10)
      assert.is_nil(fs.try.stat(dir .. "/out"))
      assert.are.same({}, my_partials())
      -- check mode unpacks nothing either, and predicts the same refusal (archive.digests
      -- applies extract's limits before reading any data)
      t0 = os.time()
      r = modtest.run("unarchive", { src = dir .. "/big.tar", dest = dir .. "/out" }, h, { check = true })
      assert.is_true(r.failed)
      assert.are.equal("EFBIG", r.code)
      assert.truthy(r.msg:find("archive expands beyond 4294967296 bytes", 1, true), r.msg)
      assert.is_true(os.time() - t0 < 10)
      assert.is_nil(fs.try.stat(dir .. "/out"))
   end)

   it("checks the argument", function()
      local ok, err = modtest.validate("unarchive", { src = "a.tgz", dest = "/x", max_bytes = "4G" }, "site.lua:5")
      assert.is_nil(ok)
      assert.truthy(err:find("argument 'max_bytes' must be an integer", 1, true), err)
   end)
end)
