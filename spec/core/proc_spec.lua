-- etcdrun.core.proc: local commands with stdin, bounded output and a
-- deadline that holds whatever the command does with its pipes (issue 10).
local proc = require("etcdrun.core.proc")
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")

local now = runtime.monotonic

-- Whether a process whose command line is exactly `cmd` still runs.
local function running(cmd)
   local r = assert(proc.run("pgrep -fx '" .. cmd .. "' >/dev/null && echo yes || echo no"))
   return r.stdout == "yes\n"
end

describe("proc.run", function()
   it("returns stdout, stderr and the exit status", function()
      local r = assert(proc.run("echo out; echo err >&2; exit 3"))
      assert.are.same({ "out\n", "err\n", 3, false }, { r.stdout, r.stderr, r.status, r.truncated })
   end)

   it("feeds 20 MiB of stdin whole", function()
      local data = string.rep("0123456789abcdef", 65536 * 20)
      local r = assert(proc.run("sha256sum", { stdin = data, timeout = 60 }))
      assert.are.equal(fs.sha256(data), r.stdout:match("^(%x+)"))
      -- a command that reads its input only after a pause still gets all of it
      r = assert(proc.run("sleep 0.5; wc -c", { stdin = data, timeout = 60 }))
      assert.are.equal(#data, tonumber(r.stdout))
   end)

   it("times out a command that closed its stdout and stderr, and kills it", function()
      local t = now()
      local r, err, code = proc.run("exec >&- 2>&-; sleep 31", { timeout = 1 })
      local took = now() - t
      assert.is_nil(r)
      assert.are.equal("ETIMEDOUT", code)
      assert.matches("proc%.run: command timed out after 1%.0 s and was killed", err)
      assert.is_true(took < 3, "took " .. took .. " s")
      assert.is_false(running("sleep 31"))
   end)

   it("waits for the exit of a command that closed its output early", function()
      local r = assert(proc.run("exec >&- 2>&-; sleep 0.3; exit 4", { timeout = 10 }))
      assert.are.equal(4, r.status)
      -- and it still gets the stdin it reads after closing its output
      local data = string.rep("x", 3 * 1024 * 1024)
      r = assert(proc.run("exec 3>&1 >&- 2>&-; sleep 0.2; wc -c >&3", { stdin = data, timeout = 10 }))
      assert.are.equal(#data, tonumber(r.stdout))
   end)

   it("times out while stdin is still being written", function()
      local t = now()
      local _, _, code = proc.run("sleep 32", { stdin = string.rep("x", 8 * 1024 * 1024), timeout = 1 })
      assert.are.equal("ETIMEDOUT", code)
      assert.is_true(now() - t < 3)
      assert.is_false(running("sleep 32"))
   end)

   it("takes math.huge as no timeout and rejects NaN and negative timeouts", function()
      local r = assert(proc.run("echo ok", { timeout = math.huge }))
      assert.are.equal("ok\n", r.stdout)
      r = assert(proc.run("echo ok", { timeout = 1e300 }))
      assert.are.equal("ok\n", r.stdout)
      assert.has_error(function() proc.run("true", { timeout = 0 / 0 }) end)
      assert.has_error(function() proc.run("true", { timeout = -1 }) end)
      assert.has_error(function() proc.run("true", { timeout = -math.huge }) end)
      assert.has_error(function() proc.run("true", { timeout = "1" }) end)
      assert.has_error(function() proc.run("true", { max_output = -1 }) end)
   end)

   it("refuses a NUL byte in the command (sh would run only the part before it)", function()
      assert.has_error(function() proc.run("true\0; rm -rf /tmp/x") end)
   end)

   it("reports the signal that killed a command", function()
      local r = assert(proc.run("kill -TERM $$"))
      assert.are.equal(143, r.status)
      assert.are.equal(15, r.signal)
   end)
end)
