-- Generic building blocks a cluster playbook needs, on hosts the controller
-- plays itself: play `defaults` that rank below the inventory, and a rolling
-- handler (serial, order, gate, before) that restarts one host at a time between two
-- health checks, stops at the first failure and leaves the rest pending.
local helper = require("support.helper")

local q = helper.q

local function ws(playbook, hosts)
   local dir = helper.tmpdir()
   helper.write(dir .. "/hosts", hosts or "[web]\na ansible_connection=local\nb ansible_connection=local\n"
      .. "c ansible_connection=local port=9\n")
   helper.write(dir .. "/play.lua", (playbook:gsub("DIR", dir)))
   return dir
end

local function run(dir, args)
   local out, err, code = helper.run(("cd %s && XDG_STATE_HOME=%s/state %s -i hosts play.lua %s 2>&1"):format(
      q(dir), q(dir), q(helper.etcdrun), args or ""))
   return out .. err, code
end

describe("play defaults", function()
   it("rank below the inventory, play vars and -e", function()
      local dir = ws([[
return { play "p" { hosts = "web", defaults = { port = 1, color = "red", size = "s" }, vars = { size = "m" },
   tasks = { task "show" { debug = { msg = "{{ inventory_hostname }} {{ port }} {{ color }} {{ size }}" } },
             task "fn" { debug = { msg = function(v) return "fn " .. v.port end } } } } }
]])
      local out, code = run(dir, "-v -e color=blue")
      assert.are.equal(0, code, out)
      assert.matches("a 1 blue m", out)
      assert.matches("c 9 blue m", out)
      assert.matches("fn 9", out)
   end)

   it("must be a table of names, checked at load", function()
      local dir = ws([[return { play "p" { hosts = "web", defaults = "x", tasks = {} } }]])
      local out, code = run(dir)
      assert.are.equal(1, code, out)
      assert.matches("play.lua:1: play 'p': defaults must be a table of name = value", out)
   end)
end)

describe("a rolling handler", function()
   local ROLL = [[
local function log(what)
   return function(_, v)
      local f = assert(io.open("DIR/log", "a"))
      f:write(what, " ", v.inventory_hostname, "\n")
      f:close()
      if what == "after" and v.inventory_hostname == v("fail_after", "") then
         return nil, "unhealthy after " .. v.inventory_hostname
      end
      return { changed = false }
   end
end
return { play "p" { hosts = "web", tasks = {
   task "config" { debug = { msg = "x" }, changed_when = true, notify = "restart" },
}, handlers = {
   handler "restart" {
      run = function(_, v)
         local f = assert(io.open("DIR/log", "a"))
         f:write("restart ", v.inventory_hostname, "\n")
         f:close()
         return { changed = true }
      end,
      serial = 1,
      order = function(names) table.sort(names, function(x, y) return x > y end) return names end,
      gate = task "healthy" { run = function(ctx, v)
         local f = assert(io.open("DIR/phase", "r"))
         local phase = f:read("l")
         f:close()
         f = assert(io.open("DIR/phase", "w"))
         f:write(phase == "before" and "after" or "before")
         f:close()
         return log(phase)(ctx, v)
      end },
   },
} } }
]]

   it("runs one host at a time, in order, between two gate runs", function()
      local dir = ws(ROLL)
      helper.write(dir .. "/phase", "before\n")
      local out, code = run(dir)
      assert.are.equal(0, code, out)
      assert.are.equal(table.concat({ "before c", "restart c", "after c", "before b", "restart b", "after b",
         "before a", "restart a", "after a", "" }, "\n"), helper.read(dir .. "/log"))
   end)

   it("stops at the first failed gate and leaves the rest pending for the next run", function()
      local dir = ws(ROLL)
      helper.write(dir .. "/phase", "before\n")
      local out, code = run(dir, "-e fail_after=b")
      assert.are.equal(1, code, out)
      assert.are.equal(table.concat({ "before c", "restart c", "after c", "before b", "restart b", "after b", "" },
         "\n"), helper.read(dir .. "/log"))
      assert.matches("handler 'restart' stopped rolling; not yet run on a %(pending for the next run%)", out)
      -- the next run (nothing changes now) finishes the roll on a
      helper.write(dir .. "/log", "")
      local pb = helper.read(dir .. "/play.lua"):gsub("changed_when = true", "changed_when = false")
      helper.write(dir .. "/play.lua", pb)
      out, code = run(dir)
      assert.are.equal(0, code, out)
      assert.matches("handler 'restart' is pending from an interrupted run", out)
      assert.are.equal("before a\nrestart a\nafter a\n", helper.read(dir .. "/log"))
   end)

   it("is refused on a task, and without serial", function()
      local dir = ws([[return { play "p" { hosts = "web", tasks = {
         task "t" { debug = { msg = "x" }, serial = 1 } } } }]])
      local out, code = run(dir)
      assert.are.equal(1, code, out)
      assert.matches("serial, order, gate and before are for handlers", out)
      dir = ws([[return { play "p" { hosts = "web", tasks = {}, handlers = {
         handler "h" { debug = { msg = "x" }, order = function(n) return n end } } } }]])
      out, code = run(dir)
      assert.are.equal(1, code, out)
      assert.matches("order, gate and before need serial", out)
   end)

   it("runs its before task after the first gate, on each host in turn", function()
      local dir = ws((ROLL:gsub("      serial = 1,", [[
      serial = 1,
      before = task "leadership away" { run = log("away") },]])))
      helper.write(dir .. "/phase", "before\n")
      local out, code = run(dir)
      assert.are.equal(0, code, out)
      assert.are.equal(table.concat({ "before c", "away c", "restart c", "after c", "before b", "away b", "restart b",
         "after b", "before a", "away a", "restart a", "after a", "" }, "\n"), helper.read(dir .. "/log"))
   end)
end)
