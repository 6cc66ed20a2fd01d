-- The copy module: argument checks, then against a lab node (etcd1): first
-- run changes, second does not, --check writes nothing, diffs, failures;
-- and the same on the controller.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local fs = require("etcdrun.fs")

local BASE = "/root/etcdrun-modtest-copy"
local FIXTURES = lab.root .. "/spec/fixtures/modules"

describe("copy arguments", function()
   local cases = {
      { { content = "x" }, "argument 'dest' is required" },
      { { dest = "rel/path", content = "x" }, "argument 'dest' must be an absolute path" },
      { { dest = "/x" }, "one of content, src is required" },
      { { dest = "/x", content = "a", src = "b" }, "arguments .* are mutually exclusive" },
      { { dest = "/x", content = "a", mode = 0644 }, "argument 'mode': write modes as strings" },
      { { dest = "/x", content = "a", mode = "rw" }, "argument 'mode' must be an octal mode" },
      { { dest = "/x", content = "a", force = "yes" }, "argument 'force' must be true or false" },
      { { dest = "/x", content = "a", backup = true }, "unknown argument 'backup'" },
      { { dest = "/x", content = "a", follow = "no" }, "argument 'follow' must be true or false" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("copy", c[1], "site.lua:3")
         assert.is_nil(ok)
         assert.matches("^site%.lua:3: module 'copy': ", err)
         assert.matches(c[2], err)
      end)
   end

   it("accepts a minimal task and turns the mode into a number", function()
      local a = assert(modtest.validate("copy", { dest = "/x", content = "", mode = "0600" }))
      assert.are.equal(384, a.mode)
      assert.is_true(a.force)
      assert.is_true(a.follow)
   end)
end)

describe("copy plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local function src(content)
      return { content = content, digest = fs.sha256(content), size = #content }
   end
   local function file(content, mode, user)
      return st("file", mode or "0644", user, { size = #content, digest = fs.sha256(content) })
   end
   local link = { target = "real/f", real = "/d/real/f" }
   local KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"
   plancases.run(it, "copy", {
      { name = "creates a missing file, with a diff from nothing",
         state = { src = src("one\n") }, args = { dest = "/e/f", content = "one\n" }, opts = { diff = true },
         want = { changed = true, msg = "would create file", write = true, created = true,
            diff = { path = "/e/f", before = "", after = "one\n" } } },
      { name = "no diff unless asked",
         state = { src = src("one\n") }, args = { dest = "/e/f", content = "one\n" },
         want = { changed = true, diff = NONE } },
      { name = "leaves a file with the same digest and attributes",
         state = { src = src("one\n"), st = file("one\n") }, args = { dest = "/e/f", content = "one\n", mode = "0644" },
         want = { changed = false, msg = "unchanged", diff = NONE } },
      { name = "changes content that differs, diffing what gather read",
         state = { src = src("a\nc\n"), st = file("a\nb\n"), before = "a\nb\n" },
         args = { dest = "/e/f", content = "a\nc\n" }, opts = { diff = true },
         want = { changed = true, msg = "would change content", created = false,
            diff = { path = "/e/f", before = "a\nb\n", after = "a\nc\n" } } },
      { name = "a before gather did not read (large) shows as a note",
         state = { src = src("x\n"), st = st("file", "0644", "root", { size = 100000, digest = "ab" }) },
         args = { dest = "/e/f", content = "x\n" }, opts = { diff = true },
         want = { diff = { path = "/e/f", before = "(100000 bytes, sha256 ab: not shown)\n", after = "x\n" } } },
      { name = "force=false leaves differing content",
         state = { src = src("theirs\n"), st = file("mine\n") },
         args = { dest = "/e/f", content = "theirs\n", force = false },
         want = { changed = false, msg = "exists, content differs, force=false: left as it is" } },
      { name = "fixes only attributes, with an attribute diff",
         state = { src = src("s\n"), st = file("s\n") },
         args = { dest = "/e/f", content = "s\n", mode = "0600", owner = "nobody", group = "nogroup" },
         opts = { diff = true },
         want = { changed = true, write = false,
            msg = "would change mode 0644 -> 0600, owner root -> nobody, group root -> nogroup",
            diff = { path = "/e/f", before = "mode 0644\nowner root\ngroup root\n",
               after = "mode 0600\nowner nobody\ngroup nogroup\n" } } },
      { name = "content and attributes at once",
         state = { src = src("n\n"), st = file("o\n", "0600") },
         args = { dest = "/e/f", content = "n\n", mode = "0640" },
         want = { msg = "would change content, mode 0600 -> 0640", write = true } },
      { name = "a numeric owner compares with the uid",
         state = { src = src("s\n"), st = file("s\n", "0644", "nobody") },
         args = { dest = "/e/f", content = "s\n", owner = "1000", group = "nobody" },
         want = { changed = false, msg = "unchanged" } },
      { name = "follows a symlink: the target is diffed and written, the message says so",
         state = { src = src("new\n"), link = link, st = file("old\n", "0640"), before = "old\n" },
         args = { dest = "/d/link", content = "new\n" }, opts = { diff = true },
         want = { changed = true, path = "/d/real/f",
            msg = "would change content (through the symlink /d/link -> /d/real/f)",
            diff = { path = "/d/real/f", before = "old\n", after = "new\n" } } },
      { name = "an unchanged target through a symlink",
         state = { src = src("same\n"), link = link, st = file("same\n") },
         args = { dest = "/d/link", content = "same\n" },
         want = { changed = false, msg = "unchanged (through the symlink /d/link -> /d/real/f)" } },
      { name = "follow=false replaces the link with a file; the diff's before is the link",
         state = { src = src("new\n"), link = link }, args = { dest = "/d/link", content = "new\n", follow = false },
         opts = { diff = true },
         want = { changed = true, replace = true, path = "/d/link",
            msg = "would replace the symlink (-> real/f) with a file",
            diff = { path = "/d/link", before = "symlink -> real/f\n", after = "new\n" } } },
      { name = "follow=false, force=false leaves the link",
         state = { src = src("x\n"), link = link },
         args = { dest = "/d/link", content = "x\n", follow = false, force = false },
         want = { changed = false, msg = "exists (a symlink to real/f), force=false: left as it is" } },
      { name = "refuses a dangling link when following",
         state = { src = src("x\n"), link = { target = "nowhere" } }, args = { dest = "/d/dangling", content = "x\n" },
         opts = { host = "n1" },
         want = { failed = true, msg = "copy: n1:/d/dangling is a symlink to nowhere, which does not exist (or loops): "
            .. "create the target first, or give follow=false to replace the link with a file" } },
      { name = "follow=false replaces a dangling link",
         state = { src = src("x\n"), link = { target = "nowhere" } },
         args = { dest = "/d/dangling", content = "x\n", follow = false },
         want = { changed = true, msg = "would replace the symlink (-> nowhere) with a file" } },
      { name = "refuses a directory",
         state = { src = src("x\n"), st = st("dir", "0755") },
         args = { dest = "/e", content = "x\n" }, opts = { host = "n1" },
         want = { failed = true, msg = "copy: n1:/e is a directory, not a file" } },
      { name = "refuses a link to a device",
         state = { src = src("x\n"), link = { target = "/dev/null", real = "/dev/null" }, st = st("char", "0666") },
         args = { dest = "/d/masked", content = "x\n" }, opts = { host = "n1" },
         want = { failed = true,
            msg = "copy: n1:/d/masked is a special file, not a file (through the symlink /d/masked -> /dev/null)" } },
      { name = "check mode: a src an earlier task would create is a change",
         state = { src = { missing = true, err = "copy: src out/ca.crt: gone", code = "ENOENT" } },
         args = { dest = "/e/ca.crt", src = "out/ca.crt" }, opts = { check = true },
         want = { changed = true, failed = NONE, msg = "would copy out/ca.crt, which an earlier task would create" } },
      { name = "a missing src fails for real",
         state = { src = { missing = true, err = "copy: src out/ca.crt: gone", code = "ENOENT" } },
         args = { dest = "/e/ca.crt", src = "out/ca.crt" },
         want = { failed = true, msg = "copy: src out/ca.crt: gone", result = { code = "ENOENT" } } },
      { name = "a controller src not read for the diff shows as a note",
         state = { src = { path = "/c/blob", digest = "cd", size = 100000 } },
         args = { dest = "/e/blob", src = "/c/blob" },
         opts = { diff = true },
         want = { diff = { path = "/e/blob", before = "", after = "(100000 bytes, sha256 cd: not shown)\n" } } },
      { name = "hides a diff gather found a run secret in",
         state = { src = src("pw=hunter2\n"), st = file("pw=old\n"), before = "pw=old\n", secret = true },
         args = { dest = "/e/f", content = "pw=hunter2\n" }, opts = { diff = true },
         also = function(p)
            assert.is_true(p.diff.secret)
         end, want = {} },
      { name = "hides a diff of a private key, either side",
         state = { src = src("not a key\n"), st = file(KEY), before = KEY },
         args = { dest = "/e/k", content = "not a key\n" }, opts = { diff = true },
         also = function(p)
            assert.is_true(p.diff.secret)
         end, want = {} },
      { name = "a plain diff is not secret",
         state = { src = src("a\n"), st = file("b\n"), before = "b\n" }, args = { dest = "/e/f", content = "a\n" },
         opts = { diff = true },
         also = function(p)
            assert.is_nil(p.diff.secret)
         end, want = {} },
   })
end)

describe("copy on a node", function()
   local dir, why_not, h

   local function on_node(cmd)
      local r = assert(h:exec(cmd))
      return r.stdout, r.status
   end

   setup(function()
      dir, why_not = lab.ensure(10)
      if dir then
         h = lab.host(dir, 1)
         on_node("rm -rf " .. BASE .. " && mkdir -p " .. BASE)
      end
   end)

   teardown(function()
      if h then
         on_node("rm -rf " .. BASE)
         h:close()
      end
   end)

   it("creates a file once: check writes nothing, then changed, then unchanged", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/one.conf"
      local args = { dest = dest, content = "one\n", mode = "0640" }
      local r = modtest.run("copy", args, h, { check = true })
      assert.is_true(r.changed)
      assert.is_false(r.failed)
      assert.are.equal("would create file", r.msg)
      assert.are.same({ path = dest, before = "", after = "one\n" }, r.diff)
      assert.are.equal("absent\n", on_node("test -e " .. dest .. " && echo present || echo absent"))

      r = modtest.run("copy", args, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("created file", r.msg)
      assert.are.equal(fs.sha256("one\n"), r.checksum)
      assert.are.equal("one\n|640|root\n", on_node("cat " .. dest .. "; stat -c '|%a|%U' " .. dest))

      r = modtest.run("copy", args, h)
      assert.is_false(r.changed)
      assert.is_false(r.failed)
      assert.are.equal("unchanged", r.msg)
      assert.is_nil(r.diff)
   end)

   it("replaces changed content atomically and shows the diff; check leaves it", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/two.conf"
      on_node("printf 'a\\nb\\n' > " .. dest .. " && chmod 600 " .. dest)
      local args = { dest = dest, content = "a\nc\n" }
      local r = modtest.run("copy", args, h, { check = true })
      assert.is_true(r.changed)
      assert.are.equal("would change content", r.msg)
      assert.are.same({ path = dest, before = "a\nb\n", after = "a\nc\n" }, r.diff)
      assert.are.equal("a\nb\n", on_node("cat " .. dest))
      r = modtest.run("copy", args, h)
      assert.is_true(r.changed)
      -- no mode given: the existing file keeps its mode
      assert.are.equal("a\nc\n600\n", on_node("cat " .. dest .. "; stat -c %a " .. dest))
      assert.are.equal("", on_node("ls -A " .. BASE .. " | grep etcdrun || true"))
      assert.is_false(modtest.run("copy", args, h).changed)
   end)

   it("fixes only attributes when the content matches, with an attribute diff", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/attrs.conf"
      on_node("echo same > " .. dest .. " && chmod 644 " .. dest)
      local args = { dest = dest, content = "same\n", mode = "0600", owner = "nobody", group = "nogroup" }
      local r = modtest.run("copy", args, h, { check = true })
      assert.are.equal("would change mode 0644 -> 0600, owner root -> nobody, group root -> nogroup", r.msg)
      assert.are.same({ path = dest, before = "mode 0644\nowner root\ngroup root\n",
         after = "mode 0600\nowner nobody\ngroup nogroup\n" }, r.diff)
      assert.are.equal("644 root\n", on_node("stat -c '%a %U' " .. dest))
      r = modtest.run("copy", args, h)
      assert.is_true(r.changed)
      assert.are.equal("600 nobody nogroup\n", on_node("stat -c '%a %U %G' " .. dest))
      assert.is_false(modtest.run("copy", args, h).changed)
      -- numeric ids compare with the ids
      assert.is_false(modtest.run("copy", { dest = dest, content = "same\n", owner = "65534" }, h).changed)
   end)

   it("copies a controller file relative to the playbook's directory", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/hello.txt"
      local opts = { playbook_dir = FIXTURES }
      local r = modtest.run("copy", { src = "hello.txt", dest = dest }, h, opts)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("hello from the controller\n", r.diff.after)
      assert.are.equal(fs.sha256_file(FIXTURES .. "/hello.txt"), on_node("sha256sum " .. dest):match("^%x+"))
      assert.is_false(modtest.run("copy", { src = "hello.txt", dest = dest }, h, opts).changed)
      r = modtest.run("copy", { src = "no-such.txt", dest = dest }, h, opts)
      assert.is_true(r.failed)
      assert.matches("copy: src no%-such%.txt: .*No such file or directory %(controller:.*/no%-such%.txt%)", r.msg)
   end)

   it("shows a note instead of binary or large content", function()
      if not dir then pending(why_not) return end
      local tmp = helper.tmpdir()
      helper.run("head -c 100000 /dev/urandom > " .. helper.q(tmp .. "/blob"))
      local dest = BASE .. "/blob"
      local r = modtest.run("copy", { src = tmp .. "/blob", dest = dest }, h)
      assert.is_true(r.changed)
      assert.matches("^%(100000 bytes, sha256 %x+: not shown%)\n$", r.diff.after)
      local big = string.rep("text line\n", 8000)
      r = modtest.run("copy", { content = big, dest = dest }, h, { check = true })
      -- the node's file is over 64 KiB: not even read back
      assert.matches("^%(100000 bytes, sha256 %x+: not shown%)\n$", r.diff.before)
      assert.are.equal("(large file, 80000 bytes: not shown)\n", r.diff.after)
      r = modtest.run("copy", { content = "\0\1\2", dest = dest }, h, { check = true })
      assert.are.equal("(binary, 3 bytes: not shown)\n", r.diff.after)
   end)

   it("marks a private key's diff secret", function()
      if not dir then pending(why_not) return end
      local key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
      local r = modtest.run("copy", { content = key, dest = BASE .. "/server.key", mode = "0600" }, h)
      assert.is_true(r.changed)
      assert.is_true(r.diff.secret)
      r = modtest.run("copy", { content = "not a key\n", dest = BASE .. "/server.key" }, h, { check = true })
      assert.is_true(r.diff.secret, "the old content is a key too")
   end)

   it("leaves an existing file alone with force=false", function()
      if not dir then pending(why_not) return end
      local dest = BASE .. "/keep.conf"
      on_node("echo mine > " .. dest)
      local r = modtest.run("copy", { dest = dest, content = "theirs\n", force = false }, h)
      assert.is_false(r.changed)
      assert.matches("force=false", r.msg)
      assert.are.equal("mine\n", on_node("cat " .. dest))
   end)

   it("fails with the host and path when the destination cannot be written", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("copy", { dest = BASE .. "/no/such/dir/f", content = "x" }, h)
      assert.is_true(r.failed)
      assert.are.equal("ENOENT", r.code)
      assert.matches("etcd1:" .. BASE:gsub("%-", "%%-") .. "/no/such/dir", r.msg)
      r = modtest.run("copy", { dest = BASE, content = "x" }, h)
      assert.is_true(r.failed)
      assert.are.equal("copy: etcd1:" .. BASE .. " is a directory, not a file", r.msg)
      r = modtest.run("copy", { dest = BASE .. "/o.conf", content = "x", owner = "no-such-user" }, h)
      assert.is_true(r.failed)
      assert.matches("no%-such%-user", r.msg)
      assert.matches("etcd1:" .. BASE:gsub("%-", "%%-") .. "/o%.conf", r.msg)
   end)
end)

-- A symlink at dest (the rule of fileattrs.dest_plan), the same on a node
-- and on the controller: in d, link -> real/f (relative) holding "old\n".
local function symlink_cases(get)
   local function sh(h, cmd)
      local r = assert(h:exec(cmd))
      assert(r.status == 0, r.stderr)
      return r.stdout
   end
   -- kind, mode and content of d/p (a link shows its target instead of a mode)
   local function look(h, d, p)
      return sh(h, ("cd %s && if [ -L %s ]; then echo link $(readlink %s); else stat -c '%%F %%a' %s; fi; cat %s")
         :format(d, p, p, p, p))
   end
   local function layout(h, d)
      sh(h, ("rm -rf %s && mkdir -p %s/real && printf 'old\\n' > %s/real/f && chmod 0640 %s/real/f "
         .. "&& ln -s real/f %s/link && ln -s nowhere %s/dangling"):format(d, d, d, d, d, d))
   end

   it("follows it by default: the diff shows the target's content, the target is written, the link stays", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local args = { dest = d .. "/link", content = "new\n" }
      local r = modtest.run("copy", args, h, { check = true })
      assert.is_true(r.changed)
      assert.are.equal(("would change content (through the symlink %s/link -> %s/real/f)"):format(d, d), r.msg)
      assert.are.same({ path = d .. "/real/f", before = "old\n", after = "new\n" }, r.diff)
      assert.are.equal("link real/f\nold\n", look(h, d, "link"))
      r = modtest.run("copy", args, h)
      assert.is_true(r.changed, r.msg)
      assert.is_false(r.failed)
      assert.are.equal("link real/f\nnew\n", look(h, d, "link"))
      assert.are.equal("regular file 640\nnew\n", look(h, d, "real/f"))
      assert.are.equal("", sh(h, "ls -A " .. d .. " " .. d .. "/real | grep -F .etcdrun- || true"))
      r = modtest.run("copy", args, h)
      assert.is_false(r.changed)
      assert.matches("^unchanged %(through the symlink", r.msg)
      -- attributes alone are set on the target too
      r = modtest.run("copy", { dest = d .. "/link", content = "new\n", mode = "0600" }, h)
      assert.is_true(r.changed)
      assert.are.same({ path = d .. "/real/f", before = "mode 0640\n", after = "mode 0600\n" }, r.diff)
      assert.are.equal("link real/f\nnew\n", look(h, d, "link"))
      assert.are.equal("regular file 600\nnew\n", look(h, d, "real/f"))
   end)

   it("with follow=false replaces the link by a file, and the diff says so", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local args = { dest = d .. "/link", content = "new\n", follow = false }
      local r = modtest.run("copy", args, h, { check = true })
      assert.is_true(r.changed)
      assert.are.equal("would replace the symlink (-> real/f) with a file", r.msg)
      assert.are.same({ path = d .. "/link", before = "symlink -> real/f\n", after = "new\n" }, r.diff)
      r = modtest.run("copy", args, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("replaced the symlink (-> real/f) with a file", r.msg)
      assert.are.equal("regular file 644\nnew\n", look(h, d, "link"))
      assert.are.equal("regular file 640\nold\n", look(h, d, "real/f"))
      assert.is_false(modtest.run("copy", args, h).changed)
      -- force=false leaves a link alone: it exists
      sh(h, ("ln -sfn real/f %s/link"):format(d))
      r = modtest.run("copy", { dest = d .. "/link", content = "x\n", follow = false, force = false }, h)
      assert.is_false(r.changed)
      assert.are.equal("exists (a symlink to real/f), force=false: left as it is", r.msg)
      assert.are.equal("link real/f\nold\n", look(h, d, "link"))
   end)

   it("refuses a dangling link when following; follow=false replaces it", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local r = modtest.run("copy", { dest = d .. "/dangling", content = "new\n" }, h)
      assert.is_true(r.failed)
      assert.are.equal(("copy: %s:%s/dangling is a symlink to nowhere, which does not exist (or loops): "
         .. "create the target first, or give follow=false to replace the link with a file"):format(h.name, d), r.msg)
      assert.are.equal("link nowhere\n", sh(h, ("cd %s && echo link $(readlink dangling)"):format(d)))
      r = modtest.run("copy", { dest = d .. "/dangling", content = "new\n", follow = false }, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("regular file 644\nnew\n", look(h, d, "dangling"))
   end)

   it("refuses a link to a directory or a device (a masked unit's link to /dev/null)", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      sh(h, ("ln -s /dev/null %s/masked && ln -s real %s/dirlink"):format(d, d))
      local r = modtest.run("copy", { dest = d .. "/masked", content = "x\n" }, h)
      assert.is_true(r.failed)
      assert.are.equal(("copy: %s:%s/masked is a special file, not a file (through the symlink %s/masked -> /dev/null)")
         :format(h.name, d, d), r.msg)
      r = modtest.run("copy", { dest = d .. "/dirlink", content = "x\n" }, h)
      assert.is_true(r.failed)
      assert.matches("dirlink is a directory, not a file %(through the symlink", r.msg)
      assert.are.equal("link /dev/null\n", sh(h, ("cd %s && echo link $(readlink masked)"):format(d)))
   end)

   it("copies a controller file (src) through the link too", function()
      local h, d = get()
      if not h then return end
      layout(h, d)
      local src = helper.tmpdir() .. "/src.txt"
      helper.write(src, "from src\n")
      local r = modtest.run("copy", { dest = d .. "/link", src = src }, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("link real/f\nfrom src\n", look(h, d, "link"))
   end)
end

describe("copy through a symlink on the controller", function()
   symlink_cases(function()
      return localhost.new(), helper.tmpdir() .. "/links"
   end)
end)

describe("copy through a symlink on a node", function()
   local dir, why_not, h
   setup(function()
      dir, why_not = lab.ensure(10)
      if dir then
         h = lab.host(dir, 1)
      end
   end)
   teardown(function()
      if h then
         h:exec("rm -rf /tmp/etcdrun-modtest-copy-links")
         h:close()
      end
   end)
   symlink_cases(function()
      if not dir then
         pending(why_not)
         return nil
      end
      return h, "/tmp/etcdrun-modtest-copy-links"
   end)
end)

describe("copy on the controller", function()
   it("creates, then leaves alone, a file", function()
      local tmp = helper.tmpdir()
      local c = localhost.new()
      local args = { dest = tmp .. "/c.conf", content = "local\n", mode = "0600" }
      assert.is_true(modtest.run("copy", args, c, { check = true }).changed)
      assert.is_nil(helper.read(tmp .. "/c.conf"))
      local r = modtest.run("copy", args, c)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("local\n", helper.read(tmp .. "/c.conf"))
      assert.are.equal(384, fs.stat(tmp .. "/c.conf").mode)
      assert.is_false(modtest.run("copy", args, c).changed)
   end)

   it("in check mode reports a source an earlier task would create; fails on it for real", function()
      local tmp = helper.tmpdir()
      local c = localhost.new()
      local args = { dest = tmp .. "/out", src = tmp .. "/not-yet.crt" }
      local r = modtest.run("copy", args, c, { check = true })
      assert.is_true(r.changed)
      assert.is_falsy(r.failed)
      assert.matches("would copy .*not%-yet%.crt, which an earlier task would create", r.msg)
      r = modtest.run("copy", args, c)
      assert.is_true(r.failed)
      assert.matches("not%-yet%.crt", r.msg)
      assert.is_nil(helper.read(tmp .. "/out"))
   end)
end)
