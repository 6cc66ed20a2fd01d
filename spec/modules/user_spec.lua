-- The user module against lab node etcd6.
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

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

   -- The decision alone: the account as gather records it (getent passwd,
   -- id -gn/-Gn, whether a group of the user's name exists), no node.
   describe("user plan", function()
      local mod = assert(module.load("user"))
      local none = { account = false, samegroup = false }
      local none_own_group = { account = false, samegroup = true }
      local etcd = { samegroup = true, account = { uid = 997, gid = 997, group = "etcd", groups = {},
         home = "/var/lib/etcd", shell = "/usr/sbin/nologin", comment = "etcd user" } }
      local etcd_before = "uid=997\ngroup=etcd\ngroups=\nhome=/var/lib/etcd\nshell=/usr/sbin/nologin\n"
         .. "comment=etcd user\n"
      local alice = { samegroup = true, account = { uid = 1000, gid = 1000, group = "alice", groups = { "adm", "sudo" },
         home = "/home/alice", shell = "/bin/bash", comment = "" } }
      local function failed(msg)
         return { failed = true, changed = false, msg = "user: " .. msg }
      end
      local cases = {
         { name = "creates a system user in its own existing group", state = none_own_group,
            args = { name = "etcd", system = true, home = "/var/lib/etcd", comment = "etcd user" },
            want = { changed = true, msg = "would create", result = { name = "etcd", uid = false },
               cmd = "useradd --system --gid etcd --home-dir /var/lib/etcd --shell /usr/sbin/nologin "
                  .. "--comment 'etcd user' --no-create-home etcd",
               diff = { path = "user etcd", before = "", after = "uid=(assigned)\ngroup=etcd\nhome=/var/lib/etcd\n"
                  .. "shell=/usr/sbin/nologin\ncomment=etcd user\n" } } },
         { name = "the same under check", state = none_own_group, opts = { check = true },
            args = { name = "etcd", system = true },
            want = { changed = true, msg = "would create", result = { name = "etcd", uid = false },
               cmd = "useradd --system --gid etcd --shell /usr/sbin/nologin --no-create-home etcd",
               diff = { path = "user etcd", before = "",
                  after = "uid=(assigned)\ngroup=etcd\nshell=/usr/sbin/nologin\n" } } },
         { name = "creates an ordinary user: uid, groups as given, a home", state = none,
            args = { name = "bob", uid = 1990, groups = { "wheel", "adm" } },
            want = { changed = true, msg = "would create", result = { name = "bob", uid = false },
               cmd = "useradd --uid 1990 --groups wheel,adm --create-home bob",
               diff = { path = "user bob", before = "", after = "uid=1990\ngroup=bob\ngroups=adm,wheel\n" } } },
         { name = "a system user with a home and a shell, in a given group", state = none_own_group,
            args = { name = "svc", system = true, create_home = true, shell = "/bin/sh", group = "users" },
            want = { changed = true, msg = "would create", result = { name = "svc", uid = false },
               cmd = "useradd --system --gid users --shell /bin/sh --create-home svc",
               diff = { path = "user svc", before = "", after = "uid=(assigned)\ngroup=users\nshell=/bin/sh\n" } } },
         { name = "present: nothing given differs", state = etcd,
            args = { name = "etcd", system = true, home = "/var/lib/etcd", comment = "etcd user", groups = {} },
            want = { changed = false, msg = "present (uid 997)", result = { name = "etcd", uid = 997 } } },
         { name = "present: the primary group by number", state = etcd, args = { name = "etcd", group = "997" },
            want = { changed = false, msg = "present (uid 997)", result = { name = "etcd", uid = 997 } } },
         { name = "present: groups in another order", state = alice,
            args = { name = "alice", groups = { "sudo", "adm" } },
            want = { changed = false, msg = "present (uid 1000)", result = { name = "alice", uid = 1000 } } },
         { name = "present: append with nothing missing", state = alice,
            args = { name = "alice", groups = { "adm" }, append = true },
            want = { changed = false, msg = "present (uid 1000)", result = { name = "alice", uid = 1000 } } },
         { name = "changes groups and shell", state = etcd,
            args = { name = "etcd", groups = { "ssl-cert" }, shell = "/bin/bash" },
            want = { changed = true, msg = "would change groups, shell", done = "changed groups, shell",
               result = { name = "etcd", uid = 997 }, cmd = "usermod --groups ssl-cert --shell /bin/bash etcd",
               diff = { path = "user etcd", before = etcd_before, after = "uid=997\ngroup=etcd\ngroups=ssl-cert\n"
                  .. "home=/var/lib/etcd\nshell=/bin/bash\ncomment=etcd user\n" } } },
         { name = "appends the missing groups", state = alice,
            args = { name = "alice", groups = { "sudo", "docker" }, append = true },
            want = { changed = true, msg = "would change groups", done = "changed groups",
               result = { name = "alice", uid = 1000 }, cmd = "usermod --append --groups docker alice",
               diff = { path = "user alice",
                  before = "uid=1000\ngroup=alice\ngroups=adm,sudo\nhome=/home/alice\nshell=/bin/bash\ncomment=\n",
                  after = "uid=1000\ngroup=alice\ngroups=adm,docker,sudo\nhome=/home/alice\nshell=/bin/bash\n"
                     .. "comment=\n" } } },
         { name = "leaves every supplementary group", state = alice, args = { name = "alice", groups = {} },
            want = { changed = true, msg = "would change groups", done = "changed groups",
               result = { name = "alice", uid = 1000 }, cmd = "usermod --groups '' alice",
               diff = { path = "user alice",
                  before = "uid=1000\ngroup=alice\ngroups=adm,sudo\nhome=/home/alice\nshell=/bin/bash\ncomment=\n",
                  after = "uid=1000\ngroup=alice\ngroups=\nhome=/home/alice\nshell=/bin/bash\ncomment=\n" } } },
         { name = "refuses a ':' in comment", state = etcd,
            args = { name = "etcd", uid = 1997, group = "daemon", home = "/srv/etcd", comment = "etcd: v3" },
            want = failed("argument 'comment' must not hold ':' or a line break") },
         { name = "changes uid, primary group, home and comment", state = etcd,
            args = { name = "etcd", uid = 1997, group = "daemon", home = "/srv/etcd", comment = "etcd v3" },
            want = { changed = true, msg = "would change uid, group, home, comment",
               done = "changed uid, group, home, comment", result = { name = "etcd", uid = 997 },
               cmd = "usermod --uid 1997 --gid daemon --home /srv/etcd --comment 'etcd v3' etcd",
               diff = { path = "user etcd", before = etcd_before, after = "uid=1997\ngroup=daemon\ngroups=\n"
                  .. "home=/srv/etcd\nshell=/usr/sbin/nologin\ncomment=etcd v3\n" } } },
         { name = "deletes with the home", state = etcd, args = { name = "etcd", state = "absent", remove = true },
            want = { changed = true, msg = "would delete", result = { name = "etcd", uid = 997 },
               cmd = "userdel --remove etcd", diff = { path = "user etcd", before = etcd_before, after = "" } } },
         { name = "deletes under check", state = alice, args = { name = "alice", state = "absent" },
            opts = { check = true },
            want = { changed = true, msg = "would delete", result = { name = "alice", uid = 1000 },
               cmd = "userdel alice", diff = { path = "user alice", after = "", before = "uid=1000\ngroup=alice\n"
                  .. "groups=adm,sudo\nhome=/home/alice\nshell=/bin/bash\ncomment=\n" } } },
         { name = "absent already", state = none, args = { name = "etcd", state = "absent" },
            want = { changed = false, msg = "absent", result = { name = "etcd", uid = false } } },
         { name = "refuses a bad name", state = {}, args = { name = "-u" },
            want = failed("argument 'name': not a valid user name: '-u'") },
         { name = "refuses a bad group name", state = {}, args = { name = "u", groups = { "ok", "no way" } },
            want = failed("argument 'groups': not a valid group name: 'no way'") },
         { name = "refuses a line break in comment", state = {}, args = { name = "u", comment = "a\nb" },
            want = failed("argument 'comment' must not hold ':' or a line break") },
      }
      for _, case in ipairs(cases) do
         it(case.name, function()
            assert.are.same(case.want, module.plan(mod, case.state, case.args, case.opts))
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
