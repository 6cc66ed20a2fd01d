-- The debug module: messages and variables, rendered stably; never changes.
-- It reads no host, so the controller stands in for every host.
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")

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
