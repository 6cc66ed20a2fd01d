-- etcdrun.fileattrs: the one symlink rule of the content modules (copy,
-- template, lineinfile) as a pure decision (dest_plan, table-driven), and
-- the shell that gathers what it decides on (dest_cmd), run on the
-- controller against real links: plain, relative, chained, to a directory,
-- dangling and looping; and the one place for attributes: the stat line,
-- wanted vs current, the fixing command, the failure mapping.
local helper = require("support.helper")
local fa = require("etcdrun.fileattrs")
local proc = require("etcdrun.core.proc")

describe("fileattrs.dest_plan", function()
   local link = { target = "../real/f", real = "/srv/real/f" }
   local dangling = { target = "gone" }
   local cases = {
      { "a plain path is itself, following or not", nil, true, { path = "/etc/x" } },
      { "a plain path, follow=false", nil, false, { path = "/etc/x" } },
      { "a link is followed by default (follow=nil)", link, nil, { path = "/srv/real/f", link = link } },
      { "a link is followed with follow=true", link, true, { path = "/srv/real/f", link = link } },
      { "follow=false replaces the link, whose diff names its target", link, false,
         { path = "/etc/x", link = link, replace = true, before = "symlink -> ../real/f\n" } },
      { "follow=false replaces a dangling link too", dangling, false,
         { path = "/etc/x", link = dangling, replace = true, before = "symlink -> gone\n" } },
   }
   for _, c in ipairs(cases) do
      it(c[1], function()
         assert.are.same(c[4], (fa.dest_plan("/etc/x", c[2], c[3])))
      end)
   end

   it("refuses a dangling link when following, saying what to do", function()
      local want = "is a symlink to gone, which does not exist (or loops): create the target first, "
         .. "or give follow=false to replace the link with a file"
      assert.are.same({ nil, want }, { fa.dest_plan("/etc/x", dangling, true) })
      assert.are.same({ nil, want }, { fa.dest_plan("/etc/x", dangling, nil) })
   end)

   it("says through which link a followed path is written, and nothing otherwise", function()
      assert.are.equal(" (through the symlink /etc/x -> /srv/real/f)", fa.via("/etc/x", fa.dest_plan("/etc/x", link)))
      assert.are.equal("", fa.via("/etc/x", fa.dest_plan("/etc/x", link, false)))
      assert.are.equal("", fa.via("/etc/x", fa.dest_plan("/etc/x", nil)))
   end)
end)

describe("fileattrs.dest_cmd on the controller", function()
   local d

   -- what dest_cmd finds at name (body prints the path it was given and
   -- its content), split as the modules split it
   local function probe(name, follow)
      local body = "echo \"p=$p\"; cat -- \"$p\" 2>/dev/null || echo none"
      local r = assert(proc.run(fa.dest_cmd(d .. "/" .. name, follow, body)))
      assert.are.equal(0, r.status, r.stderr)
      return fa.split_dest(r.stdout)
   end

   setup(function()
      d = helper.tmpdir()
      local ok = os.execute(("cd %s && mkdir real && echo content > real/f && ln -s real/f rel "
         .. "&& ln -s %s/real/f abs && ln -s rel chain && ln -s real dirlink && ln -s nowhere dangling "
         .. "&& ln -s loop loop && echo plain > plain")
         :format(helper.q(d), d))
      assert(ok)
   end)

   local cases = {
      -- name, follow, link found (target, real or false), body output
      { "plain", true, nil, "p=%s/plain\nplain\n" },
      { "plain", false, nil, "p=%s/plain\nplain\n" },
      { "absent", true, nil, "p=%s/absent\nnone\n" },
      { "rel", true, { "real/f", "%s/real/f" }, "p=%s/real/f\ncontent\n" },
      { "abs", nil, { "%s/real/f", "%s/real/f" }, "p=%s/real/f\ncontent\n" },
      { "chain", true, { "rel", "%s/real/f" }, "p=%s/real/f\ncontent\n" },
      { "dirlink", true, { "real", "%s/real" }, "p=%s/real\nnone\n" },
      { "rel", false, { "real/f", "%s/real/f" }, "" },
      { "dangling", true, { "nowhere", false }, "" },
      { "dangling", false, { "nowhere", false }, "" },
      { "loop", true, { "loop", false }, "" },
   }
   for _, c in ipairs(cases) do
      it(("%s, follow=%s"):format(c[1], tostring(c[2])), function()
         local link, out = probe(c[1], c[2])
         if c[3] then
            local real = c[3][2] and c[3][2]:format(d) or nil
            assert.are.same({ target = c[3][1]:format(d), real = real }, link)
         else
            assert.is_nil(link)
         end
         assert.are.equal(c[4]:format(d), out)
      end)
   end
end)

