-- The Debian package: `make deb` builds etcdrun_<version>_<arch>.deb with
-- dpkg-buildpackage (lintian: no error, no warning not overridden); it is
-- unpacked into an empty directory tree (dpkg -x) and run from there only:
-- from a directory outside the source tree, with an empty environment, and
-- checked to find its Lua runtime in the unpacked /usr/share/etcdrun.
local helper = require("support.helper")
local q = helper.q

local root, deb, ws, version, why_not

local function missing(cmd)
   local _, _, code = helper.run(cmd .. " >/dev/null 2>&1")
   return code ~= 0
end

-- The unpacked etcdrun, run in ws with nothing from the caller's environment.
local function installed(args)
   return helper.run(("cd %s && env -i PATH=/usr/bin:/bin HOME=%s %s/usr/bin/etcdrun %s"):format(q(ws), q(ws),
      q(root), args))
end

local function no_package()
   if why_not then
      pending(why_not)
      return true
   end
   return false
end

describe("the Debian package", function()
   setup(function()
      for _, tool in ipairs({ "dpkg-buildpackage", "dh", "lintian" }) do
         if missing("command -v " .. tool) then
            why_not = ("%s is missing (apt-get install dpkg-dev debhelper lintian)"):format(tool)
            return
         end
      end
      version = helper.read("debian/changelog"):match("^etcdrun %(([^)]+)%)")
      local arch = helper.run("dpkg-architecture -qDEB_HOST_ARCH"):gsub("%s+$", "")
      deb = ("etcdrun_%s_%s.deb"):format(version, arch)
      ws = helper.tmpdir()
      root = ws .. "/root"
   end)

   it("is built by make deb, and lintian finds no error and no warning", function()
      if no_package() then return end
      os.remove(deb)
      local out, err, code = helper.run("make deb 2>&1")
      assert(code == 0, "make deb failed:\n" .. out .. err)
      assert.is_not_nil(helper.read(deb), deb .. " not made")
      assert.is_nil(out:match("\n[EW]: etcdrun[^\n]*"))
      assert.matches("\ndeb: " .. deb:gsub("%p", "%%%0") .. "\n", out)
   end)

   it("depends on the libraries it links (shlibs) and on lua-cjson", function()
      if no_package() then return end
      local depends = helper.run("dpkg-deb -f " .. q(deb) .. " Depends")
      for _, p in ipairs({ "lua%-cjson", "liblua5%.4%-0 %(>= ", "libssh%-4 %(>= ", "libssl3 %(>= ", "libcurl4 %(>= ",
         "libarchive13 %(>= ", "libedit2 %(>= ", "libc6 %(>= " }) do
         assert.matches(p, depends)
      end
   end)

   it("installs with the README's apt install ./etcdrun_*.deb (simulated: this machine stays as it is)", function()
      if no_package() then return end
      local out, err, code = helper.run("apt-get -s install ./" .. q(deb) .. " 2>&1")
      assert.are.equal(0, code, out .. err)
      if not out:find("etcdrun is already the newest version (" .. version .. ")", 1, true) then
         assert.matches("\nInst etcdrun %(" .. version:gsub("%p", "%%%0") .. " ", out)
         assert.matches("\nConf etcdrun ", out)
      end
   end)

   it("puts the binary, the runtime, man pages and completions in their places", function()
      if no_package() then return end
      local _, err, code = helper.run(("dpkg -x %s %s"):format(q(deb), q(root)))
      assert.are.equal(0, code, err)
      for _, f in ipairs({ "/usr/bin/etcdrun", "/usr/share/etcdrun/lua/etcdrun/cli.lua",
         "/usr/share/etcdrun/modules/file.lua", "/usr/share/etcdrun/playbooks/tls-cluster.lua",
         "/usr/share/etcdrun/playbooks/templates/etcd.service", "/usr/share/man/man1/etcdrun.1.gz",
         "/usr/share/man/man7/etcdrun-playbook.7.gz", "/usr/share/bash-completion/completions/etcdrun",
         "/usr/share/zsh/vendor-completions/_etcdrun", "/usr/share/doc/etcdrun/copyright" }) do
         assert(helper.read(root .. f), "missing " .. f)
      end
   end)

   it("runs from the unpacked tree only, and says the package's version", function()
      if no_package() then return end
      local out, err, code = installed("--version")
      assert.are.equal(0, code, err)
      assert.are.equal("etcdrun " .. version .. "\n", out:match("^[^\n]*\n"))
      out = installed([[-e 'print(require("etcdrun.core.runtime").root) print(package.path)
         print(require("etcdrun.module").builtin_dir)']])
      local where, path, modules = out:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
      assert.are.equal(require("etcdrun.core.fs").realpath(root) .. "/usr/share/etcdrun", where)
      assert.are.equal(where .. "/modules", modules)
      local source = require("etcdrun.core.runtime").root
      assert.is_nil(path:find(source .. "/lua", 1, true))
   end)

   it("shows a module's documentation: etcdrun doc file", function()
      if no_package() then return end
      local out, err, code = installed("doc file")
      assert.are.equal(0, code, err)
      assert.are.equal(helper.run(q(helper.etcdrun) .. " doc file"), out)
      assert.matches("^file: Make a path", out)
      assert.matches("\nexample:\n", out)
      out, err, code = installed("doc")
      assert.are.equal(0, code, err)
      assert.matches("\netcd_snapshot +Take a verified etcd snapshot", out)
   end)

   it("runs an installed playbook with --check, changing nothing", function()
      if no_package() then return end
      -- a name no node has: its data directory is absent on this machine, and stays so
      local name = "etcdrun-spec-" .. math.random(1e9)
      helper.write(ws .. "/hosts", ("[etcd]\n%s ansible_connection=local\n"):format(name))
      local out, err, code = installed(("-i hosts %s/usr/share/etcdrun/playbooks/reset.lua --check -e confirm=yes")
         :format(q(root)))
      assert.are.equal(0, code, out .. err)
      assert.matches("skipped +" .. name:gsub("%p", "%%%0") .. " +stop etcd", out)
      assert.matches("ok +" .. name:gsub("%p", "%%%0") .. " +wipe the data directory", out)
      assert.matches(name:gsub("%p", "%%%0") .. " +: ok=1 +changed=0 .* failed=0", out)
      -- and the man page's example, as printed there, with the installed path
      out, err, code = installed(("-i hosts %s/usr/share/etcdrun/playbooks/tls-cluster.lua --list-tasks")
         :format(q(root)))
      assert.are.equal(0, code, err)
      assert.matches("play #1 %(etcd%): etcd cluster with TLS", out)
      assert.matches("\n      preflight\t", out)
   end)

   it("has man pages man can show", function()
      if no_package() then return end
      if missing("command -v man") then
         pending("man is missing (apt-get install man-db)")
         return
      end
      local out, err, code = helper.run(("MANPATH=%s/usr/share/man MANWIDTH=100 man etcdrun 2>&1"):format(q(root)))
      assert.are.equal(0, code, err)
      assert.matches("ETCDRUN%(1%)", out)
      assert.matches("%-%-list%-hosts", out)
      out, err, code = helper.run(("MANPATH=%s/usr/share/man MANWIDTH=100 man 7 etcdrun-playbook 2>&1"):format(q(root)))
      assert.are.equal(0, code, err)
      assert.matches("THE MODULE CONTRACT", out)
      assert.matches("x509_cert", out)
   end)

   it("offers the installed playbooks by their canonical path", function()
      if no_package() then return end
      local out, err, code = installed("complete playbooks")
      assert.are.equal(0, code, err)
      assert.matches("\n/[^\n]*/usr/share/etcdrun/playbooks/reset%.lua\n", "\n" .. out)
      assert.is_nil(out:find("/../", 1, true))
   end)

   it("has a bash completion that registers for etcdrun", function()
      if no_package() then return end
      local script = root .. "/usr/share/bash-completion/completions/etcdrun"
      local out, err, code = helper.run(("bash -c '. %s; complete -p etcdrun'"):format(script))
      assert.are.equal(0, code, err)
      assert.are.equal("complete -F _etcdrun etcdrun\n", out)
   end)
end)
