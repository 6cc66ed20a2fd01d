-- The scheduler never abandons a coroutine: a task that yields something
-- that is not a job (a bare coroutine.yield in a run step, say) is resumed
-- with nil and a reason, and a run_once waiter on another host is released.
local sched = require("etcdrun.sched")
local helper = require("support.helper")

describe("scheduler", function()
   it("resumes a coroutine that yields something that is not a job", function()
      local why = {}
      local res = sched.run({
         function()
            local _, err = coroutine.yield()
            why[1] = err
            return "one"
         end,
         function()
            local _, err = coroutine.yield({})
            why[2] = err
            return "two"
         end,
      })
      assert.is_true(res[1].ok)
      assert.are.equal("one", res[1].values[1])
      assert.are.equal("two", res[2].values[1])
      assert.matches("yielded a nil, which is not a job", why[1])
      assert.matches("yielded a table, which is not a job", why[2])
   end)

   it("does not hang a run_once whose step yields", function()
      local ws = helper.tmpdir()
      helper.write(ws .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n")
      helper.write(ws .. "/play.lua", [[
return { play "p" { hosts = "web", tasks = {
   task "once" { run_once = true, register = "r", run = function()
      coroutine.yield()
      return { changed = false, msg = "yielded and went on" }
   end },
   task "after" { debug = { msg = "{{ r.msg }}" } },
} } }
]])
      local out, _, code = helper.run(("cd %s && timeout 20 %s -v -i hosts play.lua 2>&1"):format(helper.q(ws),
         helper.q(helper.etcdrun)))
      assert.are.equal(0, code, out)
      assert.matches("ok%s+b%s+after.*yielded and went on", out)
   end)
end)
