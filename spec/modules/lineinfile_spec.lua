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
