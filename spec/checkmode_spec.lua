-- Check mode is the runner's, structurally: under --check a `run =` step does
-- not run unless it declares itself read-only (check_mode = false), and a
-- module's check cannot write on the controller (etcdrun.checkguard), so a
-- step or module that forgets check mode cannot change anything. Played by
-- the controller itself (ansible_connection=local), through the binary.
local helper = require("support.helper")

local q = helper.q

-- A workspace: inventory, playbook (text), and a site module whose check
-- forgets check mode and writes a cache file on the controller.
local function workspace(playbook_text)
   local ws = helper.tmpdir()
   helper.write(ws .. "/hosts", "[local]\nme ansible_connection=local\n")
   helper.write(ws .. "/play.lua", playbook_text)
   assert(os.execute("mkdir -p " .. q(ws .. "/modules")))
   helper.write(ws .. "/modules/forgetful.lua", [[
local fs = require("etcdrun.fs")
local M = { doc = "A module whose check writes a cache (spec fixture).",
   args = { path = { type = "path", required = true, doc = "the cache file" } } }
function M.check(_, args)
   local ok, err = fs.try.write(args.path, "cached\n")
   if not ok then
      return nil, err, "ECHECK"
   end
   return { changed = false, msg = "cache filled" }
end
return M
]])
   return ws
end

local function run(ws, args)
   return helper.run(("cd %s && %s -i hosts play.lua %s 2>&1"):format(q(ws), q(helper.etcdrun), args or ""))
end

-- Every file under dir changed since the marker (the marker itself aside).
local function written_since(dir, marker)
   local out = helper.run(("find %s -newer %s ! -path %s"):format(q(dir), q(marker), q(dir)))
   return out
end

describe("check mode", function()
   it("does not run a `run` step unless it declares check_mode = false", function()
      local ws = workspace([[
return { play "p" { hosts = "local", tasks = {
   task "writes" { run = function(ctx, v)
      local f = assert(io.open(v.inventory_dir .. "/ran", "w")); f:write("x"); f:close()
      return { changed = true }
   end },
   task "reads" { check_mode = false, register = "seen", run = function(_, v)
      return { changed = false, msg = "check=" .. tostring(v.ansible_check_mode) }
   end },
   task "show" { debug = { msg = "{{ seen.msg }}" } },
} } }
]])
      local out, _, code = run(ws, "-C -v")
      assert.are.equal(0, code, out)
      assert.is_nil(helper.read(ws .. "/ran"), "a run step ran under --check")
      assert.matches("skipped%s+me%s+writes", out)
      assert.matches("not run in check mode", out)
      assert.matches("check=true", out)
      -- and without --check both run
      out, _, code = run(ws, "-v")
      assert.are.equal(0, code, out)
      assert.are.equal("x", helper.read(ws .. "/ran"))
      assert.matches("check=false", out)
   end)

   it("keeps a module's check from writing on the controller", function()
      local ws = workspace([[
return { play "p" { hosts = "local", tasks = {
   task "cache" { forgetful = { path = "{{ inventory_dir }}/cache" } },
} } }
]])
      local out, _, code = run(ws, "-C")
      assert.are.equal(1, code, out)
      assert.matches("ECHECK: check mode writes nothing on the controller: fs%.write%(.*/cache%) refused", out)
      assert.is_nil(helper.read(ws .. "/cache"))
      out, _, code = run(ws, "")
      assert.are.equal(0, code, out)
      assert.are.equal("cached\n", helper.read(ws .. "/cache"))
   end)

   it("writes nothing anywhere on the controller with the built-in modules", function()
      local ws = workspace([[
return { play "p" { hosts = "local", tasks = {
   task "dir" { file = { path = "{{ inventory_dir }}/d", state = "directory", mode = "0750" } },
   task "copy" { copy = { dest = "{{ inventory_dir }}/d/c", content = "c\n", mode = "0600" } },
   task "template" { template = { src = "t.j2", dest = "{{ inventory_dir }}/d/t" } },
   task "line" { lineinfile = { path = "{{ inventory_dir }}/existing", line = "added" } },
   task "key" { x509_key = { path = "{{ inventory_dir }}/d/k.key" } },
   task "mode" { file = { path = "{{ inventory_dir }}/existing", mode = "0600" } },
} } }
]])
      helper.write(ws .. "/t.j2", "{{ inventory_hostname }}\n")
      helper.write(ws .. "/existing", "first\n")
      local home = ws .. "/home"
      assert(os.execute("mkdir -p " .. q(home)))
      local marker = ws .. "/.marker"
      helper.write(marker, "")
      helper.run("sleep 1.1")
      local out, _, code = helper.run(("cd %s && HOME=%s XDG_STATE_HOME=%s/state XDG_CACHE_HOME=%s/cache %s -C -D "
         .. "-i hosts play.lua 2>&1"):format(q(ws), q(home), q(home), q(home), q(helper.etcdrun)))
      assert.are.equal(0, code, out)
      assert.matches("changed%s+me%s+copy", out)
      assert.matches("changed%s+me%s+mode", out)
      assert.are.equal("", written_since(ws, marker), "check mode wrote on the controller")
      assert.are.equal("first\n", helper.read(ws .. "/existing"))
   end)
end)
