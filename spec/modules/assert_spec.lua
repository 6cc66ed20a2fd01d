-- The assert module: booleans and lists of them, messages, and values that
-- are not booleans. It reads no host: the controller stands in.
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

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

-- The decision alone: the conditions' values as gather records them (a
-- function's value; none after the first that is not true), no host.
describe("assert plan", function()
   local mod = assert(module.load("assert"))
   local f = function() return true end
   local cases = {
      { name = "one true", state = { values = { true } }, args = { that = true },
         want = { changed = false, msg = "all assertions passed" } },
      { name = "all true, success_msg", state = { values = { true, true } },
         args = { that = { true, true }, success_msg = "cluster healthy" },
         want = { changed = false, msg = "cluster healthy" } },
      { name = "quiet", state = { values = { true } }, args = { that = { true }, quiet = true },
         want = { changed = false } },
      { name = "a function's value", state = { values = { true, true } }, args = { that = { true, f } },
         want = { changed = false, msg = "all assertions passed" } },
      { name = "a function that said false", state = { values = { false } }, args = { that = { f, true } },
         want = { failed = true, msg = "assertion 1 of 2 failed", result = { assertion = 1 } } },
      { name = "the second fails", state = { values = { true, false } }, args = { that = { true, false, true } },
         want = { failed = true, msg = "assertion 2 of 3 failed", result = { assertion = 2 } } },
      { name = "fail_msg", state = { values = { false } }, args = { that = false, fail_msg = "3 members" },
         want = { failed = true, msg = "3 members", result = { assertion = 1 } } },
      { name = "a string", state = { values = { true, "yes" } }, args = { that = { true, "yes" } },
         want = { failed = true, msg = "assert: that[2] is string yes, not true or false" } },
      { name = "a hole, with fail_msg", state = { values = { true } },
         args = { that = { true, nil, true }, fail_msg = "x" },
         want = { failed = true, msg = "assert: that[2] is nil, not true or false: x" } },
      { name = "a function that returned nil", state = { values = {} }, args = { that = { f } },
         want = { failed = true, msg = "assert: that[1] is nil, not true or false" } },
      { name = "an empty list", state = { values = {} }, args = { that = {} },
         want = { failed = true, msg = "assert: 'that' is an empty list" } },
      { name = "a map", state = { values = {} }, args = { that = { ok = true } },
         want = { failed = true, msg = "assert: 'that' must be a boolean or a list of booleans" } },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         for _, check in ipairs({ false, true }) do
            assert.are.same(case.want, module.plan(mod, case.state, case.args, { check = check }))
         end
      end)
   end

   it("gather calls the functions in order and none after the first that is not true", function()
      local called = {}
      local function cond(i, v)
         return function(vars)
            called[#called + 1] = i
            return v and vars.n == 3
         end
      end
      local st = mod.gather({ vars = { n = 3 } }, { that = { cond(1, true), true, cond(3, false), cond(4, true) } })
      assert.are.same({ values = { true, true, false } }, st)
      assert.are.same({ 1, 3 }, called)
   end)
end)
