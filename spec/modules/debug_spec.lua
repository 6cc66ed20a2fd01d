-- The debug module: messages and variables, rendered stably; never changes.
-- It reads no host, so the controller stands in for every host.
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

local c = localhost.new()

describe("debug", function()
   it("refuses msg and var together, and unknown arguments", function()
      local ok, err = modtest.validate("debug", { msg = "a", var = "b" }, "site.lua:8")
      assert.is_nil(ok)
      assert.are.equal("site.lua:8: module 'debug': arguments msg and var are mutually exclusive", err)
      ok, err = modtest.validate("debug", { verbosity = 2 }, "site.lua:9")
      assert.is_nil(ok)
      assert.matches("unknown argument 'verbosity'", err)
      ok, err = modtest.validate("debug", { var = 3 }, "site.lua:9")
      assert.is_truthy(ok, err) -- a number becomes the string "3"
   end)

   local cases = {
      { { msg = "hello" }, "hello" },
      { {}, "Hello world!" },
      { { msg = 42 }, "42" },
      { { msg = { "a", "b" } }, '["a", "b"]' },
      { { msg = { b = 1, a = { true, false } } }, "{a = [true, false], b = 1}" },
      { { msg = {} }, "[]" },
      { { var = "out.stdout" }, 'out.stdout = "etcd1\\n"' },
      { { var = "out.lines.2" }, 'out.lines.2 = "b"' },
      { { var = "members" }, 'members = ["etcd1", "etcd2"]' },
      { { var = "nope" }, "nope: VARIABLE IS NOT DEFINED!" },
      { { var = "out.nope.deeper" }, "out.nope.deeper: VARIABLE IS NOT DEFINED!" },
   }
   local vars = { out = { stdout = "etcd1\n", lines = { "a", "b" } }, members = { "etcd1", "etcd2" } }
   for _, case in ipairs(cases) do
      it("shows " .. case[2], function()
         local r = modtest.run("debug", case[1], c, { vars = vars, check = false })
         assert.is_false(r.changed)
         assert.is_false(r.failed)
         assert.are.equal(case[2], r.msg)
         r = modtest.run("debug", case[1], c, { vars = vars, check = true })
         assert.are.equal(case[2], r.msg)
      end)
   end

   it("returns the value itself for a var, and copes with a view that raises", function()
      local r = modtest.run("debug", { var = "members" }, c, { vars = vars })
      assert.are.same({ "etcd1", "etcd2" }, r.value)
      local view = setmetatable({}, { __index = function(_, k) error("undefined variable '" .. k .. "'") end })
      r = modtest.run("debug", { var = "x" }, c, { vars = view })
      assert.is_false(r.failed)
      assert.are.equal("x: VARIABLE IS NOT DEFINED!", r.msg)
   end)

   it("cuts cycles", function()
      local t = { name = "t" }
      t.self = t
      assert.are.equal('{name = "t", self = <cycle>}', modtest.run("debug", { msg = t }, c).msg)
   end)
end)

-- The decision alone: the variable's value as gather records it, no host.
describe("debug plan", function()
   local mod = assert(module.load("debug"))
   local secret = setmetatable({}, { __tostring = function() return "<secret>" end })
   local cases = {
      { name = "a message", state = {}, args = { msg = "hello" }, want = { changed = false, msg = "hello" } },
      { name = "no message", state = {}, args = {}, want = { changed = false, msg = "Hello world!" } },
      { name = "a table message", state = {}, args = { msg = { b = 1, a = { "x\n" } } },
         want = { changed = false, msg = '{a = ["x\\n"], b = 1}' } },
      { name = "a string variable", state = { defined = true, value = "etcd1\n" }, args = { var = "out.stdout" },
         want = { changed = false, msg = 'out.stdout = "etcd1\\n"', result = { value = "etcd1\n" } } },
      { name = "a false variable", state = { defined = true, value = false }, args = { var = "flag" },
         want = { changed = false, msg = "flag = false", result = { value = false } } },
      { name = "a list variable", state = { defined = true, value = { "etcd1", "etcd2" } }, args = { var = "m" },
         want = { changed = false, msg = 'm = ["etcd1", "etcd2"]', result = { value = { "etcd1", "etcd2" } } } },
      { name = "a secret", state = { defined = true, value = secret }, args = { var = "key" },
         want = { changed = false, msg = "key = <secret>", result = { value = secret } } },
      { name = "undefined", state = { defined = false }, args = { var = "nope.x" },
         want = { changed = false, msg = "nope.x: VARIABLE IS NOT DEFINED!" } },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         for _, check in ipairs({ false, true }) do
            assert.are.same(case.want, module.plan(mod, case.state, case.args, { check = check }))
         end
      end)
   end

   it("gather records a value, false, and undefined (also from a view that raises)", function()
      local vars = { out = { stdout = "a" }, flag = false }
      assert.are.same({ defined = true, value = "a" }, mod.gather({ vars = vars }, { var = "out.stdout" }))
      assert.are.same({ defined = true, value = false }, mod.gather({ vars = vars }, { var = "flag" }))
      assert.are.same({ defined = false }, mod.gather({ vars = vars }, { var = "out.nope.x" }))
      local view = setmetatable({}, { __index = function(_, k) error("undefined variable '" .. k .. "'") end })
      assert.are.same({ defined = false }, mod.gather({ vars = view }, { var = "x" }))
      assert.are.same({}, mod.gather({ vars = vars }, { msg = "hi" }))
   end)
end)
