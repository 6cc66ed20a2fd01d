-- etcdrun.core.edit on a real pseudo-terminal (tmux): what Lua may do from
-- inside the completion callback, while libedit is still running el_gets().
-- The binary must never crash on it (issue 10).
local helper = require("support.helper")

local q = helper.q

describe("edit", function()
   local tmp, socket

   local function tmux(args)
      return helper.run(("tmux -S %s %s"):format(q(socket), args))
   end

   local function screen()
      local text = tmux("capture-pane -p -J -S - -t ed")
      return (text:gsub("[ \t]+\n", "\n"):gsub("%s+$", ""))
   end

   local function wait_for(pattern)
      local deadline = os.time() + 15
      local text
      repeat
         text = screen()
         if text:find(pattern) then
            return text
         end
         os.execute("sleep 0.05")
      until os.time() > deadline
      error(("timed out waiting for %q; the screen:\n%s"):format(pattern, text))
   end

   local function keys(...)
      local args = {}
      for _, k in ipairs({ ... }) do
         args[#args + 1] = q(k)
      end
      local _, err, code = tmux("send-keys -t ed " .. table.concat(args, " "))
      assert(code == 0, err)
   end

   -- A script whose completion callback does `what` (Lua code, with `ed` the
   -- editor), run on a terminal; after readline it tries the editor again.
   local function start(what)
      local script = tmp .. "/ed.lua"
      helper.write(script, ([[
         local edit = require("etcdrun.core.edit")
         local ed
         ed = assert(edit.new({ complete = function(before)
            %s
         end }))
         local line = ed:readline("> ")
         io.stdout:write("\nLINE[", tostring(line), "]\n")
         local ok, err = pcall(ed.readline, ed, "again> ")
         io.stdout:write("AGAIN[", tostring(ok), " ", tostring(err), "]\n")
         ed:close()
         ed:close()
      ]]):format(what))
      local cmd = ("EDITRC=/dev/null %s %s; echo EXITED $?; sleep 30"):format(q(helper.etcdrun), q(script))
      local _, err, rc = tmux("new-session -d -s ed -x 120 -y 30 " .. q(cmd))
      assert(rc == 0, err)
   end

   before_each(function()
      tmp = helper.tmpdir()
      socket = ("%s/tmux-%d"):format(tmp, math.random(1e9))
   end)

   after_each(function()
      tmux("kill-server")
   end)

   local function need_tmux()
      local _, _, code = helper.run("command -v tmux")
      if code ~= 0 then
         pending("tmux is not installed (apt-get install tmux)")
         return true
      end
      return false
   end

   it("closes the editor from its own completion callback when readline returns", function()
      if need_tmux() then return end
      for _ = 1, 5 do
         tmux("kill-server")
         socket = ("%s/tmux-%d"):format(tmp, math.random(1e9)) -- see below: a new server, a new socket
         start([[ed:close(); return "cd"]])
         wait_for(">$")
         keys("ab", "Tab")
         wait_for("> abcd$")
         keys("Enter")
         local text = wait_for("EXITED %d+")
         assert.matches("LINE%[abcd%]", text)
         assert.matches("AGAIN%[false [^\n]*editor is closed%]", text)
         assert.matches("EXITED 0", text)
      end
   end)

   it("refuses a second readline or a history change from the callback", function()
      if need_tmux() then return end
      start([[
            local ok, err = pcall(ed.readline, ed, "inner> ")
            local ok2, err2 = pcall(ed.add_history, ed, "x")
            local ok3, err3 = pcall(ed.load_history, ed, "/dev/null")
            return nil, ("%s %s|%s %s|%s %s"):format(ok, err, ok2, err2, ok3, err3)]])
      wait_for(">$")
      keys("ab", "Tab")
      local text = wait_for("> ab$")
      assert.matches("false [^\n]*readline is not allowed inside the completion callback", text)
      assert.matches("false [^\n]*add_history is not allowed", text)
      assert.matches("false [^\n]*load_history is not allowed", text)
      keys("Enter")
      wait_for("again>$")
      keys("Enter")
      text = wait_for("EXITED %d+")
      assert.matches("LINE%[ab%]", text)
      assert.matches("EXITED 0", text)
   end)

   it("reports a completion callback raising a non-string error", function()
      if need_tmux() then return end
      start([[error({})]])
      wait_for(">$")
      keys("ab", "Tab")
      wait_for("completion failed: table")
      keys("Enter")
      wait_for("again>$")
      keys("Enter")
      assert.matches("EXITED 0", wait_for("EXITED %d+"))
   end)

   it("exits with the code given to os.exit from the callback, terminal restored", function()
      if need_tmux() then return end
      for _ = 1, 5 do
         tmux("kill-server")
         -- a new server on a new socket: one started on the socket of a server
         -- still shutting down may exit at once ("server exited unexpectedly")
         socket = ("%s/tmux-%d"):format(tmp, math.random(1e9))
         start([[os.exit(7)]])
         wait_for(">$")
         keys("ab", "Tab")
         assert.matches("EXITED 7", wait_for("EXITED %d+"))
      end
   end)

   it("rejects a NaN sleep instead of casting it", function()
      local edit = require("etcdrun.core.edit")
      assert.has_error(function() edit.sleep(0 / 0) end, "edit.sleep: seconds must be a number, got nan")
      assert.has_error(function() edit.sleep(math.huge) end)
      edit.sleep(-1)
   end)
end)
