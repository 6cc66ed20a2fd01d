-- The user module against lab node etcd6.
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")

describe("user module", function()
   describe("arguments", function()
      local cases = {
         { {}, "argument 'name' is required" },
         { { name = "u", groups = 5 }, "argument 'groups' must be a list, got number" },
         { { name = "u", shell = "bash" }, "argument 'shell' must be an absolute path, got 'bash'" },
         { { name = "u", uid = "1000" }, "argument 'uid' must be an integer, got '1000'" },
         { { name = "u", password = "x" }, "unknown argument 'password'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("user", c[1], "site.lua:4")
            assert.is_nil(ok)
            local want = "site.lua:4: module 'user': " .. c[2]
            assert.are.equal(want, err:sub(1, #want))
         end)
      end
      for _, c in ipairs({
         { { name = "-u" }, "user: argument 'name': not a valid user name: '-u'" },
         { { name = "u", groups = { "ok", "no way" } }, "user: argument 'groups': not a valid group name: 'no way'" },
         { { name = "u", comment = "a:b" }, "user: argument 'comment' must not hold ':' or a line break" },
      }) do
         it("fails in check: " .. c[2], function()
            local r = modtest.run("user", c[1], localhost.new())
            assert.is_true(r.failed)
            assert.are.equal(c[2], r.msg)
         end)
      end
   end)

   describe("on the lab", function()
      local dir, why_not, h
      local function sh(cmd)
         local r = assert(h:exec(cmd))
         return r.stdout:gsub("\n$", ""), r.status
      end
      local function passwd(name)
         local out, status = sh("getent passwd " .. name)
         return status == 0 and out or nil
      end
      local function cleanup()
         sh("for u in etcdrun-u etcdrun-u2 etcdrun-u3; do userdel -r $u; done 2>/dev/null; "
            .. "for g in etcdrun-u etcdrun-sup etcdrun-sup2; do groupdel $g; done 2>/dev/null; "
            .. "rm -rf /var/lib/etcdrun-u; true")
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

      it("creates a system user in its own existing group, once", function()
         if not dir then pending(why_not) return end
         assert.is_false(modtest.run("group", { name = "etcdrun-u", system = true }, h).failed)
         local gid = sh("getent group etcdrun-u | cut -d: -f3")
         local args = { name = "etcdrun-u", system = true, home = "/var/lib/etcdrun-u", comment = "etcdrun test" }
         local r = modtest.run("user", args, h, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would create", r.msg)
         assert.are.same({ path = "user etcdrun-u", before = "", after = "uid=(assigned)\ngroup=etcdrun-u\n"
            .. "home=/var/lib/etcdrun-u\nshell=/usr/sbin/nologin\ncomment=etcdrun test\n" }, r.diff)
         assert.is_nil(passwd("etcdrun-u"))
         r = modtest.run("user", args, h)
         assert.is_false(r.failed, r.msg)
         assert.are.equal("created", r.msg)
         local uid = r.uid
         assert.is_true(uid < 1000)
         assert.are.equal(("etcdrun-u:x:%d:%s:etcdrun test:/var/lib/etcdrun-u:/usr/sbin/nologin"):format(uid, gid),
            passwd("etcdrun-u"))
         assert.are.equal(1, select(2, sh("test -e /var/lib/etcdrun-u"))) -- no home for a system user
         r = modtest.run("user", args, h)
         assert.is_false(r.changed)
         assert.are.equal(("present (uid %d)"):format(uid), r.msg)
      end)

      it("changes shell and supplementary groups, exactly or appended", function()
         if not dir then pending(why_not) return end
         sh("groupadd etcdrun-sup && groupadd etcdrun-sup2")
         local args = { name = "etcdrun-u", shell = "/bin/bash", groups = { "etcdrun-sup" } }
         local r = modtest.run("user", args, h, { check = true })
         assert.are.equal("would change groups, shell", r.msg)
         assert.matches("\ngroups=\nhome=/var/lib/etcdrun%-u\nshell=/usr/sbin/nologin\n", r.diff.before)
         assert.matches("\ngroups=etcdrun%-sup\nhome=/var/lib/etcdrun%-u\nshell=/bin/bash\n", r.diff.after)
         assert.matches(":/usr/sbin/nologin$", passwd("etcdrun-u"))
         r = modtest.run("user", args, h)
         assert.are.equal("changed groups, shell", r.msg)
         assert.matches(":/bin/bash$", passwd("etcdrun-u"))
         assert.are.equal("etcdrun-u etcdrun-sup", sh("id -Gn etcdrun-u"))
         assert.is_false(modtest.run("user", args, h).changed)

         args = { name = "etcdrun-u", groups = { "etcdrun-sup2" }, append = true }
         r = modtest.run("user", args, h)
         assert.are.equal("changed groups", r.msg)
         assert.are.equal("etcdrun-u etcdrun-sup etcdrun-sup2", sh("id -Gn etcdrun-u"))
         assert.is_false(modtest.run("user", args, h).changed)

         args = { name = "etcdrun-u", groups = {} }
         assert.is_true(modtest.run("user", args, h).changed)
         assert.are.equal("etcdrun-u", sh("id -Gn etcdrun-u"))
         assert.is_false(modtest.run("user", args, h).changed)
      end)

      it("creates an ordinary user with a home, and deletes it with its home", function()
         if not dir then pending(why_not) return end
         local r = modtest.run("user", { name = "etcdrun-u2", uid = 1990 }, h)
         assert.is_false(r.failed, r.msg)
         assert.are.equal(1990, r.uid)
         assert.are.equal(0, select(2, sh("test -d /home/etcdrun-u2")))
         assert.is_false(modtest.run("user", { name = "etcdrun-u2", uid = 1990 }, h).changed)
         local args = { name = "etcdrun-u2", state = "absent", remove = true }
         r = modtest.run("user", args, h, { check = true })
         assert.is_true(r.changed)
         assert.is_string(passwd("etcdrun-u2"))
         r = modtest.run("user", args, h)
         assert.are.equal("deleted", r.msg)
         assert.is_nil(passwd("etcdrun-u2"))
         assert.are.equal(1, select(2, sh("test -e /home/etcdrun-u2")))
         assert.is_false(modtest.run("user", args, h).changed)
      end)

      it("names the host and useradd's reason on failure", function()
         if not dir then pending(why_not) return end
         local r = modtest.run("user", { name = "etcdrun-u3", group = "etcdrun-nosuch" }, h)
         assert.is_true(r.failed)
         assert.are.equal("user: useradd etcdrun-u3 failed on etcd6: useradd: group 'etcdrun-nosuch' does not exist",
            r.msg)
         assert.is_nil(passwd("etcdrun-u3"))
      end)
   end)
end)
