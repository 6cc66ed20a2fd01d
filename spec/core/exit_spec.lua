-- os.exit is main.c's: it closes the Lua state (sessions cancel and join
-- their worker threads, key jobs join theirs) before exit(), so library
-- teardown never races a thread of ours (issue 10). No lab needed here; the
-- runs with jobs on nodes are in spec/ssh_spec.lua.
local helper = require("support.helper")

local q = helper.q

local function run(code)
   local _, err, rc = helper.run(("%s -e %s"):format(q(helper.etcdrun), q(code)))
   return rc, err
end

describe("os.exit", function()
   it("exits with the code asked for, in every form", function()
      assert.are.equal(0, (run("os.exit()")))
      assert.are.equal(0, (run("os.exit(true)")))
      assert.are.equal(1, (run("os.exit(false)")))
      assert.are.equal(6, (run("os.exit(6, true)")))
      assert.are.equal(7, (run("os.exit(7, false)")))
   end)

   it("from a finalizer while the state closes: the close goes on, with that code", function()
      assert.are.equal(3, (run("X = setmetatable({}, { __gc = function() os.exit(3) end })")))
      assert.are.equal(3, (run("X = setmetatable({}, { __gc = function() os.exit(3) end }) os.exit(4)")))
   end)

   it("from a coroutine, with sessions connecting and keys generated, 20 times", function()
      local code = [[
         local ssh = require("etcdrun.core.ssh")
         local x509 = require("etcdrun.core.x509")
         local keep = {}
         for i = 1, 3 do
            local s = ssh.session({ host = "127.0.0.1", port = 1, config = false, timeout = 2 })
            keep[#keep + 1] = { s, s:submit("connect"), s:submit("exec", "true") }
            keep[#keep + 1] = x509.key_job({ type = "rsa", bits = 2048 })
         end
         coroutine.wrap(function() os.exit(9) end)()
      ]]
      for i = 1, 20 do
         local rc, err = run(code)
         assert.are.equal(9, rc, ("run %d: %s"):format(i, err))
      end
   end)
end)
