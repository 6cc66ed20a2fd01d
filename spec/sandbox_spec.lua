-- etcdrun.sandbox: modules and playbooks run strict (undefined globals raise,
-- reading or assigning) and cannot require etcdrun.core.*; what ships loads.
local helper = require("support.helper")
local sandbox = require("etcdrun.sandbox")
local module = require("etcdrun.module")
local playbook = require("etcdrun.playbook")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local q = helper.q

local INTERNAL = "etcdrun%.core%.ssh is internal: modules and playbooks use the public API %(etcdrun%.fs, "
   .. "etcdrun%.x509, .-the host object and ctx; see modules/README%.md%)"

local function pat(s)
   return (s:gsub("%p", "%%%0"))
end

-- A fresh directory with modules/<name>.lua holding `src`; returns the dir
-- and the module's path.
local function site_module(name, src)
   local dir = helper.tmpdir()
   assert(require("etcdrun.fs").mkdir(dir .. "/modules"))
   local file = dir .. "/modules/" .. name .. ".lua"
   helper.write(file, src)
   return dir, file
end

local MODULE_TAIL = [[
return {
   doc = "probe",
   gather = function() return {} end,
   plan = function() return { changed = false, msg = "fine" } end,
}
]]

local function load_error(name, dir)
   local ok, err = pcall(module.load, name, { dir .. "/modules" })
   assert.is_false(ok)
   return err
end

-- Run the binary on a playbook in dir against the controller as localhost.
local function run_playbook(dir, text, flags)
   helper.write(dir .. "/hosts", "localhost ansible_connection=local\n")
   helper.write(dir .. "/pb.lua", text)
   return helper.run("cd " .. q(dir) .. " && " .. q(helper.etcdrun) .. " -i hosts pb.lua " .. (flags or "")
      .. " </dev/null")
end

describe("the sandbox environment", function()
   it("has the standard library and the names it is given", function()
      local env = sandbox.new({ extra = { answer = 42 } })
      local chunk = assert(load("return string.rep('a', 2), math.max(1, 2), answer, type(io.write), _G.answer",
         "=t", "t", env))
      assert.are.same({ "aa", 2, 42, "function", 42 }, { chunk() })
   end)

   it("raises on reading an undefined global, naming file:line, as a user error", function()
      local chunk = assert(load("local a = 1\nreturn greting", "=probe.lua", "t", sandbox.new()))
      local ok, err = pcall(chunk)
      assert.is_false(ok)
      assert.are.equal("probe.lua:2: undefined global 'greting'", err)
      assert.is_true(sandbox.is_user_error(err))
      assert.is_true(playbook.is_user_error(err))
   end)

   it("raises on assigning a global, and _G is the environment itself", function()
      for _, src in ipairs({ "x = 1", "function helper() end", "_G.x = 1" }) do
         local ok, err = pcall(assert(load(src, "=probe.lua", "t", sandbox.new())))
         assert.is_false(ok)
         assert.matches("^probe%.lua:1: assignment to undefined global '%w+' %(declare it local%)$", err)
      end
   end)

   it("refuses etcdrun.core.* in require and keeps the public API", function()
      local env = sandbox.new()
      local ok, err = pcall(assert(load("\nlocal m = require('etcdrun.core.ssh') return m", "=probe.lua", "t", env)))
      assert.is_false(ok)
      assert.matches("^probe%.lua:2: " .. INTERNAL .. "$", err)
      assert.is_true(sandbox.is_user_error(err))
      for _, name in ipairs({ "etcdrun.fs", "etcdrun.x509", "etcdrun.clock", "etcdrun.term", "etcdrun.shell" }) do
         local m = assert(load("return require(...)", "=probe.lua", "t", env))(name)
         assert.are.equal("table", type(m), name)
      end
      assert.is_false((pcall(assert(load("return _G.require('etcdrun.core.fs')", "=p", "t", env)))))
   end)

   it("loads chunks with load, loadfile and dofile into the same environment", function()
      local dir = helper.tmpdir()
      helper.write(dir .. "/inner.lua", "return require('etcdrun.core.fs')\n")
      local env = sandbox.new({ extra = { path = dir .. "/inner.lua" } })
      for _, src in ipairs({ "return load('return undefined_name')()", "return loadfile(path)()",
         "return dofile(path)" }) do
         local ok, err = pcall(assert(load(src, "=probe.lua", "t", env)))
         assert.is_false(ok, src)
         assert.is_true(sandbox.is_user_error(err), src)
      end
   end)

   it("defers the refusal when asked (a script may, a playbook may not) and seals", function()
      local env = sandbox.new({ internal = "defer" })
      local fs = assert(load("local m = require('etcdrun.core.fs') return m", "=s.lua", "t", env))()
      assert.are.equal("function", type(fs.stat))
      assert.matches("^s%.lua:1: etcdrun%.core%.fs is internal", sandbox.seal(env))
      local ok, err = pcall(assert(load("local m = require('etcdrun.core.fs') return m", "=s.lua", "t", env)))
      assert.is_false(ok)
      assert.matches("^s%.lua:1: etcdrun%.core%.fs is internal", err)
      assert.is_nil(sandbox.seal(sandbox.new({ internal = "defer" })))
   end)
end)

