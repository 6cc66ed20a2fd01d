-- The group module against lab node etcd6.
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

describe("group module", function()
   describe("arguments", function()
      local cases = {
         { {}, "argument 'name' is required" },
         { { name = "g", state = "gone" }, "argument 'state' must be one of present, absent, got 'gone'" },
         { { name = "g", gid = "100" }, "argument 'gid' must be an integer, got '100'" },
         { { name = "g", members = { "a" } }, "unknown argument 'members'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("group", c[1], "site.lua:9")
            assert.is_nil(ok)
            local want = "site.lua:9: module 'group': " .. c[2]
            assert.are.equal(want, err:sub(1, #want))
         end)
      end
      for _, c in ipairs({
         { { name = "-g" }, "group: argument 'name': not a valid group name: '-g'" },
         { { name = "1000" }, "group: argument 'name': not a valid group name: '1000'" },
         { { name = "a b" }, "group: argument 'name': not a valid group name: 'a b'" },
         { { name = "g", gid = -1 }, "group: argument 'gid' must not be negative" },
      }) do
         it("fails in check: " .. c[2], function()
            local r = modtest.run("group", c[1], localhost.new())
            assert.is_true(r.failed)
            assert.are.equal(c[2], r.msg)
         end)
      end
   end)

   -- The decision alone: the group as gather records it from getent, no node.
   describe("group plan", function()
      local mod = assert(module.load("group"))
      local absent, etcd = { exists = false }, { exists = true, gid = 998 }
      local cases = {
         { name = "creates a system group", state = absent, args = { name = "etcd", system = true },
            want = { changed = true, msg = "would create", cmd = "groupadd --system etcd",
               result = { name = "etcd" },
               diff = { path = "group etcd", before = "", after = "gid=(assigned)\nsystem=yes\n" } } },
         { name = "creates with a gid, under check", state = absent, args = { name = "etcd", gid = 1990 },
            opts = { check = true },
            want = { changed = true, msg = "would create", cmd = "groupadd --gid 1990 etcd",
               result = { name = "etcd" }, diff = { path = "group etcd", before = "", after = "gid=1990\n" } } },
         { name = "quotes a name with a $", state = absent, args = { name = "mach$" },
            want = { changed = true, msg = "would create", cmd = "groupadd 'mach$'", result = { name = "mach$" },
               diff = { path = "group mach$", before = "", after = "gid=(assigned)\n" } } },
         { name = "present: nothing to do", state = etcd, args = { name = "etcd", system = true },
            want = { changed = false, msg = "present (gid 998)", result = { name = "etcd", gid = 998 } } },
         { name = "present with its gid", state = etcd, args = { name = "etcd", gid = 998 },
            want = { changed = false, msg = "present (gid 998)", result = { name = "etcd", gid = 998 } } },
         { name = "changes the gid", state = etcd, args = { name = "etcd", gid = 1990 },
            want = { changed = true, msg = "would change gid 998 to 1990", cmd = "groupmod --gid 1990 etcd",
               result = { name = "etcd", gid = 998 },
               diff = { path = "group etcd", before = "gid=998\n", after = "gid=1990\n" } } },
         { name = "deletes", state = etcd, args = { name = "etcd", state = "absent" },
            want = { changed = true, msg = "would delete", cmd = "groupdel etcd", result = { name = "etcd", gid = 998 },
               diff = { path = "group etcd", before = "gid=998\n", after = "" } } },
         { name = "absent already", state = absent, args = { name = "etcd", state = "absent", gid = 5 },
            want = { changed = false, msg = "absent", result = { name = "etcd" } } },
         { name = "refuses a leading '-'", state = {}, args = { name = "-g" },
            want = { failed = true, changed = false, msg = "group: argument 'name': not a valid group name: '-g'" } },
         { name = "refuses a name of digits", state = {}, args = { name = "1000" },
            want = { failed = true, changed = false, msg = "group: argument 'name': not a valid group name: '1000'" } },
         { name = "refuses a name too long", state = {}, args = { name = ("g"):rep(33) },
            want = { failed = true, changed = false,
               msg = "group: argument 'name': not a valid group name: '" .. ("g"):rep(33) .. "'" } },
         { name = "refuses a negative gid", state = {}, args = { name = "g", gid = -1 },
            want = { failed = true, changed = false, msg = "group: argument 'gid' must not be negative" } },
      }
      for _, case in ipairs(cases) do
         it(case.name, function()
            assert.are.same(case.want, module.plan(mod, case.state, case.args, case.opts))
         end)
      end
   end)

   describe("on the lab", function()
      local dir, why_not, h
      local function getent(name)
         local r = assert(h:exec("getent group " .. name))
         return r.status == 0 and r.stdout or nil
      end
      local function cleanup()
         h:exec("groupdel etcdrun-g; groupdel etcdrun-g2; true")
      end

      setup(function()
         dir, why_not = lab.ensure(10)
         if dir then
            h = lab.host(dir, 6)
            cleanup()
         end
      end)
      teardown(function()
         if dir then
            cleanup()
         end
      end)

      it("creates a system group once", function()
         if not dir then pending(why_not) return end
         local args = { name = "etcdrun-g", system = true }
         local r = modtest.run("group", args, h, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would create", r.msg)
         assert.are.same({ path = "group etcdrun-g", before = "", after = "gid=(assigned)\nsystem=yes\n" }, r.diff)
         assert.is_nil(getent("etcdrun-g"))
         r = modtest.run("group", args, h)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("created", r.msg)
         local gid = tonumber(getent("etcdrun-g"):match("^etcdrun%-g:x:(%d+):"))
         assert.are.equal(gid, r.gid)
         assert.is_true(gid < 1000) -- the system range
         r = modtest.run("group", args, h)
         assert.is_false(r.changed)
         assert.are.equal(("present (gid %d)"):format(gid), r.msg)
         assert.are.equal(gid, r.gid)
      end)

      it("changes a gid, and names the clash when a gid is taken", function()
         if not dir then pending(why_not) return end
         local before = getent("etcdrun-g"):match(":(%d+):")
         local args = { name = "etcdrun-g", gid = 1990 }
         local r = modtest.run("group", args, h, { check = true })
         assert.are.equal(("would change gid %s to 1990"):format(before), r.msg)
         assert.are.same({ path = "group etcdrun-g", before = "gid=" .. before .. "\n", after = "gid=1990\n" },
            r.diff)
         r = modtest.run("group", args, h)
         assert.is_true(r.changed)
         assert.are.equal("etcdrun-g:x:1990:\n", getent("etcdrun-g"))
         assert.is_false(modtest.run("group", args, h).changed)
         r = modtest.run("group", { name = "etcdrun-g2", gid = 1990 }, h)
         assert.is_true(r.failed)
         assert.are.equal("group: groupadd failed on etcd6: groupadd: GID '1990' already exists", r.msg)
         assert.is_nil(getent("etcdrun-g2"))
      end)

      it("deletes a group once", function()
         if not dir then pending(why_not) return end
         local args = { name = "etcdrun-g", state = "absent" }
         local r = modtest.run("group", args, h, { check = true })
         assert.is_true(r.changed)
         assert.are.same({ path = "group etcdrun-g", before = "gid=1990\n", after = "" }, r.diff)
         assert.is_string(getent("etcdrun-g"))
         r = modtest.run("group", args, h)
         assert.are.equal("deleted", r.msg)
         assert.is_nil(getent("etcdrun-g"))
         r = modtest.run("group", args, h)
         assert.is_false(r.changed)
         assert.are.equal("absent", r.msg)
      end)
   end)
end)
