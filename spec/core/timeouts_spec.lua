-- Every primitive that takes a timeout reads it the same way (issue 10):
-- math.huge means no deadline (never an inf cast to an integer, which is
-- undefined behaviour), NaN and negative values raise. No lab needed: a
-- refused connection on loopback ends each wait.
local ssh = require("etcdrun.core.ssh")
local http = require("etcdrun.core.http")
local sched = require("etcdrun.sched")

local BAD = { 0 / 0, -1, -math.huge }

describe("timeouts", function()
   it("ssh: Job:wait and ssh.wait take math.huge and refuse NaN and negatives", function()
      local s = ssh.session({ name = "lo", host = "127.0.0.1", port = 1, config = false, timeout = 2 })
      local job = s:submit("connect")
      for _, bad in ipairs(BAD) do
         assert.has_error(function() job:wait(bad) end)
         assert.has_error(function() ssh.wait(bad) end)
      end
      assert.has_error(function() ssh.wait("1") end)
      local ok, err, code = job:wait(math.huge)
      assert.is_nil(ok)
      assert.are.equal("ECONNREFUSED", code, err)
      local job2 = s:submit("connect")
      assert.is_table(ssh.wait(math.huge)) -- returns once a job has finished
      job2:wait(1e300)
      for _, bad in ipairs(BAD) do
         assert.has_error(function() s:submit("exec", "true", { timeout = bad }) end)
      end
      s:close()
      assert.has_error(function() ssh.session({ host = "x", timeout = -1 }) end)
      assert.has_error(function() ssh.session({ host = "x", timeout = math.huge }) end)
      -- a huge protocol timeout is kept finite rather than refused
      ssh.session({ host = "x", timeout = math.maxinteger }):close()
   end)

   it("http: math.huge is no limit, NaN and negatives raise", function()
      local r, err, code = http.request({ url = "http://127.0.0.1:1/", timeout = math.huge,
         connect_timeout = math.huge })
      assert.is_nil(r)
      assert.are.equal("ECONNREFUSED", code, err)
      for _, bad in ipairs(BAD) do
         assert.has_error(function() http.request({ url = "http://127.0.0.1:1/", timeout = bad }) end)
      end
   end)

   it("sched.sleep refuses what would never wake", function()
      for _, bad in ipairs({ 0 / 0, -1, math.huge, "1" }) do
         assert.has_error(function() sched.sleep(bad) end)
      end
      sched.sleep(0)
   end)
end)
