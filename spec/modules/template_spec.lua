-- The template module: arguments, rendering with the host's variables and
-- extra vars, template errors with template:line:column, and on a lab node
-- (etcd2) changed then unchanged, --check writing nothing, the diff of the
-- rendered result against the file.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")

local BASE = "/root/etcdrun-modtest-template"
local FIXTURES = lab.root .. "/spec/fixtures/modules"

describe("template arguments", function()
   local cases = {
      { { src = "a.j2" }, "argument 'dest' is required" },
      { { dest = "/x" }, "one of src, source is required" },
      { { dest = "/x", src = "a", source = "b" }, "mutually exclusive" },
      { { dest = "/x", source = "b", vars = "x=1" }, "argument 'vars' must be a table" },
      { { dest = "/x", source = "b", mode = 384 }, "write modes as strings" },
      { { dest = "/x", source = "b", backup = true }, "unknown argument 'backup'" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("template", c[1], "site.lua:9")
         assert.is_nil(ok)
         assert.matches("^site%.lua:9: module 'template': ", err)
         assert.matches(c[2], err)
      end)
   end
end)

describe("template plan", function()
   local fs = require("etcdrun.fs")
   local st = plancases.st
   -- gather rendered the template: the state is copy's, state.src the result
   local function rendered(text, over)
      return plancases.merge({ src = { content = text, digest = fs.sha256(text), size = #text } }, over)
   end
   local function file(text)
      return st("file", "0644", "root", { size = #text, digest = fs.sha256(text) })
   end
   plancases.run(it, "template", {
      { name = "creates the rendered file",
         state = rendered("a=1\n"), args = { dest = "/e/a.conf", source = "a={{ a }}\n" }, opts = { diff = true },
         want = { changed = true, msg = "would create file",
            diff = { path = "/e/a.conf", before = "", after = "a=1\n" } } },
      { name = "leaves a file that holds the rendered content",
         state = rendered("a=1\n", { st = file("a=1\n") }), args = { dest = "/e/a.conf", source = "x" },
         want = { changed = false, msg = "unchanged" } },
      { name = "always replaces differing content (force), through a followed symlink",
         state = rendered("a=2\n", { st = file("a=1\n"), before = "a=1\n", link = { target = "r", real = "/e/r" } }),
         args = { dest = "/e/a.conf", source = "x" }, opts = { diff = true },
         want = { changed = true, msg = "would change content (through the symlink /e/a.conf -> /e/r)",
            diff = { path = "/e/r", before = "a=1\n", after = "a=2\n" } } },
      { name = "hides a diff of a rendered secret",
         state = rendered("pw=s3cret\n", { secret = true }), args = { dest = "/e/a.conf", source = "x" },
         opts = { diff = true }, also = function(p)
            assert.is_true(p.diff.secret)
         end, want = {} },
      { name = "writes a change of only notify_ignore lines without notifying handlers",
         state = rendered("a=1\ninitial=x,y\n", { st = file("a=1\ninitial=x\n"), old_text = "a=1\ninitial=x\n",
            new_text = "a=1\ninitial=x,y\n" }),
         args = { dest = "/e/a.conf", source = "x", notify_ignore = { "^initial=" } },
         also = function(p)
            assert.is_false(p.result.notify)
         end,
         want = { changed = true, msg = "would change content (only lines read at a first start changed: no handler"
            .. " notified)" } },
      { name = "notifies as usual when another line changed too",
         state = rendered("a=2\ninitial=x,y\n", { st = file("a=1\ninitial=x\n"), old_text = "a=1\ninitial=x\n",
            new_text = "a=2\ninitial=x,y\n" }),
         args = { dest = "/e/a.conf", source = "x", notify_ignore = { "^initial=" } },
         also = function(p)
            assert.is_nil(p.result and p.result.notify)
         end,
         want = { changed = true, msg = "would change content" } },
   })
end)

describe("template rendering", function()
   -- on the controller: rendering does not depend on where the file goes
   local c = localhost.new()

   it("renders with the host's variables, extra vars over them", function()
      local tmp = helper.tmpdir()
      local vars = { inventory_hostname = "etcd9", address = "10.0.0.9", members = { "a", "b" } }
      local args = { src = "member.conf.j2", dest = tmp .. "/m.conf", vars = { address = "10.1.1.1" } }
      local r = modtest.run("template", args, c, { playbook_dir = FIXTURES, vars = vars })
      assert.is_true(r.changed, r.msg)
      assert.are.equal("name: etcd9\nlisten: 10.1.1.1:2379\nmember: a\nmember: b\n", helper.read(tmp .. "/m.conf"))
   end)

   it("uses the runner's plain variables when it gives them", function()
      local tmp = helper.tmpdir()
      local seen
      local r = modtest.run("template", { source = "{{ x }}\n", dest = tmp .. "/x" }, c, {
         vars = setmetatable({}, { __index = function() error("a view, not for the engine") end }),
      })
      assert.is_true(r.failed)
      -- modtest has no template_vars; a ctx that has one is used instead of the view
      local module = require("etcdrun.module")
      local ctx = require("etcdrun.context").new({ host = c, controller = c, check = true, diff = true,
         template_vars = function(source)
            seen = source
            return { x = "plain" }
         end })
      local plan = module.run(module.load("template"), ctx, { source = "{{ x }}\n", dest = tmp .. "/x",
         follow = true })
      assert.are.equal("{{ x }}\n", seen)
      assert.are.equal("plain\n", plan.diff.after)
   end)

   it("fails with template:line:column, also in check mode", function()
      local tmp = helper.tmpdir()
      local vars = { inventory_hostname = "etcd9" }
      for _, check in ipairs({ true, false }) do
         local r = modtest.run("template", { src = "broken.j2", dest = tmp .. "/b.conf" }, c,
            { playbook_dir = FIXTURES, vars = vars, check = check })
         assert.is_true(r.failed)
         assert.are.equal("ETEMPLATE", r.code)
         assert.matches("broken%.j2:2:%d+: undefined variable 'adress'", r.msg)
      end
      assert.is_nil(helper.read(tmp .. "/b.conf"))
      local r = modtest.run("template", { src = "missing.j2", dest = tmp .. "/b.conf" }, c, { playbook_dir = FIXTURES })
      assert.is_true(r.failed)
      assert.matches("template: cannot read missing%.j2: .*No such file or directory", r.msg)
   end)
end)

describe("template on a node", function()
   local dir, why_not, h

   local function on_node(cmd)
      return assert(h:exec(cmd)).stdout
   end

   setup(function()
      dir, why_not = lab.ensure(10)
      if dir then
         h = lab.host(dir, 2)
         on_node("rm -rf " .. BASE .. " && mkdir -p " .. BASE)
      end
   end)

   teardown(function()
      if h then
         on_node("rm -rf " .. BASE)
         h:close()
      end
   end)

   it("renders once: check writes nothing, then changed, then unchanged; diff on a change", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/etcd.conf.yaml"
      local vars = { inventory_hostname = "etcd2", address = "198.18.0.12", members = { "etcd1", "etcd2" } }
      local args = { src = "member.conf.j2", dest = dest, mode = "0600" }
      local opts = { playbook_dir = FIXTURES, vars = vars }
      local want = "name: etcd2\nlisten: 198.18.0.12:2379\nmember: etcd1\nmember: etcd2\n"

      local r = modtest.run("template", args, h, { playbook_dir = FIXTURES, vars = vars, check = true })
      assert.is_true(r.changed)
      assert.are.same({ path = dest, before = "", after = want }, r.diff)
      assert.are.equal("absent\n", on_node("test -e " .. dest .. " && echo present || echo absent"))

      r = modtest.run("template", args, h, opts)
      assert.is_true(r.changed, r.msg)
      assert.are.equal(want .. "600\n", on_node("cat " .. dest .. "; stat -c %a " .. dest))
      assert.is_false(modtest.run("template", args, h, opts).changed)

      vars.members = { "etcd1", "etcd2", "etcd3" }
      r = modtest.run("template", args, h, { playbook_dir = FIXTURES, vars = vars, check = true })
      assert.is_true(r.changed)
      assert.are.equal(want, r.diff.before)
      assert.are.equal(want .. "member: etcd3\n", r.diff.after)
      assert.are.equal(want, on_node("cat " .. dest))
      assert.is_true(modtest.run("template", args, h, opts).changed)
      assert.are.equal(want .. "member: etcd3\n", on_node("cat " .. dest))
   end)

   it("fails naming the host and path when the directory is missing", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("template", { source = "x\n", dest = BASE .. "/nodir/f" }, h)
      assert.is_true(r.failed)
      assert.matches("etcd2:" .. BASE:gsub("%-", "%%-") .. "/nodir", r.msg)
   end)
end)

describe("template through a symlink on the controller", function()
   -- the copy module's symlink rule (fileattrs.dest_plan), reached through template's own follow
   local c = localhost.new()
   local fs = require("etcdrun.core.fs")

   local function layout()
      local d = helper.tmpdir()
      assert(fs.mkdir(d .. "/real"))
      helper.write(d .. "/real/f", "old\n")
      assert(fs.symlink("real/f", d .. "/link"))
      return d
   end

   it("follows it by default: diff of the target's content, target written, link kept", function()
      local d = layout()
      local args = { source = "v={{ v }}\n", dest = d .. "/link" }
      local r = modtest.run("template", args, c, { vars = { v = 1 }, check = true })
      assert.is_true(r.changed)
      assert.are.same({ path = d .. "/real/f", before = "old\n", after = "v=1\n" }, r.diff)
      r = modtest.run("template", args, c, { vars = { v = 1 } })
      assert.is_true(r.changed, r.msg)
      assert.matches("through the symlink", r.msg)
      assert.are.same({ "link", "real/f" }, { fs.stat(d .. "/link", { follow = false }).type,
         fs.stat(d .. "/link", { follow = false }).target })
      assert.are.equal("v=1\n", helper.read(d .. "/real/f"))
      assert.is_false(modtest.run("template", args, c, { vars = { v = 1 } }).changed)
   end)

   it("with follow=false replaces the link by a file, and the diff says so", function()
      local d = layout()
      local args = { source = "v={{ v }}\n", dest = d .. "/link", follow = false }
      local r = modtest.run("template", args, c, { vars = { v = 2 } })
      assert.is_true(r.changed, r.msg)
      assert.are.same({ path = d .. "/link", before = "symlink -> real/f\n", after = "v=2\n" }, r.diff)
      assert.are.equal("file", fs.stat(d .. "/link", { follow = false }).type)
      assert.are.equal("v=2\n", helper.read(d .. "/link"))
      assert.are.equal("old\n", helper.read(d .. "/real/f"))
   end)

   it("refuses a dangling link when following", function()
      local d = helper.tmpdir()
      assert(fs.symlink("nowhere", d .. "/dangling"))
      local r = modtest.run("template", { source = "x\n", dest = d .. "/dangling" }, c)
      assert.is_true(r.failed)
      assert.matches("dangling is a symlink to nowhere, which does not exist", r.msg)
      assert.is_nil(helper.read(d .. "/nowhere"))
      assert.are.equal("link", fs.stat(d .. "/dangling", { follow = false }).type)
   end)
end)
