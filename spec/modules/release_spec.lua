-- release decides from the checksum list and the cached copies' digests, no
-- network needed; one case fetches through file:// into a temporary cache.
local module = require("etcdrun.module")
local helper = require("support.helper")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local fs = require("etcdrun.core.fs")

local mod = assert(module.load("release"))
local A, B = string.rep("a", 64), string.rep("b", 64)
local ARGS = { base_url = "https://example.org/rel/", files = { "x-amd64.tgz", "x-arm64.tgz" }, cache = "/c" }

describe("release plan", function()
   local CASES = {
      { "both cached and verified", { sums = { ["x-amd64.tgz"] = A, ["x-arm64.tgz"] = B },
         have = { ["x-amd64.tgz"] = A, ["x-arm64.tgz"] = B }, cache = "/c" },
         { changed = false, msg = "x-amd64.tgz, x-arm64.tgz (cached, sha256 verified)" } },
      { "one missing", { sums = { ["x-amd64.tgz"] = A, ["x-arm64.tgz"] = B },
         have = { ["x-amd64.tgz"] = A, ["x-arm64.tgz"] = false }, cache = "/c" },
         { changed = true, msg = "would download x-arm64.tgz", fetch = { "x-arm64.tgz" } } },
      { "a cached copy that no longer matches", { sums = { ["x-amd64.tgz"] = A, ["x-arm64.tgz"] = B },
         have = { ["x-amd64.tgz"] = B, ["x-arm64.tgz"] = B }, cache = "/c" },
         { changed = true, fetch = { "x-amd64.tgz" } } },
      { "a file the list does not name", { sums = { ["x-amd64.tgz"] = A }, have = {}, cache = "/c" },
         { failed = true, msg = "release: no sha256 for x-arm64.tgz in https://example.org/rel/SHA256SUMS" } },
   }
   for _, c in ipairs(CASES) do
      it(c[1], function()
         local p = module.plan(mod, c[2], ARGS)
         for k, v in pairs(c[3]) do
            assert.are.same(v, p[k], k)
         end
         if not p.failed then
            assert.are.same({ ["x-amd64.tgz"] = "/c/x-amd64.tgz", ["x-arm64.tgz"] = "/c/x-arm64.tgz" }, p.result.paths)
         end
      end)
   end

   it("fetches through file://, verified; a second run fetches nothing; a bad sum fails", function()
      local dir = helper.tmpdir()
      assert(fs.mkdir(dir .. "/rel"))
      helper.write(dir .. "/rel/f.tgz", "payload\n")
      helper.write(dir .. "/rel/SHA256SUMS", fs.sha256("payload\n") .. "  f.tgz\n")
      local args = { base_url = "file://" .. dir .. "/rel", files = { "f.tgz" }, cache = dir .. "/cache" }
      local r = modtest.run("release", args, localhost.new())
      assert.is_false(r.failed, r.msg)
      assert.is_true(r.changed)
      assert.are.equal("payload\n", helper.read(dir .. "/cache/f.tgz"))
      r = modtest.run("release", args, localhost.new())
      assert.is_false(r.changed, r.msg)
      helper.write(dir .. "/rel/SHA256SUMS", string.rep("0", 64) .. "  f.tgz\n")
      os.remove(dir .. "/cache/f.tgz")
      r = modtest.run("release", args, localhost.new())
      assert.is_true(r.failed)
      assert.matches("sha256", r.msg)
      assert.is_nil(helper.read(dir .. "/cache/f.tgz"))
   end)
end)
