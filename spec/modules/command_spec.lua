-- The command module: arguments, word splitting without a shell,
-- creates/removes, check mode never running anything, failures with the
-- stderr tail; on a lab node (etcd2) and on the controller.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

local BASE = "/root/etcdrun-modtest-command"

describe("command arguments", function()
   local cases = {
      { {}, "one of cmd, argv is required" },
      { { cmd = "a", argv = { "a" } }, "mutually exclusive" },
      { { argv = { "ls", 3 } }, "argument 'argv'[2] must be a string" },
      { { cmd = "ls", timeout = "5s" }, "argument 'timeout' must be a number" },
      { { cmd = "ls", chdir = "" }, "argument 'chdir' must be a path" },
      { { cmd = "ls", warn = false }, "unknown argument 'warn'" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("command", c[1], "site.lua:4")
         assert.is_nil(ok)
         assert.matches("^site%.lua:4: module 'command': ", err)
         assert.matches(c[2], err, 1, true)
      end)
   end
end)

-- The decision alone: creates/removes as gather records them, no host.
describe("command plan", function()
   local mod = assert(module.load("command"))
   local skipped = function(msg, cmd)
      return { changed = false, msg = msg, result = { cmd = cmd, rc = 0, stdout = "", stderr = "" } }
   end
   local cases = {
      { name = "runs argv, quoted for exec", state = {}, args = { argv = { "printf", "%s", "a b", "$(id)" } },
         want = { changed = true, msg = "would run", result = { cmd = "printf %s 'a b' '$(id)'" },
            line = "exec printf %s 'a b' '$(id)'" } },
      { name = "splits cmd without expanding, shows it as given", state = {},
         args = { cmd = [[echo "$HOME" 'a b' c\ d |]] },
         want = { changed = true, msg = "would run", result = { cmd = [[echo "$HOME" 'a b' c\ d |]] },
            line = "exec echo '$HOME' 'a b' 'c d' '|'" } },
      { name = "in chdir", state = {}, args = { cmd = "touch made", chdir = "/srv/x y" },
         want = { changed = true, msg = "would run", result = { cmd = "touch made" },
            line = "cd '/srv/x y' && exec touch made" } },
      { name = "under check: would run too", state = {}, args = { argv = { "true" } }, opts = { check = true },
         want = { changed = true, msg = "would run", result = { cmd = "true" }, line = "exec true" } },
      { name = "creates missing: runs", state = { creates = { path = "/srv/made", exists = false } },
         args = { cmd = "touch made", chdir = "/srv", creates = "made" },
         want = { changed = true, msg = "would run", result = { cmd = "touch made" },
            line = "cd /srv && exec touch made" } },
      { name = "creates exists: skipped", state = { creates = { path = "/srv/made", exists = true } },
         args = { cmd = "touch made", chdir = "/srv", creates = "made" },
         want = skipped("skipped, /srv/made exists", "touch made") },
      { name = "creates exists under check: skipped", state = { creates = { path = "/srv/made", exists = true } },
         args = { cmd = "touch made", chdir = "/srv", creates = "made" }, opts = { check = true },
         want = skipped("skipped, /srv/made exists", "touch made") },
      { name = "removes exists: runs", state = { removes = { path = "/tmp/f", exists = true } },
         args = { argv = { "rm", "/tmp/f" }, removes = "/tmp/f" },
         want = { changed = true, msg = "would run", result = { cmd = "rm /tmp/f" }, line = "exec rm /tmp/f" } },
      { name = "removes missing: skipped", state = { removes = { path = "/tmp/f", exists = false } },
         args = { argv = { "rm", "/tmp/f" }, removes = "/tmp/f" },
         want = skipped("skipped, /tmp/f does not exist", "rm /tmp/f") },
      { name = "creates missing, removes missing: skipped",
         state = { creates = { path = "/a", exists = false }, removes = { path = "/b", exists = false } },
         args = { cmd = "mv /b /a", creates = "/a", removes = "/b" },
         want = skipped("skipped, /b does not exist", "mv /b /a") },
      { name = "refuses an unterminated quote", state = {}, args = { cmd = "echo 'open" },
         want = { failed = true, msg = "command: cannot split cmd: unterminated ' quote: echo 'open" } },
      { name = "refuses a trailing backslash", state = {}, args = { cmd = "echo \\" },
         want = { failed = true, msg = "command: cannot split cmd: a trailing backslash: echo \\" } },
      { name = "refuses an empty cmd", state = {}, args = { cmd = "  " },
         want = { failed = true, msg = "command: nothing to run (empty command)" } },
      { name = "refuses an empty program", state = {}, args = { argv = { "" } },
         want = { failed = true, msg = "command: nothing to run (empty command)" } },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         assert.are.same(case.want, module.plan(mod, case.state, case.args, case.opts))
      end)
   end

   it("gather reads nothing for a refused command, and not removes once creates exists", function()
      -- on the controller: a path under a file fails with ENOTDIR when read
      local d = helper.tmpdir()
      local ctx = { host = localhost.new() }
      assert(ctx.host:write(d .. "/made", ""))
      local bad = d .. "/made/x"
      assert.are.same({}, mod.gather(ctx, { cmd = "echo 'x", creates = bad }))
      assert.are.same({ creates = { path = d .. "/made", exists = true } },
         mod.gather(ctx, { cmd = "x", chdir = d .. "/", creates = "made", removes = bad }))
      assert.are.same({ creates = { path = d .. "/new", exists = false },
         removes = { path = d .. "/made", exists = true } },
         mod.gather(ctx, { argv = { "x" }, creates = d .. "/new", removes = d .. "/made" }))
      local st, err, code = mod.gather(ctx, { cmd = "x", creates = d .. "/new", removes = bad })
      assert.is_nil(st)
      assert.are.equal("ENOTDIR", code)
      assert.matches(bad, err, 1, true)
   end)
end)

-- The same behaviour on a node and on the controller.
-- `get` returns the host, or nil and why there is none: then each case is
-- reported pending (skipped) with that reason, never passed.
local function behaviour(name, get, base)
   local h, why_not

   -- Inside an `it`: true (and the test pending) when there is no host here.
   local function no_host()
      if not h then
         pending(why_not)
         return true
      end
      return false
   end

   local function on(cmd)
      return assert(h:exec(cmd)).stdout
   end

   local function run(args, opts)
      return modtest.run("command", args, h, opts)
   end

   describe("command on " .. name, function()
      before_each(function()
         h, why_not = get()
         if h then
            on("rm -rf " .. base() .. " && mkdir -p " .. base())
         end
      end)

      it("runs a program and returns rc, stdout, stderr and lines", function()
         if no_host() then return end
         local r = run({ argv = { "sh", "-c", "echo out; echo err >&2; echo two" } })
         assert.is_true(r.changed)
         assert.is_false(r.failed)
         assert.are.same({ 0, "out\ntwo\n", "err\n" }, { r.rc, r.stdout, r.stderr })
         assert.are.same({ "out", "two" }, r.stdout_lines)
         assert.are.same({ "err" }, r.stderr_lines)
      end)

      it("splits a string like sh but expands nothing", function()
         if no_host() then return end
         local r = run({ cmd = [[printf '[%s]' a\ b "c d" 'e f' "$HOME" '*' | > ; "q\"uote"]] })
         assert.is_false(r.failed, r.msg)
         assert.are.equal([=[[a b][c d][e f][$HOME][*][|][>][;][q"uote]]=], r.stdout)
         r = run({ argv = { "printf", "%s", "$(id)" } })
         assert.are.equal("$(id)", r.stdout)
         -- the first word is a program even when it looks like an assignment
         r = run({ cmd = "FOO=1 true" })
         assert.is_true(r.failed)
         assert.are.equal(127, r.rc)
         assert.matches("use the shell module", r.msg)
         r = run({ cmd = "echo 'open" })
         assert.is_true(r.failed)
         assert.are.equal("command: cannot split cmd: unterminated ' quote: echo 'open", r.msg)
      end)

      it("does not run in check mode, and reports would run", function()
         if no_host() then return end
         local marker = base() .. "/ran"
         local r = run({ argv = { "touch", marker } }, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would run", r.msg)
         assert.is_nil(r.rc)
         assert.are.equal("no\n", on("test -e " .. marker .. " && echo yes || echo no"))
      end)

      it("runs in chdir, feeds stdin, skips on creates and removes", function()
         if no_host() then return end
         local args = { cmd = "touch made", chdir = base(), creates = "made" }
         local r = run(args, { check = true })
         assert.are.equal("would run", r.msg)
         r = run(args)
         assert.is_true(r.changed)
         assert.are.equal(0, r.rc)
         assert.are.equal("yes\n", on("test -e " .. base() .. "/made && echo yes"))
         for _, check in ipairs({ true, false }) do
            r = run(args, { check = check })
            assert.is_false(r.changed)
            assert.are.equal("skipped, " .. base() .. "/made exists", r.msg)
         end
         r = run({ argv = { "rm", base() .. "/made" }, removes = base() .. "/made" })
         assert.is_true(r.changed)
         r = run({ argv = { "rm", base() .. "/made" }, removes = base() .. "/made" })
         assert.is_false(r.changed)
         assert.are.equal("skipped, " .. base() .. "/made does not exist", r.msg)
         r = run({ cmd = "cat", stdin = "fed\n" })
         assert.are.equal("fed\n", r.stdout)
      end)

      it("fails on a non-zero exit with the host and the stderr tail", function()
         if no_host() then return end
         local r = run({ argv = { "sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3" } })
         assert.is_true(r.failed)
         assert.are.equal(3, r.rc)
         assert.are.equal(("command failed on %s with rc 3: line3\nline4\nline5\nline6\nline7"):format(h.name),
            r.msg)
         r = run({ cmd = "ls /no/such/dir" })
         assert.is_true(r.failed)
         assert.matches("^command failed on " .. h.name .. " with rc 2: ls: cannot access '/no/such/dir'", r.msg)
         r = run({ cmd = "ls", chdir = "/no/such/dir" })
         assert.is_true(r.failed)
         assert.matches("/no/such/dir", r.msg)
      end)

      it("kills a command past its timeout", function()
         if no_host() then return end
         local r = run({ cmd = "sleep 30", timeout = 0.3 })
         assert.is_true(r.failed)
         assert.are.equal("ETIMEDOUT", r.code)
         assert.matches("^command: .*timed out", r.msg)
      end)
   end)
end

local dir, why_not, node

behaviour("a node", function()
   if dir == nil and why_not == nil then
      dir, why_not = lab.ensure(10)
   end
   if not dir then
      return nil, why_not
   end
   node = node or lab.host(dir, 2)
   return node
end, function()
   return BASE
end)

local tmp
behaviour("the controller", function()
   tmp = tmp or helper.tmpdir()
   return localhost.new()
end, function()
   return tmp .. "/work"
end)

describe("command cleanup", function()
   it("leaves nothing on the node", function()
      if not node then
         pending(why_not or "no lab node was used")
         return
      end
      assert(node:exec("rm -rf " .. BASE))
      assert.are.equal("", assert(node:exec("ls -d /root/etcdrun-modtest-command 2>/dev/null || true")).stdout)
      node:close()
   end)
end)