describe("a site module", function()
   it("that requires etcdrun.core.ssh fails to load, naming its file:line", function()
      local dir, file = site_module("probe_core", "local x = 1\nlocal ssh = require('etcdrun.core.ssh')\n"
         .. MODULE_TAIL)
      assert.matches("^" .. pat(file) .. ":2: " .. INTERNAL .. "$", load_error("probe_core", dir))
   end)

   it("that reads an undefined global when it loads fails, naming its file:line", function()
      local dir, file = site_module("probe_read", "local t = tabel.concat\n" .. MODULE_TAIL)
      assert.are.equal(file .. ":1: undefined global 'tabel'", load_error("probe_read", dir))
   end)

   it("that assigns a global fails, naming its file:line", function()
      local dir, file = site_module("probe_write", "\ncounter = 0\n" .. MODULE_TAIL)
      assert.are.equal(file .. ":2: assignment to undefined global 'counter' (declare it local)",
         load_error("probe_write", dir))
   end)

   it("that reads an undefined global while it runs fails its task, naming its file:line", function()
      local dir, file = site_module("probe_run", [[
return {
   doc = "probe",
   gather = function() return {} end,
   plan = function()
      return { changed = false, msg = mesage }
   end,
}
]])
      local r = modtest.run("probe_run", {}, localhost.new(), { search = { dir .. "/modules" } })
      assert.is_true(r.failed)
      assert.are.equal(file .. ":5: undefined global 'mesage'", r.msg)
   end)

   it("that requires etcdrun.core.ssh fails the playbook's load: exit 1, file:line, no traceback", function()
      local dir = site_module("probe_pb", "local ssh = require('etcdrun.core.ssh')\n" .. MODULE_TAIL)
      local out, err, code = run_playbook(dir, [[
return { play "p" { hosts = "all", tasks = { task "t" { probe_pb = {} } } } }
]])
      assert.are.equal(1, code, out .. err)
      assert.matches("pb%.lua:1: .-modules/probe_pb%.lua:1: " .. INTERNAL, err)
      assert.not_matches("traceback", err)
      assert.not_matches("PLAY", out)
   end)
end)

