-- The lineinfile module: arguments, the editing rules table-driven on the
-- controller (file content in, file content out), and on a lab node
-- (etcd1) the seed's /etc/profile lines: changed, then unchanged, --check
-- writing nothing, the diff, failures naming host:path.
local lab = require("support.lab")
local helper = require("support.helper")
local modtest = require("support.modtest")
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

describe("lineinfile editing", function()
   local c = localhost.new()
   -- { before, args, after, message }; nil after: unchanged
   local cases = {
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
   for i, case in ipairs(cases) do
      local before, args, after, msg = case[1], case[2], case[3], case[4]
      it(("case %d: %s"):format(i, msg), function()
         local tmp = helper.tmpdir()
         helper.write(tmp .. "/f", before)
         args.path = tmp .. "/f"
         local r = modtest.run("lineinfile", args, c)
         assert.is_false(r.failed, r.msg)
         assert.are.equal(msg, r.msg)
         assert.are.equal(after ~= nil, r.changed)
         assert.are.equal(after or before, helper.read(tmp .. "/f"))
         if after then
            assert.are.same({ path = args.path, before = before, after = after }, r.diff)
            assert.is_false(modtest.run("lineinfile", args, c).changed)
         end
      end)
   end

   it("refuses a malformed Lua pattern before touching the file", function()
      local tmp = helper.tmpdir()
      helper.write(tmp .. "/f", "a\n")
      local r = modtest.run("lineinfile", { path = tmp .. "/f", line = "x", regexp = "^(a" }, c)
      assert.is_true(r.failed)
      assert.matches("lineinfile: regexp is not a valid Lua pattern: unfinished capture", r.msg)
      r = modtest.run("lineinfile", { path = tmp .. "/f", line = "x", insertafter = "a%" }, c)
      assert.matches("insertafter is not a valid Lua pattern", r.msg)
      assert.are.equal("a\n", helper.read(tmp .. "/f"))
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
