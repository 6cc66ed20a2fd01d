-- The lineinfile module: arguments, the editing rules and every decision
-- table-driven through plan (state in, plan out, no node), and on a lab node
-- (etcd1) the seed's /etc/profile lines: changed, then unchanged, --check
-- writing nothing, the diff, failures naming host:path.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")

local BASE = "/root/etcdrun-modtest-lineinfile"

describe("lineinfile arguments", function()
   local cases = {
      { { line = "x" }, "argument 'path' is required" },
      { { path = "/x" }, "argument 'line' is required when state is 'present'" },
      { { path = "/x", line = "a", regexp = "a", search_string = "a" }, "mutually exclusive" },
      { { path = "/x", line = "a", insertafter = "a", insertbefore = "b" }, "mutually exclusive" },
      { { path = "/x", line = "a", state = "gone" }, "argument 'state' must be one of present, absent" },
      { { path = "/x", line = "a", create = "yes" }, "argument 'create' must be true or false" },
      { { path = "/x", line = "a", backrefs = true }, "unknown argument 'backrefs'" },
   }
   for _, c in ipairs(cases) do
      it("refuses " .. c[2], function()
         local ok, err = modtest.validate("lineinfile", c[1], "site.lua:5")
         assert.is_nil(ok)
         assert.matches("^site%.lua:5: module 'lineinfile': ", err)
         assert.matches(c[2], err, 1, true)
      end)
   end
end)

