-- Ansible's listing flags (--list-hosts, --list-tasks, --list-tags,
-- --syntax-check) and --start-at-task, through the real binary against an
-- inventory of ansible_connection=local hosts: nothing here needs a node.
local helper = require("support.helper")
local q = helper.q

local PLAYBOOK = [[
return {
   play "web servers" {
      hosts = "web", tags = { "webtag" },
      tasks = {
         task "first" { command = { cmd = "echo one > first.out" }, tags = { "x" } },
         controller "on the controller" { debug = { msg = "once" } },
         task "second" { command = { cmd = "echo two" }, tags = { "y", "x" } },
      },
   },
   play "db" { hosts = "db", tasks = { task "third" { debug = { msg = "3" } } } },
}
]]

local function workspace()
   local ws = helper.tmpdir()
   helper.write(ws .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n"
      .. "[db]\nc ansible_connection=local\n")
   helper.write(ws .. "/site.lua", PLAYBOOK)
   return ws
end

local function etcdrun(ws, args)
   return helper.run(("cd %s && %s %s"):format(q(ws), q(helper.etcdrun), args))
end

describe("the listing flags", function()
   it("--list-hosts lists each play's hosts after --limit, and runs nothing", function()
      local ws = workspace()
      local out, err, code = etcdrun(ws, "-i hosts site.lua --list-hosts -l 'a:db'")
      assert.are.equal(0, code, err)
      assert.are.equal("\nplaybook: site.lua\n"
         .. "\n  play #1 (web): web servers\tTAGS: [webtag]\n    pattern: ['web']\n    hosts (1):\n      a\n"
         .. "\n  play #2 (db): db\tTAGS: []\n    pattern: ['db']\n    hosts (1):\n      c\n", out)
      assert.is_nil(helper.read(ws .. "/first.out"))
   end)

   it("--list-hosts with a malformed --limit is a usage error", function()
      local _, err, code = etcdrun(workspace(), "-i hosts site.lua --list-hosts -l 'a:&'")
      assert.are.equal(2, code)
      assert.matches("limit:", err)
   end)

   it("--list-tasks lists tasks and controller steps, filtered by --tags and --skip-tags", function()
      local ws = workspace()
      local out, err, code = etcdrun(ws, "site.lua --list-tasks")
      assert.are.equal(0, code, err)
      assert.matches("    tasks:\n      first\tTAGS: %[x%]\n      on the controller %(controller%)\tTAGS: %[%]\n"
         .. "      second\tTAGS: %[y, x%]\n", out)
      assert.matches("play #2 %(db%): db\tTAGS: %[%]\n    tasks:\n      third\tTAGS: %[%]\n", out)
      out = etcdrun(ws, "site.lua --list-tasks -t y")
      assert.matches("    tasks:\n      second\tTAGS", out)
      assert.is_nil(out:find("first", 1, true))
      assert.is_nil(out:find("third", 1, true))
      out = etcdrun(ws, "site.lua --list-tasks --skip-tags x")
      assert.is_nil(out:find("\n      first", 1, true))
      assert.matches("third", out)
      assert.is_nil(helper.read(ws .. "/first.out"))
   end)

   it("--list-tags lists each play's tags, the play's own included", function()
      local out, err, code = etcdrun(workspace(), "site.lua --list-tags")
      assert.are.equal(0, code, err)
      assert.matches("play #1 %(web%): web servers\tTAGS: %[webtag%]\n      TASK TAGS: %[webtag, x, y%]\n", out)
      assert.matches("play #2 %(db%): db\tTAGS: %[%]\n      TASK TAGS: %[%]\n", out)
   end)

   it("--syntax-check says the playbook's name and exits 0, or names file:line and exits 1", function()
      local ws = workspace()
      local out, err, code = etcdrun(ws, "site.lua --syntax-check")
      assert.are.equal(0, code, err)
      assert.are.equal("\nplaybook: site.lua\n", out)
      helper.write(ws .. "/bad.lua", 'return { play "p" { hosts = "web", tasks = {\n'
         .. '   task "t" { file = { path = "/tmp/x", sate = "directory" } } } } }\n')
      out, err, code = etcdrun(ws, "bad.lua --syntax-check")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("bad%.lua:2: .*sate", err)
      assert.is_nil(err:find("traceback", 1, true))
   end)

   it("--start-at-task skips the tasks before the first match (a glob), in every play", function()
      local ws = workspace()
      local out, err, code = etcdrun(ws, "-i hosts site.lua --start-at-task 'sec*'")
      assert.are.equal(0, code, err)
      assert.is_nil(helper.read(ws .. "/first.out"))
      assert.is_nil(out:find("first", 1, true))
      assert.is_nil(out:find("on the controller", 1, true))
      assert.matches("changed +a +second", out)
      assert.matches("ok +c +third", out)
      out = etcdrun(ws, "-i hosts site.lua --start-at-task third")
      assert.is_nil(out:find("second", 1, true))
      assert.matches("ok +c +third", out)
   end)

   it("refuses the flags for a file that returns no plays", function()
      local ws = workspace()
      helper.write(ws .. "/script.lua", "print('ran')\n")
      local _, err, code = etcdrun(ws, "--list-tasks script.lua")
      assert.are.equal(2, code)
      assert.matches("script.lua returns no plays: --list-*, --syntax-check and --start-at-task are for a playbook",
         err, 1, true)
   end)

   it("--start-at-task naming no task is a usage error before anything runs", function()
      local ws = workspace()
      local out, err, code = etcdrun(ws, "-i hosts site.lua --start-at-task nope")
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.matches("no task of site.lua is named 'nope'", err, 1, true)
   end)
end)
