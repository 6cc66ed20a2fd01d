-- The assert module: booleans and lists of them, messages, and values that
-- are not booleans. It reads no host: the controller stands in.
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")

local c = localhost.new()

describe("assert", function()
   it("needs that, and knows its arguments", function()
      local ok, err = modtest.validate("assert", {}, "site.lua:4")
      assert.is_nil(ok)
      assert.are.equal("site.lua:4: module 'assert': argument 'that' is required", err)
      ok, err = modtest.validate("assert", { that = true, msg = "x" }, "site.lua:5")
      assert.is_nil(ok)
      assert.matches("unknown argument 'msg'", err)
   end)

   -- { args, failed, msg }
   local cases = {
      { { that = true }, false, "all assertions passed" },
      { { that = { true, true } }, false, "all assertions passed" },
      { { that = { true, true }, success_msg = "cluster healthy" }, false, "cluster healthy" },
      { { that = { true, true }, quiet = true }, false, nil },
      { { that = false }, true, "assertion 1 of 1 failed" },
      { { that = { true, false, true } }, true, "assertion 2 of 3 failed" },
      { { that = { true, false }, fail_msg = "3 members expected" }, true, "3 members expected" },
      { { that = { true, "yes" } }, true, "assert: that[2] is string yes, not true or false" },
      { { that = { true, nil, true } }, true, "assert: that[2] is nil, not true or false" },
      { { that = { 1 } }, true, "assert: that[1] is number 1, not true or false" },
      { { that = {} }, true, "assert: 'that' is an empty list" },
      { { that = { ok = true } }, true, "assert: 'that' must be a boolean or a list of booleans" },
      { { that = { function(v) return v.n == 3 end } }, false, "all assertions passed" },
      { { that = { function(v) return v.n == 4 end } }, true, "assertion 1 of 1 failed" },
   }
   for i, case in ipairs(cases) do
      it(("case %d: %s"):format(i, tostring(case[3])), function()
         for _, check in ipairs({ false, true }) do
            local r = modtest.run("assert", case[1], c, { vars = { n = 3 }, check = check })
            assert.are.equal(case[2], r.failed)
            assert.is_false(r.changed)
            assert.are.equal(case[3], r.msg)
         end
      end)
   end

   it("says which assertion failed in the result", function()
      local r = modtest.run("assert", { that = { true, true, false } }, c)
      assert.are.equal(3, r.assertion)
   end)
end)