describe("lineinfile plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local function file(content, mode)
      return { st = st("file", mode or "0644", "root", { size = #content }), content = content }
   end
   -- the editing rules: { before, args, after, message }; nil after: unchanged
   local edits = {
      { "a\nb\n", { line = "c" }, "a\nb\nc\n", "line added" },
      { "a\nb\n", { line = "b" }, nil, "unchanged" },
      { "a\nb", { line = "c" }, "a\nb\nc\n", "line added" },
      { "a\nb", { line = "b" }, nil, "unchanged" },
      { "", { line = "x" }, "x\n", "line added" },
      { "port=1\nhost=a\nport=2\n", { regexp = "^port=", line = "port=3" },
         "port=1\nhost=a\nport=3\n", "line replaced" },
      { "port=3\n", { regexp = "^port=", line = "port=3" }, nil, "unchanged" },
      { "a\n", { regexp = "^port=", line = "port=3" }, "a\nport=3\n", "line added" },
      { "x=$PATH\n", { search_string = "$PATH", line = "y" }, "y\n", "line replaced" },
      { "a\nb\nc\n", { line = "n", insertafter = "^a" }, "a\nn\nb\nc\n", "line added" },
      { "a\nb\na\n", { line = "n", insertafter = "^a" }, "a\nb\na\nn\n", "line added" },
      { "a\nb\na\n", { line = "n", insertafter = "^a", firstmatch = true }, "a\nn\nb\na\n", "line added" },
      { "a\nb\nc\n", { line = "n", insertbefore = "^b" }, "a\nn\nb\nc\n", "line added" },
      { "a\nb\n", { line = "n", insertbefore = "BOF" }, "n\na\nb\n", "line added" },
      { "a\nb\n", { line = "n", insertafter = "^zzz" }, "a\nb\nn\n", "line added" },
      { "a\nb\na\n", { line = "a", state = "absent" }, "b\n", "2 lines removed" },
      { "k=1\nj=2\nk=3\n", { regexp = "^k=", state = "absent" }, "j=2\n", "2 lines removed" },
      { "j=2\n", { regexp = "^k=", state = "absent" }, nil, "unchanged" },
   }
   local cases = {}
   for i, e in ipairs(edits) do
      local args = e[2]
      args.path = "/e/f"
      cases[i] = { name = ("edit %d: %s"):format(i, e[4]), state = file(e[1]), args = args,
         want = { changed = e[3] ~= nil, failed = NONE, msg = e[4], content = e[3] or NONE,
            diff = e[3] and { path = "/e/f", before = e[1], after = e[3] } or NONE } }
   end
   local link = { target = "real/f", real = "/d/real/f" }
   for _, c in ipairs({
      { name = "state=absent on a missing file: nothing to do",
         state = {}, args = { path = "/e/f", line = "x", state = "absent" },
         want = { changed = false, msg = "file does not exist" } },
      { name = "a missing file without create fails",
         state = {}, args = { path = "/e/f", line = "x" }, opts = { host = "n1" },
         want = { failed = true, msg = "lineinfile: n1:/e/f does not exist (create=true creates it)" } },
      { name = "create=true makes the file, mode 0644 in apply",
         state = {}, args = { path = "/e/f", line = "x", create = true },
         want = { changed = true, created = true, msg = "file created, line added", content = "x\n",
            diff = { path = "/e/f", before = "", after = "x\n" } } },
      { name = "a line already there, but the mode differs: attributes only",
         state = file("x\n", "0600"), args = { path = "/e/f", line = "x", mode = "0644" },
         want = { changed = true, msg = "mode 0600 -> 0644", content = false,
            diff = { path = "/e/f", before = "mode 0600\n", after = "mode 0644\n" } } },
      { name = "an edit and an owner at once",
         state = file("a\n"), args = { path = "/e/f", line = "b", owner = "nobody" },
         want = { msg = "line added, owner root -> nobody" } },
      { name = "state=absent needs something to match",
         state = file("a\n"), args = { path = "/e/f", state = "absent" },
         want = { failed = true, msg = "lineinfile: state=absent needs regexp, search_string or line" } },
      { name = "a directory is not a file to edit",
         state = { st = st("dir", "0755") }, args = { path = "/e", line = "x" }, opts = { host = "n1" },
         want = { failed = true, msg = "lineinfile: n1:/e is not a regular file" } },
      { name = "follows a symlink: edits the target, says so",
         state = { link = link, st = st("file", "0644"), content = "a\n" }, args = { path = "/d/link", line = "b" },
         want = { changed = true, path = "/d/real/f",
            msg = "line added (through the symlink /d/link -> /d/real/f)",
            diff = { path = "/d/real/f", before = "a\n", after = "a\nb\n" } } },
      { name = "follow=false: a link has no lines",
         state = { link = link }, args = { path = "/d/link", line = "b", follow = false }, opts = { host = "n1" },
         want = { failed = true, msg = "lineinfile: n1:/d/link is a symlink to real/f and follow=false: a link has "
            .. "no lines to edit (follow=true edits the file it points to)" } },
      { name = "a dangling link is refused",
         state = { link = { target = "nowhere" } }, args = { path = "/d/x", line = "b", create = true },
         opts = { host = "n1" },
         want = { failed = true, msg = "lineinfile: n1:/d/x is a symlink to nowhere, which does not exist (or "
            .. "loops): create the target first, or give follow=false to replace the link with a file" } },
      { name = "a malformed pattern fails, naming the argument",
         state = file("a\n"), args = { path = "/e/f", line = "x", regexp = "^(a" },
         want = { failed = true, msg = "lineinfile: regexp is not a valid Lua pattern: unfinished capture" } },
      { name = "a malformed insertafter pattern fails too",
         state = file("a\n"), args = { path = "/e/f", line = "x", insertafter = "a%" },
         also = function(p)
            assert.matches("insertafter is not a valid Lua pattern", p.msg)
         end, want = { failed = true } },
      { name = "hides the diff when gather found a secret",
         state = { st = st("file", "0600"), content = "user=a\n", secret = true },
         args = { path = "/e/f", line = "password=hunter2" },
         also = function(p)
            assert.is_true(p.diff.secret)
         end, want = { changed = true } },
   }) do
      cases[#cases + 1] = c
   end
   plancases.run(it, "lineinfile", cases)
end)

describe("lineinfile on the controller", function()
   it("edits a file once, then leaves it", function()
      local c = localhost.new()
      local tmp = helper.tmpdir()
      helper.write(tmp .. "/f", "port=1\n")
      local args = { path = tmp .. "/f", regexp = "^port=", line = "port=3" }
      local r = modtest.run("lineinfile", args, c)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("port=3\n", helper.read(tmp .. "/f"))
      assert.is_false(modtest.run("lineinfile", args, c).changed)
   end)
end)

describe("lineinfile on a node", function()
   local dir, why_not, h

   local function on_node(cmd)
      return assert(h:exec(cmd)).stdout
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

   it("adds the seed's profile lines once; check writes nothing", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/profile"
      on_node("cp /etc/profile " .. p .. " && chmod 640 " .. p)
      local orig = on_node("cat " .. p)
      local lines = { 'export PATH="$PATH:/opt/etcd/bin"', "export ETCDCTL_API=3" }
      for _, line in ipairs(lines) do
         local r = modtest.run("lineinfile", { path = p, line = line }, h, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("line added", r.msg)
         assert.are.equal(r.diff.before .. line .. "\n", r.diff.after)
      end
      assert.are.equal(orig, on_node("cat " .. p))
      for _, line in ipairs(lines) do
         assert.is_true(modtest.run("lineinfile", { path = p, line = line }, h).changed)
      end
      assert.are.equal(orig .. table.concat(lines, "\n") .. "\n", on_node("cat " .. p))
      assert.are.equal("640\n", on_node("stat -c %a " .. p))
      for _, line in ipairs(lines) do
         local r = modtest.run("lineinfile", { path = p, line = line }, h)
         assert.is_false(r.changed)
         assert.is_false(r.failed)
      end
      -- the login shell of the node sees them
      assert.matches("/opt/etcd/bin", on_node(". " .. p .. " && echo $PATH"))
   end)

   it("creates a missing file only with create=true, and fixes the mode alone", function()
      if not dir then pending(why_not) return end
      local p = BASE .. "/new.conf"
      local r = modtest.run("lineinfile", { path = p, line = "x=1" }, h)
      assert.is_true(r.failed)
      assert.are.equal("lineinfile: etcd1:" .. p .. " does not exist (create=true creates it)", r.msg)
      r = modtest.run("lineinfile", { path = p, line = "x=1", create = true, mode = "0600" }, h)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("file created, line added", r.msg)
      assert.are.equal("x=1\n600\n", on_node("cat " .. p .. "; stat -c %a " .. p))
      r = modtest.run("lineinfile", { path = p, line = "x=1", mode = "0644" }, h, { check = true })
      assert.are.equal("mode 0600 -> 0644", r.msg)
      assert.are.same({ path = p, before = "mode 0600\n", after = "mode 0644\n" }, r.diff)
      assert.is_true(modtest.run("lineinfile", { path = p, line = "x=1", mode = "0644" }, h).changed)
      assert.are.equal("644\n", on_node("stat -c %a " .. p))
      assert.is_false(modtest.run("lineinfile", { path = p, line = "x=1", mode = "0644" }, h).changed)
      r = modtest.run("lineinfile", { path = BASE .. "/missing", line = "x", state = "absent" }, h)
      assert.is_false(r.changed)
      assert.is_false(r.failed)
   end)

   it("fails naming host and path on a directory", function()
      if not dir then pending(why_not) return end
      local r = modtest.run("lineinfile", { path = BASE, line = "x" }, h)
      assert.is_true(r.failed)
      assert.are.equal("lineinfile: etcd1:" .. BASE .. " is not a regular file", r.msg)
   end)
end)

describe("lineinfile through a symlink on the controller", function()
   -- the rule of fileattrs.dest_plan: the file the link points to is edited
   -- (the diff shows its lines) and the link stays; follow=false refuses
   local c = localhost.new()
   local fs = require("etcdrun.core.fs")

   local function layout()
      local d = helper.tmpdir()
      assert(fs.mkdir(d .. "/real"))
      helper.write(d .. "/real/profile", "a=1\n")
      assert(fs.chmod(d .. "/real/profile", 416))
      assert(fs.symlink("../real/profile", d .. "/real/hop"))
      assert(fs.symlink("real/hop", d .. "/link")) -- a chain of two links
      return d
   end

   local function is_link(p, target)
      local st = fs.stat(p, { follow = false })
      assert.are.same({ "link", target }, { st.type, st.target })
   end

   it("edits the file a chain of links resolves to, keeping the links; the diff shows its lines", function()
      local d = layout()
      local args = { path = d .. "/link", line = "b=2" }
      local r = modtest.run("lineinfile", args, c, { check = true })
      assert.is_true(r.changed)
      assert.are.equal(("line added (through the symlink %s/link -> %s/real/profile)"):format(d, d), r.msg)
      assert.are.same({ path = d .. "/real/profile", before = "a=1\n", after = "a=1\nb=2\n" }, r.diff)
      assert.are.equal("a=1\n", helper.read(d .. "/real/profile"))
      r = modtest.run("lineinfile", args, c)
      assert.is_true(r.changed, r.msg)
      is_link(d .. "/link", "real/hop")
      is_link(d .. "/real/hop", "../real/profile")
      assert.are.equal("a=1\nb=2\n", helper.read(d .. "/real/profile"))
      assert.are.equal(416, fs.stat(d .. "/real/profile").mode)
      assert.is_false(modtest.run("lineinfile", args, c).changed)
      -- a mode alone is set on the target
      r = modtest.run("lineinfile", { path = d .. "/link", line = "b=2", mode = "0600" }, c)
      assert.is_true(r.changed, r.msg)
      assert.are.equal(384, fs.stat(d .. "/real/profile").mode)
      is_link(d .. "/link", "real/hop")
   end)

   it("with follow=false refuses: a link has no lines", function()
      local d = layout()
      local r = modtest.run("lineinfile", { path = d .. "/link", line = "b=2", follow = false }, c)
      assert.is_true(r.failed)
      assert.are.equal(("lineinfile: controller:%s/link is a symlink to real/hop and follow=false: a link has "
         .. "no lines to edit (follow=true edits the file it points to)"):format(d), r.msg)
      is_link(d .. "/link", "real/hop")
      assert.are.equal("a=1\n", helper.read(d .. "/real/profile"))
   end)

   it("refuses a dangling link, even with create=true", function()
      local d = helper.tmpdir()
      assert(fs.symlink("nowhere", d .. "/dangling"))
      local r = modtest.run("lineinfile", { path = d .. "/dangling", line = "x", create = true }, c)
      assert.is_true(r.failed)
      assert.matches("dangling is a symlink to nowhere, which does not exist", r.msg)
      is_link(d .. "/dangling", "nowhere")
      assert.is_nil(helper.read(d .. "/nowhere"))
   end)
end)
