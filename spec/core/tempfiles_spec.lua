-- Temporary files a killed run left behind are removed by the next write of
-- the same name; a live writer's are never touched (issue 10). Temp names
-- carry the writer's pid: ".NAME.etcdrun-<pid>-XXXXXX".
local helper = require("support.helper")
local fs = require("etcdrun.core.fs")
local http = require("etcdrun.http")
local checkguard = require("etcdrun.checkguard")

local q = helper.q

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

-- A pid that is certainly not running: a shell that has exited.
local function dead_pid()
   local pid = tonumber((sh("sh -c 'echo $$'")))
   assert(not fs.stat("/proc/" .. pid), "pid reused already")
   return pid
end

local function my_pid()
   return tonumber(assert(fs.realpath("/proc/self")):match("(%d+)$"))
end

-- Make path look untouched for 20 minutes.
local function age(path)
   sh("touch -h -d '20 minutes ago' " .. q(path))
end

local function exists(path)
   return fs.stat(path, { follow = false }) ~= nil
end

describe("stale temporary files", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   it("fs.write names its temp with its pid and leaves none behind", function()
      assert(fs.write(dir .. "/f", "x"))
      assert.are.same({ "f" }, fs.list(dir))
      local name = assert(fs.tempname(dir .. "/f"))
      assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/%.f%.etcdrun%-" .. my_pid() .. "%-%w%w%w%w%w%w$", name)
   end)

   it("fs.write removes a dead writer's old temp, keeps a live or recent one and other names", function()
      local dead = ("%s/.f.etcdrun-%d-AbC123"):format(dir, dead_pid())
      local recent_dead = ("%s/.f.etcdrun-%d-ZZZ999"):format(dir, dead_pid())
      local live = ("%s/.f.etcdrun-%d-LiVe00"):format(dir, my_pid())
      local init = ("%s/.f.etcdrun-1-init00"):format(dir) -- pid 1 is alive
      local legacy_old = dir .. "/.f.etcdrun-Xy12Ab"      -- no pid: an older version's
      local other = ("%s/.g.etcdrun-%d-AbC123"):format(dir, dead_pid())
      for _, p in ipairs({ dead, recent_dead, live, init, legacy_old, other }) do
         helper.write(p, "partial")
      end
      for _, p in ipairs({ dead, live, init, other }) do
         age(p)
      end
      sh("touch -d '2 days ago' " .. q(legacy_old))
      assert(fs.write(dir .. "/f", "content"))
      assert.is_false(exists(dead))
      assert.is_false(exists(legacy_old))
      assert.truthy(exists(recent_dead)) -- might be a writer on another machine still at it
      assert.truthy(exists(live))
      assert.truthy(exists(init))
      assert.truthy(exists(other))    -- another file's temps are that file's business
      assert.are.equal("content", helper.read(dir .. "/f"))
   end)

   it("never follows a stale temp that is a symlink, and removes a stale temp directory", function()
      helper.write(dir .. "/victim", "keep")
      local link = ("%s/.f.etcdrun-%d-link00"):format(dir, dead_pid())
      local tdir = ("%s/.f.etcdrun-%d-dir000"):format(dir, dead_pid())
      sh("ln -s victim " .. q(link) .. " && mkdir -p " .. q(tdir .. "/sub") .. " && touch " .. q(tdir .. "/sub/x"))
      age(link)
      age(tdir)
      assert(fs.write(dir .. "/f", "x"))
      assert.is_false(exists(link))
      assert.is_false(exists(tdir))
      assert.are.equal("keep", helper.read(dir .. "/victim"))
   end)

   it("http downloads sweep the destination's stale temps too", function()
      helper.write(dir .. "/src", "payload")
      local sha = fs.sha256("payload")
      local dead = ("%s/.out.etcdrun-%d-AbC123"):format(dir, dead_pid())
      local live = ("%s/.out.etcdrun-%d-LiVe00"):format(dir, my_pid())
      local legacy = dir .. "/.out.etcdrun-0123456789abcdef" -- the old http.lua name
      for _, p in ipairs({ dead, live, legacy }) do
         helper.write(p, "partial")
         age(p)
      end
      sh("touch -d '2 days ago' " .. q(legacy))
      assert(http.download({ url = "file://" .. dir .. "/src", dest = dir .. "/out", sha256 = sha,
         cache = false, mode = "0600" }))
      assert.are.equal("payload", helper.read(dir .. "/out"))
      assert.are.equal(384, fs.stat(dir .. "/out").mode)
      assert.is_false(exists(dead))
      assert.is_false(exists(legacy))
      assert.truthy(exists(live))
   end)

   it("mkdtemp names directories with the pid and removes dead runs' ones (unarchive's .partial-*)", function()
      local dead = ("%s/.partial-%d-AbC123"):format(dir, dead_pid())
      local live = ("%s/.partial-%d-LiVe00"):format(dir, my_pid())
      local legacy = dir .. "/.partial-Qw12Er"
      for _, p in ipairs({ dead, live, legacy }) do
         sh("mkdir -p " .. q(p .. "/a/b") .. " && touch " .. q(p .. "/a/b/f"))
         age(p)
      end
      sh("touch -d '2 days ago' " .. q(legacy))
      local made = assert(fs.mkdtemp(dir .. "/.partial-"))
      assert.matches("/%.partial%-" .. my_pid() .. "%-%w+$", made)
      assert.is_false(exists(dead))
      assert.is_false(exists(legacy))
      assert.truthy(exists(live))
      -- fs.sweep does the same on its own, as unarchive does for its cache
      local dead2 = ("%s/.partial-%d-AbC124"):format(dir, dead_pid())
      sh("mkdir " .. q(dead2))
      age(dead2)
      assert.are.equal(1, fs.sweep(dir, ".partial-"))
      assert.is_false(exists(dead2))
      assert.are.equal(0, fs.sweep(dir .. "/missing", ".partial-"))
      assert.has_error(function() fs.sweep(dir, "") end)
   end)

   it("check mode sweeps nothing", function()
      local dead = ("%s/.f.etcdrun-%d-AbC123"):format(dir, dead_pid())
      helper.write(dead, "partial")
      age(dead)
      -- looked up at call time: checkguard swaps the core's writers
      local ok, r, err, code = checkguard.run(function() return fs.sweep(dir, ".f.etcdrun-") end)
      assert.is_true(ok)
      assert.is_nil(r)
      assert.are.equal("ECHECK", code, err)
      local _, _, terr, tcode = checkguard.run(function() return fs.tempname(dir .. "/f") end)
      err, code = terr, tcode
      assert.are.equal("ECHECK", code, err)
      assert.truthy(exists(dead))
   end)
end)
