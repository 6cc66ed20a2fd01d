-- The scheduler never abandons a coroutine: a task that yields something
-- that is not a job (a bare coroutine.yield in a run step, say) gets an error
-- raised where it yielded, so it fails through its own error handling, and a
-- run_once waiter on another host is released.
local sched = require("etcdrun.sched")
local helper = require("support.helper")

describe("scheduler", function()
   it("wakes a sleeper on time when it went to sleep after a polled job (not a second late)", function()
      local x509 = require("etcdrun.x509")
      local runtime = require("etcdrun.core.runtime")
      local res = sched.run({ function()
         local worst = 0
         for _ = 1, 3 do
            sched.await(x509.key_job({ type = "ec" })) -- a job that is polled, not signalled
            local t0 = runtime.monotonic()
            sched.sleep(0.05)
            worst = math.max(worst, runtime.monotonic() - t0)
         end
         return worst
      end })
      assert.is_true(res[1].ok, res[1].err)
      -- the loop used to wait its default second before looking again
      assert.is_true(res[1].values[1] < 0.5, ("slept %.3f s for 0.05"):format(res[1].values[1]))
   end)

   it("raises in a coroutine that yields something that is not a job, where it yielded", function()
      local res = sched.run({
         function()
            coroutine.yield()
            return "never"
         end,
         function()
            coroutine.yield({})
            return "never"
         end,
         function()
            return "three"
         end,
      })
      assert.is_false(res[1].ok)
      assert.matches("scheduler: a task yielded a nil, which is not a job", res[1].err)
      assert.is_false(res[2].ok)
      assert.matches("scheduler: a task yielded a table, which is not a job", res[2].err)
      assert.are.equal("three", res[3].values[1])
   end)

   it("fails a run_once step that yields, and releases the other hosts", function()
      local ws = helper.tmpdir()
      helper.write(ws .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n")
      helper.write(ws .. "/play.lua", [[
return { play "p" { hosts = "web", tasks = {
   task "once" { run_once = true, register = "r", run = function()
      coroutine.yield()
      return { changed = false, msg = "went on" }
   end },
   task "after" { debug = { msg = "after" } },
} } }
]])
      local out, _, code = helper.run(("cd %s && timeout 20 %s -i hosts play.lua 2>&1"):format(helper.q(ws),
         helper.q(helper.etcdrun)))
      assert.are.equal(1, code, out)
      assert.matches("failed%s+a%s+once .*scheduler: a task yielded a nil, which is not a job", out)
      assert.is_nil(out:find("traceback", 1, true), out)
   end)
end)
