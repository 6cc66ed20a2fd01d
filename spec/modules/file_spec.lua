-- The file module: arguments, every decision as plan cases (no node), and on a lab node (etcd3) every state run
-- twice (changed, then unchanged), --check writing nothing, diffs of the
-- attributes, and failures naming host:path; then on the controller.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local fs = require("etcdrun.fs")

local BASE = "/root/etcdrun-modtest-file"

describe("file arguments", function()
   local cases = {
      { { state = "directory" }, "argument 'path' is required" },
      { { path = "tmp/x" }, "argument 'path' must be an absolute path" },
      { { path = "/x", state = "dir" }, "argument 'state' must be one of file, directory, link, touch, absent" },
      { { path = "/x", state = "link" }, "argument 'src' is required when state is 'link'" },
      { { path = "/x", mode = 755 }, "argument 'mode': write modes as strings" },
      { { path = "/x", mode = "0999" }, "argument 'mode' must be an octal mode string" },
      { { path = "/x", recurse = true }, "unknown argument 'recurse'" },
      { { path = "/x", owner = {} }, "argument 'owner' must be a string" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("file", c[1], "site.lua:7")
         assert.is_nil(ok)
         assert.matches("^site%.lua:7: module 'file': ", err)
         assert.matches(c[2], err, 1, true)
      end)
   end

   it("takes an owner given as a number as the uid", function()
      assert.are.equal("0", assert(modtest.validate("file", { path = "/x", owner = 0 })).owner)
   end)
end)

describe("file plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local ABSENT = { kind = "absent" }
   local function at(t, mode, user)
      return { kind = t, lstat = st(t, mode, user) }
   end
   local function link(target, tst, real)
      return { kind = "link", lstat = st("link", "0777"), target = target, target_stat = tst, real = real }
   end
   plancases.run(it, "file", {
      { name = "directory: creates a missing one, with its mode",
         state = ABSENT, args = { path = "/e/d", state = "directory", mode = "0750" },
         want = { changed = true, msg = "would create the directory", done = "created the directory",
            cmd = "mkdir -p -- /e/d && chmod 750 -- /e/d",
            diff = { path = "/e/d", before = "state absent\n", after = "state directory\nmode 0750\n" } } },
      { name = "directory: an existing one with its attributes is left",
         state = at("dir", "0750"), args = { path = "/e/d/", state = "directory", mode = "0750", owner = "root" },
         want = { changed = false, msg = "directory, attributes match", cmd = NONE } },
      { name = "directory: fixes mode and owner",
         state = at("dir", "0700"), args = { path = "/e/d", state = "directory", mode = "01777", owner = "nobody" },
         want = { changed = true, msg = "would set mode 0700 -> 1777, owner root -> nobody",
            done = "set mode 0700 -> 1777, owner root -> nobody",
            cmd = "chown nobody -- /e/d && chmod 1777 -- /e/d" } },
      { name = "directory: a file there fails",
         state = at("file", "0644"), args = { path = "/e/f", state = "directory" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:/e/f exists and is a file, not a directory" } },
      { name = "file: never creates",
         state = ABSENT, args = { path = "/e/f", state = "file" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:/e/f does not exist "
            .. "(state=file never creates: use state=touch or copy)" } },
      { name = "no state: a missing path fails",
         state = ABSENT, args = { path = "/e/f", mode = "0600" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:/e/f does not exist "
            .. "(give state=touch, directory or link to create it)" } },
      { name = "no state: the kind is kept, the group fixed (numeric gid)",
         state = at("file", "0644", "nobody"), args = { path = "/e/f", group = "0" },
         want = { changed = true, msg = "would set group nobody -> 0", cmd = "chown :0 -- /e/f" } },
      { name = "touch: creates an empty file",
         state = ABSENT, args = { path = "/e/f", state = "touch", mode = "0600" },
         want = { changed = true, msg = "would create the file", cmd = ": >> /e/f && chmod 600 -- /e/f" } },
      { name = "touch: an existing file is left (no timestamps)",
         state = at("file", "0600"), args = { path = "/e/f", state = "touch", mode = "0600" },
         want = { changed = false, msg = "file, attributes match" } },
      { name = "absent: removes a directory, recursively",
         state = at("dir", "0755"), args = { path = "/e/d", state = "absent" },
         want = { changed = true, msg = "would remove the directory", cmd = "rm -rf -- /e/d",
            diff = { path = "/e/d", before = "state directory\n", after = "state absent\n" } } },
      { name = "absent: nothing there",
         state = ABSENT, args = { path = "/e/d", state = "absent" }, want = { changed = false, msg = "absent" } },
      { name = "absent: removes a link, never its target",
         state = link("real", st("dir", "0755"), "/e/real"), args = { path = "/e/l", state = "absent" },
         want = { changed = true, msg = "would remove the link", cmd = "rm -rf -- /e/l" } },
      { name = "link: creates one, beside the path then renamed over it",
         state = { kind = "absent", src_exists = true }, args = { path = "/e/l", state = "link", src = "real" },
         want = { changed = true, msg = "would create the link",
            cmd = "ln -sfn -- real /e/.l.etcdrun-link && mv -f -T -- /e/.l.etcdrun-link /e/l",
            diff = { path = "/e/l", before = "state absent\n", after = "state link\nsrc real\n" } } },
      { name = "link: retargets",
         state = link("old", nil, nil), args = { path = "/e/l", state = "link", src = "new", force = true },
         want = { changed = true, msg = "would change the link target old -> new" } },
      { name = "link: the same target is left",
         state = { kind = "link", lstat = st("link", "0777"), target = "real", src_exists = true },
         args = { path = "/e/l", state = "link", src = "real" },
         want = { changed = false, msg = "link, attributes match" } },
      { name = "link: a missing src needs force",
         state = ABSENT, args = { path = "/e/l", state = "link", src = "/no/such" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:/e/l link source /no/such does not exist "
            .. "(force=true links anyway)" } },
      { name = "link: a regular file there needs force",
         state = { kind = "file", lstat = st("file", "0644"), src_exists = true },
         args = { path = "/e/l", state = "link", src = "real" },
         also = function(p)
            assert.matches("is a regular file: force=true replaces it", p.msg)
         end, want = { failed = true } },
      { name = "link: a mode is refused",
         state = ABSENT, args = { path = "/e/l", state = "link", src = "real", mode = "0644" },
         also = function(p)
            assert.matches("mode cannot be set on a symlink", p.msg)
         end, want = { failed = true } },
      { name = "follow: attributes are set on the file a link resolves to",
         state = link("real/f", st("file", "0640"), "/e/real/f"),
         args = { path = "/e/l", mode = "0600" },
         want = { changed = true, msg = "would set mode 0640 -> 0600 (through the symlink /e/l -> /e/real/f)",
            cmd = "chmod 600 -- /e/real/f",
            diff = { path = "/e/real/f", before = "state file\nmode 0640\n", after = "state file\nmode 0600\n" } } },
      { name = "follow: a dangling link has nothing to set attributes on",
         state = link("nowhere"), args = { path = "/e/l", owner = "nobody" },
         also = function(p)
            assert.matches("is a symlink to nowhere, which does not exist %(or loops%): nothing to follow", p.msg)
         end, want = { failed = true } },
      { name = "follow=false: owner on the link itself (chown -h)",
         state = link("real/f", st("file", "0640"), "/e/real/f"),
         args = { path = "/e/l", owner = "nobody", follow = false },
         want = { changed = true, msg = "would set owner root -> nobody", cmd = "chown -h nobody -- /e/l" } },
      { name = "follow=false: no mode on a link",
         state = link("real/f", st("file", "0640"), "/e/real/f"),
         args = { path = "/e/l", mode = "0600", follow = false },
         also = function(p)
            assert.matches("is a symlink and follow=false: mode cannot be set on a symlink itself", p.msg)
         end, want = { failed = true } },
      { name = "follow=false: state=file on a link fails",
         state = link("real/f", st("file", "0640"), "/e/real/f"),
         args = { path = "/e/l", state = "file", follow = false },
         also = function(p)
            assert.matches("l is a link, not a file$", p.msg)
         end, want = { failed = true } },
      { name = "a special file is named so",
         state = at("char", "0666"), args = { path = "/dev/null", state = "directory" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:/dev/null exists and is a special file, not a directory" } },
      { name = "refuses the root directory",
         state = {}, args = { path = "//", state = "absent" }, opts = { host = "n1" },
         want = { failed = true, msg = "file: n1:// is the root directory: refusing to manage it" } },
      { name = "src is only for state=link",
         state = at("file", "0644"), args = { path = "/e/f", src = "x" },
         also = function(p)
            assert.matches("src is only for state=link", p.msg)
         end, want = { failed = true } },
   })
end)

describe("file on a node", function()
   local dir, why_not, h

   local function on_node(cmd)
      return assert(h:exec(cmd)).stdout
   end

   local function kind(p)
      return on_node(("stat -c '%%F %%a %%U %%G' %s 2>/dev/null || echo absent"):format(p))
   end

   local function twice(args, diff)
      local r = modtest.run("file", args, h, { check = true })
      assert.is_true(r.changed, r.msg)
      assert.is_false(r.failed, r.msg)
      if diff then
         assert.are.same(diff, { r.diff.before, r.diff.after })
      end
      assert.matches("^would ", r.msg)
      r = modtest.run("file", args, h)
      assert.is_true(r.changed, r.msg)
      assert.is_false(r.failed, r.msg)
      assert.is_nil(r.msg:match("^would"))
      r = modtest.run("file", args, h)
      assert.is_false(r.changed, r.msg)
      assert.is_false(r.failed, r.msg)
      return r
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

   it("makes a directory with parents, mode and owner", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/opt/etcd/bin"
      local args = { path = p, state = "directory", mode = "0700", owner = "nobody" }
      local r = modtest.run("file", args, h, { check = true })
      assert.are.equal("would create the directory", r.msg)
      assert.are.same({ path = p, before = "state absent\n", after = "state directory\nmode 0700\nowner nobody\n" },
         r.diff)
      assert.are.equal("absent\n", kind(BASE .. "/opt"))
      twice(args)
      assert.are.equal("directory 700 nobody root\n", kind(p))
   end)

   it("changes a directory's mode, showing before and after", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/data"
      on_node("mkdir -m 755 " .. p)
      twice({ path = p, state = "directory", mode = "0700" },
         { "state directory\nmode 0755\n", "state directory\nmode 0700\n" })
      assert.are.equal("directory 700 root root\n", kind(p))
      local r = modtest.run("file", { path = p, mode = "01777" }, h, { check = true })
      assert.are.equal("would set mode 0700 -> 1777", r.msg)
      r = modtest.run("file", { path = p, mode = "01777" }, h)
      assert.are.equal("set mode 0700 -> 1777", r.msg)
      assert.are.equal("directory 1777 root root\n", kind(p))
   end)

   it("sets attributes of an existing file (state=file) and refuses a missing one", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/etcd"
      on_node("echo bin > " .. p .. " && chmod 600 " .. p)
      twice({ path = p, state = "file", mode = "0755", group = "nogroup" },
         { "state file\nmode 0600\ngroup root\n", "state file\nmode 0755\ngroup nogroup\n" })
      assert.are.equal("regular file 755 root nogroup\n", kind(p))
      assert.are.equal("bin\n", on_node("cat " .. p))
      local r = modtest.run("file", { path = BASE .. "/nope", state = "file" }, h)
      assert.is_true(r.failed)
      assert.are.equal("file: etcd3:" .. BASE .. "/nope does not exist "
         .. "(state=file never creates: use state=touch or copy)", r.msg)
      r = modtest.run("file", { path = BASE .. "/nope", mode = "0644" }, h)
      assert.is_true(r.failed)
      assert.matches("does not exist", r.msg)
   end)

   it("touches a file into existence once, without bumping its time later", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/touched"
      twice({ path = p, state = "touch", mode = "0640" }, { "state absent\n", "state file\nmode 0640\n" })
      assert.are.equal("regular empty file 640 root root\n", kind(p))
   end)

   it("makes, retargets and keeps a symlink", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/current"
      on_node(("mkdir -p %s/v1 %s/v2"):format(BASE, BASE))
      twice({ path = p, state = "link", src = BASE .. "/v1" },
         { "state absent\n", "state link\nsrc " .. BASE .. "/v1\n" })
      assert.are.equal(BASE .. "/v1\n", on_node("readlink " .. p))
      local r = twice({ path = p, state = "link", src = "v2" })
      assert.are.equal("link, attributes match", r.msg)
      assert.are.equal("v2\n", on_node("readlink " .. p))
      twice({ path = p, state = "link", src = "v2", owner = "nobody" })
      assert.are.equal("nobody\n", on_node("stat -c %U " .. p))
      -- a state=directory on the link acts on its target
      twice({ path = p, state = "directory", mode = "0711" })
      assert.are.equal("711\n", on_node("stat -L -c %a " .. p))
      assert.are.equal("", on_node("ls -A " .. BASE .. " | grep etcdrun-link || true"))
   end)

   it("refuses a link to a missing source, or over a file, unless forced", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/l2"
      local r = modtest.run("file", { path = p, state = "link", src = "/no/such" }, h)
      assert.is_true(r.failed)
      assert.are.equal("file: etcd3:" .. p .. " link source /no/such does not exist (force=true links anyway)", r.msg)
      twice({ path = p, state = "link", src = "/no/such", force = true })
      local f = BASE .. "/plain"
      on_node("echo x > " .. f)
      r = modtest.run("file", { path = f, state = "link", src = "/etc/hostname" }, h)
      assert.is_true(r.failed)
      assert.matches("is a regular file: force=true replaces it", r.msg)
      twice({ path = f, state = "link", src = "/etc/hostname", force = true })
      assert.are.equal("etcd3\n", on_node("cat " .. f))
      r = modtest.run("file", { path = BASE .. "/data2", state = "link", src = "/etc/hostname", mode = "0644" }, h)
      assert.is_true(r.failed)
      assert.matches("mode cannot be set on a symlink", r.msg)
   end)

   it("removes a tree, and a link without its target", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/tree"
      on_node(("mkdir -p %s/a/b && touch %s/a/b/c && ln -s %s/a %s/link"):format(p, p, p, BASE))
      twice({ path = BASE .. "/link", state = "absent" }, { "state link\nsrc " .. p .. "/a\n", "state absent\n" })
      assert.are.equal("regular empty file 644 root root\n", kind(p .. "/a/b/c"))
      local r = twice({ path = p, state = "absent" }, { "state directory\n", "state absent\n" })
      assert.are.equal("absent", r.msg)
      assert.are.equal("absent\n", kind(p))
   end)

   it("fails with host:path on wrong kinds, bad owners and the root directory", function()
      if not dir then pending(why_not) return end
      local f = BASE .. "/afile"
      on_node("echo x > " .. f)
      local r = modtest.run("file", { path = f, state = "directory" }, h)
      assert.is_true(r.failed)
      assert.are.equal("file: etcd3:" .. f .. " exists and is a file, not a directory", r.msg)
      r = modtest.run("file", { path = f, owner = "no-such-user" }, h)
      assert.is_true(r.failed)
      assert.matches("^file: chown: invalid user: .*no%-such%-user.* %(etcd3:" .. f:gsub("%-", "%%-") .. "%)$", r.msg)
      r = modtest.run("file", { path = "//", state = "absent" }, h)
      assert.is_true(r.failed)
      assert.matches("refusing", r.msg)
      r = modtest.run("file", { path = "/etc/hostname/sub", state = "directory" }, h)
      assert.is_true(r.failed)
      assert.matches("etcd3:/etc/hostname/sub", r.msg)
   end)
end)

describe("file on the controller", function()
   it("makes a directory, then leaves it alone", function()
      local tmp = helper.tmpdir()
      local c = localhost.new()
      local args = { path = tmp .. "/d/e", state = "directory", mode = "0750" }
      assert.is_true(modtest.run("file", args, c, { check = true }).changed)
      assert.is_nil(fs.try.stat(tmp .. "/d"))
      assert.is_true(modtest.run("file", args, c).changed)
      assert.are.equal(488, fs.stat(tmp .. "/d/e").mode)
      assert.is_false(modtest.run("file", args, c).changed)
   end)
end)

-- A symlink at path (the follow rule), the same on a node and on the
-- controller: in d, link -> real/f (relative, mode 0640, root's) and
-- dangling -> nowhere.
local function symlink_cases(get)
   local function sh(h, cmd)
      local r = assert(h:exec(cmd))
      assert(r.status == 0, r.stderr)
      return r.stdout
   end
   local function layout(h, d)
      sh(h, ("rm -rf %s && mkdir -p %s/real && echo x > %s/real/f && chmod 0640 %s/real/f && chown 0:0 %s/real/f "
         .. "&& ln -s real/f %s/link && ln -s nowhere %s/dangling"):format(d, d, d, d, d, d, d))
   end
   -- the link itself (owner, target) and what it points to (mode, owner)
   local function look(h, d, p)
      return sh(h, ("cd %s && stat -c '%%F %%U' %s && readlink %s && (stat -L -c '%%a %%U' %s 2>/dev/null "
         .. "|| echo none)"):format(d, p, p, p))
   end

   it("follows it by default: mode and owner go to the target, the link stays as it is", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local args = { path = d .. "/link", mode = "0600", owner = "nobody" }
      local r = modtest.run("file", args, h, { check = true })
      assert.is_true(r.changed)
      assert.are.equal(("would set mode 0640 -> 0600, owner root -> nobody (through the symlink %s/link -> %s/real/f)")
         :format(d, d), r.msg)
      assert.are.same({ path = d .. "/real/f", before = "state file\nmode 0640\nowner root\n",
         after = "state file\nmode 0600\nowner nobody\n" }, r.diff)
      assert.are.equal("symbolic link root\nreal/f\n640 root\n", look(h, d, "link"))
      r = modtest.run("file", args, h)
      assert.is_true(r.changed, r.msg)
      assert.matches("^set mode 0640 %-> 0600, owner root %-> nobody %(through the symlink", r.msg)
      assert.are.equal("symbolic link root\nreal/f\n600 nobody\n", look(h, d, "link"))
      r = modtest.run("file", args, h)
      assert.is_false(r.changed)
      assert.matches("^file, attributes match %(through the symlink", r.msg)
      -- state=file and state=touch take the link's target as the file
      assert.is_false(modtest.run("file", { path = d .. "/link", state = "file", mode = "0600" }, h).changed)
      assert.is_false(modtest.run("file", { path = d .. "/link", state = "touch" }, h).changed)
   end)

   it("with follow=false sets owner and group on the link itself and refuses a mode", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local args = { path = d .. "/link", owner = "nobody", follow = false }
      local r = modtest.run("file", args, h, { check = true })
      assert.is_true(r.changed)
      assert.are.same({ path = d .. "/link", before = "state link\nsrc real/f\nowner root\n",
         after = "state link\nsrc real/f\nowner nobody\n" }, r.diff)
      r = modtest.run("file", args, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("symbolic link nobody\nreal/f\n640 root\n", look(h, d, "link"))
      assert.is_false(modtest.run("file", args, h).changed)
      r = modtest.run("file", { path = d .. "/link", mode = "0600", follow = false }, h)
      assert.is_true(r.failed)
      assert.are.equal(("file: %s:%s/link is a symlink and follow=false: mode cannot be set on a symlink itself "
         .. "(Linux links have no mode; follow=true sets the mode of the file it points to)"):format(h.name, d), r.msg)
      r = modtest.run("file", { path = d .. "/link", state = "file", follow = false }, h)
      assert.is_true(r.failed)
      assert.matches("link is a link, not a file$", r.msg)
      assert.are.equal("symbolic link nobody\nreal/f\n640 root\n", look(h, d, "link"))
   end)

   it("refuses to follow a dangling link; follow=false changes the link", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      for _, args in ipairs({ { mode = "0600" }, { owner = "nobody" }, { state = "touch" } }) do
         args.path = d .. "/dangling"
         local r = modtest.run("file", args, h)
         assert.is_true(r.failed)
         assert.are.equal(("file: %s:%s/dangling is a symlink to nowhere, which does not exist (or loops): "
            .. "nothing to follow (follow=false manages the link itself: owner and group)"):format(h.name, d), r.msg)
      end
      assert.are.equal("symbolic link root\nnowhere\nnone\n", look(h, d, "dangling"))
      -- nothing asked of it: a dangling link is left as it is
      assert.is_false(modtest.run("file", { path = d .. "/dangling" }, h).changed)
      assert.is_true(modtest.run("file", { path = d .. "/dangling", owner = "nobody", follow = false }, h).changed)
      assert.are.equal("symbolic link nobody\nnowhere\nnone\n", look(h, d, "dangling"))
   end)
end

describe("file through a symlink on the controller", function()
   symlink_cases(function()
      return localhost.new(), helper.tmpdir() .. "/links"
   end)
end)

describe("file through a symlink on a node", function()
   local dir, why_not, h
   setup(function()
      dir, why_not = lab.ensure(10)
      if dir then
         h = lab.host(dir, 3)
      end
   end)
   teardown(function()
      if h then
         h:exec("rm -rf /tmp/etcdrun-modtest-file-links")
         h:close()
      end
   end)
   symlink_cases(function()
      if not dir then
         pending(why_not)
         return nil
      end
      return h, "/tmp/etcdrun-modtest-file-links"
   end)
end)