describe("a playbook", function()
   it("that requires etcdrun.core.fs fails at load: exit 1, file:line, no traceback", function()
      local out, err, code = run_playbook(helper.tmpdir(), [[
local x = 1
local fs = require("etcdrun.core.fs")
return { play "p" { hosts = "all", tasks = { task "t" { debug = { msg = "hi" } } } } }
]])
      assert.are.equal(1, code)
      assert.matches("^etcdrun: pb%.lua:2: etcdrun%.core%.fs is internal: modules and playbooks use the public "
         .. "API", err)
      assert.not_matches("traceback", err)
      assert.are.equal("", out)
   end)

   it("that requires etcdrun.core.* in a run function fails that host, naming file:line", function()
      local out, _, code = run_playbook(helper.tmpdir(), [[
return { play "p" { hosts = "all", tasks = {
   task "t" { run = function()
      local proc = require("etcdrun.core.proc")
      return { changed = false, msg = tostring(proc) }
   end },
} } }
]])
      assert.are.equal(1, code)
      assert.matches("pb%.lua:3: etcdrun%.core%.proc is internal", out)
   end)

   it("that assigns a global fails at load: exit 1, file:line, no traceback", function()
      local out, err, code = run_playbook(helper.tmpdir(), [[
hosts = "all"
return { play "p" { hosts = hosts, tasks = { task "t" { debug = { msg = "hi" } } } } }
]])
      assert.are.equal(1, code)
      assert.are.equal("etcdrun: pb.lua:1: assignment to undefined global 'hosts' (declare it local)\n", err)
      assert.are.equal("", out)
   end)

   it("loaded by playbook.load refuses etcdrun.core.* too", function()
      local dir = helper.tmpdir()
      helper.write(dir .. "/pb.lua", "local ssh = require('etcdrun.core.ssh')\nreturn {}\n")
      local pb, err = playbook.load(dir .. "/pb.lua")
      assert.is_nil(pb)
      assert.matches("pb%.lua:1: " .. INTERNAL, err)
   end)

   it("uses the public API: etcdrun.clock, etcdrun.term", function()
      local out, err, code = run_playbook(helper.tmpdir(), [[
local clock, term = require("etcdrun.clock"), require("etcdrun.term")
return { play "p" { hosts = "all", tasks = { task "t" { run = function()
   return { changed = false, msg = ("clock %s tty %s"):format(type(clock.monotonic()), tostring(term.isatty(0))) }
end } } } }
]], "-v")
      assert.are.equal(0, code, out .. err)
      assert.matches("clock number tty false", out)
   end)
end)

describe("a script (not a playbook)", function()
   it("may still require etcdrun.core.* (the benchmarks do), and runs strict", function()
      local dir = helper.tmpdir()
      helper.write(dir .. "/s.lua", "print(type(require('etcdrun.core.fs').stat))\n")
      local out, err, code = helper.run(q(helper.etcdrun) .. " " .. q(dir .. "/s.lua") .. " </dev/null")
      assert.are.equal(0, code, err)
      assert.are.equal("function\n", out)
      helper.write(dir .. "/t.lua", "print(undefined_name)\n")
      out, err, code = helper.run(q(helper.etcdrun) .. " " .. q(dir .. "/t.lua"))
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("etcdrun: " .. dir .. "/t.lua:1: undefined global 'undefined_name'\n", err)
   end)
end)

describe("what ships", function()
   it("every built-in module loads in the sandbox", function()
      local names = module.list()
      assert.is_true(#names >= 17)
      for _, name in ipairs(names) do
         local ok, mod = pcall(module.load, name)
         assert.is_true(ok, tostring(mod))
         assert.are.equal("table", type(mod), name)
      end
   end)

   it("the site modules of the examples and fixtures load", function()
      assert.are.equal("table", type(module.load("banner", { "examples/modules" })))
      assert.are.equal("table", type(module.load("marker", { "spec/fixtures/playbooks/modules" })))
   end)

   it("every shipped playbook loads: playbooks/*.lua, examples/*.lua, the benchmarks' and the fixtures'", function()
      local fs = require("etcdrun.fs")
      local files = {}
      for _, dir in ipairs({ "playbooks", "examples", "spec/bench/tasks" }) do
         for _, f in ipairs(fs.list(dir)) do
            if f:match("%.lua$") then
               files[#files + 1] = dir .. "/" .. f
            end
         end
      end
      files[#files + 1] = "spec/fixtures/playbooks/clash/site.lua" -- loads, then fails on the name clash
      assert.is_true(#files >= 4)
      for _, f in ipairs(files) do
         local pb, err = playbook.load(f)
         if f:match("clash") then
            assert.matches("has the name of the built%-in module", err)
         else
            assert.is_table(pb, f .. ": " .. tostring(err))
         end
      end
   end)
end)
