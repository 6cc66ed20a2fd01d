-- etcdrun.fileattrs: the one symlink rule of the content modules (copy,
-- template, lineinfile) as a pure decision (dest_plan, table-driven), and
-- the shell that gathers what it decides on (dest_cmd), run on the
-- controller against real links: plain, relative, chained, to a directory,
-- dangling and looping.
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
