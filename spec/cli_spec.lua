local helper = require("support.helper")
local q = helper.q

describe("the etcdrun command", function()
   it("prints its version and every library's", function()
      local out, _, code = helper.run(q(helper.etcdrun) .. " --version")
      assert.are.equal(0, code)
      assert.matches("^etcdrun %d+%.%d+%.%d+\n", out)
      for _, lib in ipairs({ "Lua 5%.4", "libssh", "OpenSSL 3", "libarchive", "libcurl" }) do
         assert.matches(lib, out)
      end
   end)

   it("prints help and exits 0", function()
      local out, _, code = helper.run(q(helper.etcdrun) .. " --help")
      assert.are.equal(0, code)
      assert.matches("usage: etcdrun", out)
   end)

   it("exits 2 on a usage error", function()
      local _, err, code = helper.run(q(helper.etcdrun) .. " --bogus")
      assert.are.equal(2, code)
      assert.matches("unknown option '%-%-bogus'", err)
      _, err, code = helper.run(q(helper.etcdrun))
      assert.are.equal(2, code)
      assert.matches("nothing to run", err)
      _, _, code = helper.run(q(helper.etcdrun) .. " -e")
      assert.are.equal(2, code)
   end)

   it("runs -e code with the runtime loaded", function()
      local out, _, code = helper.etcdrun_e("print(etcdrun.fs.sha256('abc'):sub(1, 8), etcdrun.version)")
      assert.are.equal(0, code)
      assert.matches("^ba7816bf\t0%.", out)
   end)

   it("runs a script file with arg set as lua.c does", function()
      local dir = helper.tmpdir()
      local script = dir .. "/s.lua"
      helper.write(script, "print(arg[0], arg[1], arg[2], #arg, select('#', ...))\nreturn 0\n")
      local out, _, code = helper.run(q(helper.etcdrun) .. " " .. q(script) .. " one two")
      assert.are.equal(0, code)
      assert.are.equal(script .. "\tone\ttwo\t2\t2\n", out)
   end)

   it("reads a script from standard input", function()
      local out, _, code = helper.run("echo 'print(6*7)' | " .. q(helper.etcdrun) .. " -")
      assert.are.equal(0, code)
      assert.are.equal("42\n", out)
   end)

   it("reports a script error as file:line: message with a traceback, exit 1", function()
      local dir = helper.tmpdir()
      local script = dir .. "/bad.lua"
      helper.write(script, "local x = 1\nerror('it broke')\n")
      local _, err, code = helper.run(q(helper.etcdrun) .. " " .. q(script))
      assert.are.equal(1, code)
      assert.matches(script:gsub("%p", "%%%0") .. ":2: it broke", err)
      assert.matches("stack traceback:", err)
   end)

   it("reports a syntax error naming the file, exit 1", function()
      local dir = helper.tmpdir()
      local script = dir .. "/syntax.lua"
      helper.write(script, "x = = 1\n")
      local _, err, code = helper.run(q(helper.etcdrun) .. " " .. q(script))
      assert.are.equal(1, code)
      assert.matches("syntax%.lua:1:", err)
   end)

   it("reports a failing primitive naming operation, object and reason", function()
      local _, err, code = helper.etcdrun_e("etcdrun.fs.read('/nonexistent/etcd.conf')")
      assert.are.equal(1, code)
      assert.matches("fs%.read: No such file or directory %(/nonexistent/etcd%.conf%)", err)
   end)

   it("finds its Lua files after make install", function()
      local prefix = helper.tmpdir()
      local _, err, code = helper.run("make -s install PREFIX=" .. q(prefix) .. " >/dev/null")
      assert.are.equal(0, code, err)
      local out
      out, err, code = helper.run("cd / && " .. q(prefix .. "/bin/etcdrun") .. " -e 'print(package.path)'")
      assert.are.equal(0, code, err)
      assert.matches(prefix:gsub("%p", "%%%0") .. "/bin/%.%./share/etcdrun/lua/%?%.lua", out)
   end)
end)