describe("fileattrs: the one place for attributes", function()
   it("parses a stat line (the fields of host:stat and fs.stat)", function()
      assert.are.same({ type = "file", mode = 420, uid = 0, gid = 5, user = "root", group = "tty", size = 12,
         mtime = 1700000000 }, fa.parse_stat("regular file|644|0|5|root|tty|12|1700000000"))
      assert.are.same({ type = "char", mode = 438, uid = 1234, gid = 1234, size = 0, mtime = 1 },
         fa.parse_stat("character special file|666|1234|1234|UNKNOWN|UNKNOWN|0|1"))
      assert.are.equal("unknown", fa.parse_stat("weird|0|0|0|a|b|0|0").type)
      assert.is_nil(fa.parse_stat("stat: cannot statx"))
      assert.are.equal("special file", fa.kind("char"))
      assert.are.equal("directory", fa.kind("dir"))
   end)

   -- { stat, wanted, changes described }
   local cases = {
      { { type = "file", mode = 420, uid = 0, gid = 0, user = "root", group = "root" }, { mode = 384 },
         "mode 0644 -> 0600" },
      { { type = "file", mode = 420, uid = 0, gid = 0, user = "root", group = "root" },
         { mode = 420, owner = "root", group = "0" }, "" },
      { { type = "file", mode = 420, uid = 65534, gid = 0, user = "nobody", group = "root" },
         { owner = "0", group = "etcd" }, "owner nobody -> 0, group root -> etcd" },
      { { type = "file", mode = 1092, uid = 1234, gid = 1234 }, { mode = 1092, owner = "1234", group = "x" },
         "group 1234 -> x" },
      { { type = "link", mode = 511, uid = 0, gid = 0, user = "root", group = "root" }, { mode = 384 }, "" },
      { nil, { mode = 384 }, "" },
   }
   for i, c in ipairs(cases) do
      it(("compares wanted with current, case %d"):format(i), function()
         assert.are.equal(c[3], fa.describe(fa.changes(c[1], c[2])))
      end)
   end

   it("builds the fixing command: chown before chmod, -h for a link, nothing to do is nil", function()
      assert.are.equal("chown etcd:etcd -- /x && chmod 600 -- /x", fa.fix_cmd("/x", { mode = 384, owner = "etcd",
         group = "etcd" }))
      assert.are.equal("chown -h :wheel -- /l", fa.fix_cmd("/l", { mode = 384, group = "wheel" }, true))
      assert.is_nil(fa.fix_cmd("/x", {}))
   end)

   it("maps a failed command to a message and a code", function()
      local function fail(stderr, bare)
         return { select(2, fa.failure("host.stat", "n1", "/x", { stderr = stderr, stdout = "", status = 1 }, bare)) }
      end
      assert.are.same({ "host.stat: No such file or directory (n1:/x)", "ENOENT" },
         fail("stat: cannot statx '/x': No such file or directory\n", true))
      assert.are.same({ "host.stat: chown: invalid user: 'x' (n1:/x)", "EREMOTE" }, fail("chown: invalid user: 'x'"))
      assert.are.same({ "host.stat: cannot open '/x': Permission denied (n1:/x)", "EACCES" },
         fail("warning\ncat: cannot open '/x': Permission denied", true))
      assert.are.equal("ENOTDIR", fail("mkdir: cannot create directory '/x/y': Not a directory")[2])
   end)
end)
