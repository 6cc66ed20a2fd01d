-- The shell module: /bin/sh -c with pipes and variables, creates/removes,
-- check mode not running, failures with the stderr tail; on a lab node
-- (etcd3), with a check on the controller.
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

local BASE = "/root/etcdrun-modtest-shell"

describe("shell arguments", function()
   local cases = {
      { {}, "argument 'cmd' is required" },
      { { cmd = { "ls" } }, "argument 'cmd' must be a string" },
      { { cmd = "ls", argv = { "ls" } }, "unknown argument 'argv'" },
      { { cmd = "ls", executable = "" }, "argument 'executable' must be a path" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("shell", c[1], "site.lua:2")
         assert.is_nil(ok)
         assert.matches("^site%.lua:2: module 'shell': ", err)
         assert.matches(c[2], err, 1, true)
      end)
   end
end)

-- The decision alone (the command module's, for argv {executable, "-c", cmd}):
-- creates/removes as gather records them, no host.
describe("shell plan", function()
   local mod = assert(module.load("shell"))
   local run = function(cmd, line)
      return { changed = true, msg = "would run", result = { cmd = cmd }, line = line }
   end
   local cases = {
      { name = "runs through /bin/sh -c", state = {}, args = { cmd = "echo $HOME | wc -l" },
         want = run("echo $HOME | wc -l", "exec /bin/sh -c 'echo $HOME | wc -l'") },
      { name = "quotes a quote", state = {}, args = { cmd = "echo it's" },
         want = run("echo it's", [[exec /bin/sh -c 'echo it'\''s']]) },
      { name = "another shell, in chdir", state = {},
         args = { cmd = "set -o pipefail; false | true", executable = "/bin/bash", chdir = "/srv" },
         want = run("set -o pipefail; false | true", "cd /srv && exec /bin/bash -c 'set -o pipefail; false | true'") },
      { name = "an empty line still runs the shell", state = {}, args = { cmd = "" },
         want = run("", "exec /bin/sh -c ''") },
      { name = "under check: would run", state = {}, args = { cmd = "reboot" }, opts = { check = true },
         want = run("reboot", "exec /bin/sh -c reboot") },
      { name = "creates missing: runs", state = { creates = { path = "/srv/out.txt", exists = false } },
         args = { cmd = "cat > out.txt", chdir = "/srv", creates = "out.txt" },
         want = run("cat > out.txt", "cd /srv && exec /bin/sh -c 'cat > out.txt'") },
      { name = "creates exists: skipped, the line as given",
         state = { creates = { path = "/srv/out.txt", exists = true } },
         args = { cmd = "cat > out.txt", chdir = "/srv", creates = "out.txt" }, opts = { check = true },
         want = { changed = false, msg = "skipped, /srv/out.txt exists",
            result = { cmd = "cat > out.txt", rc = 0, stdout = "", stderr = "" } } },
      { name = "removes missing: skipped", state = { removes = { path = "/srv/out.txt", exists = false } },
         args = { cmd = "rm out.txt", chdir = "/srv", removes = "out.txt" },
         want = { changed = false, msg = "skipped, /srv/out.txt does not exist",
            result = { cmd = "rm out.txt", rc = 0, stdout = "", stderr = "" } } },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         assert.are.same(case.want, module.plan(mod, case.state, case.args, case.opts))
      end)
   end
end)

describe("shell on a node", function()
   local dir, why_not, h

   local function on_node(cmd)
      return assert(h:exec(cmd)).stdout
   end

   setup(function()
      dir, why_not = lab.ensure(10)
      if dir then
         h = lab.host(dir, 3)
         on_node("rm -rf " .. BASE .. " && mkdir -p " .. BASE)
      end
   end)

   teardown(function()
      if h then
         on_node("rm -rf " .. BASE)
         h:close()
      end
   end)

   it("runs pipes, variables and redirections", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("shell", { cmd = "echo $((6*7)) | tr 4 X; hostname >&2" }, h)
      assert.is_true(r.changed)
      assert.is_false(r.failed)
      assert.are.same({ 0, "X2\n", "etcd3\n" }, { r.rc, r.stdout, r.stderr })
      assert.are.equal("echo $((6*7)) | tr 4 X; hostname >&2", r.cmd)
      -- the seed's way of finding a private address, as a shell task
      r = modtest.run("shell", { cmd = [[ip -f inet addr show eth0 | sed -En -e 's/.*inet ([0-9.]+).*/\1/p']] }, h)
      assert.are.equal("198.18.0.13\n", r.stdout)
   end)

   it("reports would run in check mode and runs nothing", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("shell", { cmd = "echo x > " .. BASE .. "/f" }, h, { check = true })
      assert.is_true(r.changed)
      assert.are.equal("would run", r.msg)
      assert.are.equal("no\n", on_node("test -e " .. BASE .. "/f && echo yes || echo no"))
   end)

   it("runs once with creates, then skips; chdir and stdin", function()
      if not dir then pending(why_not) return end
      local args = { cmd = "cat > out.txt", chdir = BASE, creates = "out.txt", stdin = "hello\n" }
      local r = modtest.run("shell", args, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("hello\n", on_node("cat " .. BASE .. "/out.txt"))
      r = modtest.run("shell", args, h)
      assert.is_false(r.changed)
      assert.are.equal("skipped, " .. BASE .. "/out.txt exists", r.msg)
      r = modtest.run("shell", { cmd = "rm out.txt", chdir = BASE, removes = "out.txt" }, h)
      assert.is_true(r.changed)
      r = modtest.run("shell", { cmd = "rm out.txt", chdir = BASE, removes = "out.txt" }, h, { check = true })
      assert.is_false(r.changed)
   end)

   it("uses another shell when asked", function()
      if not dir then pending(why_not) return end
      local cmd = "set -o pipefail; false | true"
      local r = modtest.run("shell", { cmd = cmd, executable = "/bin/bash" }, h)
      assert.is_true(r.failed)
      assert.are.equal(1, r.rc)
      r = modtest.run("shell", { cmd = "false | true" }, h)
      assert.is_false(r.failed)
   end)

   it("fails with the host and the stderr tail", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("shell", { cmd = "echo working; echo 'disk full' >&2; exit 4" }, h)
      assert.is_true(r.failed)
      assert.are.equal(4, r.rc)
      assert.are.equal("shell command failed on etcd3 with rc 4: disk full", r.msg)
      r = modtest.run("shell", { cmd = "no-such-tool --x" }, h)
      assert.is_true(r.failed)
      assert.are.equal(127, r.rc)
      assert.are.equal("shell command failed on etcd3 with rc 127: /bin/sh: 1: no-such-tool: not found", r.msg)
   end)
end)

describe("shell on the controller", function()
   it("runs through /bin/sh", function()
      local r = modtest.run("shell", { cmd = "echo ${0##*/}" }, localhost.new())
      assert.is_false(r.failed)
      assert.are.equal("sh\n", r.stdout)
   end)
end)
