local helper = require("support.helper")
local cjson = require("cjson")
local archive = require("etcdrun.core.archive")
local earchive = require("etcdrun.archive")
local fs = require("etcdrun.core.fs")

local q = helper.q

-- Build an archive with spec/support/mkarchive.py (names kept verbatim,
-- hostile ones included); returns its path.
local function mkarchive(path, format, entries)
   local json = path .. ".json"
   helper.write(json, cjson.encode(entries))
   local _, err, code = helper.run("/usr/bin/python3 spec/support/mkarchive.py " .. q(path)
      .. " " .. format .. " < " .. q(json))
   assert(code == 0, err)
   return path
end

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

local function exists(path)
   return fs.stat(path, { follow = false }) ~= nil
end

local function sorted(t)
   table.sort(t)
   return t
end

describe("archive", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   -- An etcd-like release tree, packed by the system tar.
   local function release_tree()
      local top = dir .. "/src/etcd-v3.4.23-linux-amd64"
      if exists(top) then
         return dir .. "/src"
      end
      sh("mkdir -p " .. q(top .. "/Documentation"))
      helper.write(top .. "/etcd", "#!/bin/sh\necho etcd\n")
      helper.write(top .. "/etcdctl", "#!/bin/sh\necho etcdctl\n")
      helper.write(top .. "/README.md", "readme\n")
      helper.write(top .. "/Documentation/dev.md", "doc\n")
      assert(fs.chmod(top .. "/etcd", 493)) -- 0755
      assert(fs.chmod(top .. "/etcdctl", 493))
      assert(fs.chmod(top .. "/README.md", 420)) -- 0644
      assert(fs.symlink("etcd", top .. "/etcd-link"))
      return dir .. "/src"
   end

   local function tarball(flag, ext)
      local src = release_tree()
      local out = dir .. "/etcd-v3.4.23-linux-amd64" .. ext
      sh("tar -C " .. q(src) .. " -c" .. flag .. "f " .. q(out) .. " etcd-v3.4.23-linux-amd64")
      return out
   end

   describe("list", function()
      it("lists paths, types, sizes, modes and link targets", function()
         local tgz = tarball("z", ".tar.gz")
         local byname = {}
         for _, e in ipairs(assert(archive.list(tgz))) do
            byname[e.path] = e
         end
         local etcd = byname["etcd-v3.4.23-linux-amd64/etcd"]
         assert.are.same({ "file", 20, 493 }, { etcd.type, etcd.size, etcd.mode })
         assert.are.equal("dir", byname["etcd-v3.4.23-linux-amd64/"].type)
         assert.are.equal(420, byname["etcd-v3.4.23-linux-amd64/README.md"].mode)
         local link = byname["etcd-v3.4.23-linux-amd64/etcd-link"]
         assert.are.same({ "symlink", "etcd" }, { link.type, link.link })
         assert.is_number(etcd.mtime)
      end)

      it("reports hard links with their target", function()
         local t = mkarchive(dir .. "/h.tar", "tar", {
            { name = "a", data = "x" },
            { name = "b", type = "hardlink", link = "a" },
         })
         local l = assert(archive.list(t))
         assert.are.same({ "hardlink", "a" }, { l[2].type, l[2].link })
      end)

      it("fails with ENOENT naming a missing archive", function()
         local r, err, code = archive.list(dir .. "/missing.tar.gz")
         assert.is_nil(r)
         assert.are.equal("ENOENT", code)
         assert.matches("^archive%.list: .*%(.*/missing%.tar%.gz%)$", err)
      end)

      it("fails with EARCHIVE naming a file that is no archive", function()
         helper.write(dir .. "/junk.tar.gz", string.rep("not an archive ", 100))
         local r, err, code = archive.list(dir .. "/junk.tar.gz")
         assert.is_nil(r)
         assert.are.equal("EARCHIVE", code)
         assert.matches("junk%.tar%.gz%)$", err)
      end)
   end)

   describe("extract", function()
      it("picks etcd and etcdctl out of a release tarball, modes kept", function()
         local tgz = tarball("z", ".tar.gz")
         local dest = dir .. "/bin"
         local got = assert(archive.extract(tgz, dest, {
            strip_components = 1,
            include = { "etcd", "etcdctl" },
         }))
         assert.are.same({ "etcd", "etcdctl" }, sorted(got))
         assert.are.same({ "etcd", "etcdctl" }, fs.list(dest))
         assert.are.equal(493, fs.stat(dest .. "/etcd").mode)
         assert.are.equal(493, fs.stat(dest .. "/etcdctl").mode)
         assert.are.equal("#!/bin/sh\necho etcdctl\n", helper.read(dest .. "/etcdctl"))
      end)

      it("extracts everything, symlinks included, without stripping", function()
         local tgz = tarball("z", ".tar.gz")
         local dest = dir .. "/all"
         local got = assert(archive.extract(tgz, dest))
         assert.is_true(#got >= 7)
         local top = dest .. "/etcd-v3.4.23-linux-amd64"
         assert.are.equal("doc\n", helper.read(top .. "/Documentation/dev.md"))
         assert.are.equal(420, fs.stat(top .. "/README.md").mode)
         assert.are.equal("etcd", fs.stat(top .. "/etcd-link", { follow = false }).target)
      end)

      it("matches include globs against the stripped path", function()
         local tgz = tarball("z", ".tar.gz")
         local got = assert(archive.extract(tgz, dir .. "/g", {
            strip_components = 1,
            include = { "etcd*", "Documentation/*.md" },
         }))
         assert.are.same({ "Documentation/dev.md", "etcd", "etcd-link", "etcdctl" }, sorted(got))
      end)

      it("reads tar.xz and plain tar", function()
         for _, v in ipairs({ { "J", ".tar.xz" }, { "", ".tar" } }) do
            local t = tarball(v[1], v[2])
            local dest = dir .. "/x" .. v[2]
            assert.are.same({ "etcd" },
               archive.extract(t, dest, { strip_components = 1, include = { "etcd" } }))
            assert.are.equal(493, fs.stat(dest .. "/etcd").mode)
         end
      end)

      it("reads zip, modes kept", function()
         local z = mkarchive(dir .. "/e.zip", "zip", {
            { name = "etcd-v3.4.23-linux-amd64", type = "dir" },
            { name = "etcd-v3.4.23-linux-amd64/etcd", data = "bin", mode = 493 },
            { name = "etcd-v3.4.23-linux-amd64/README.md", data = "readme", mode = 384 },
         })
         local dest = dir .. "/z"
         local got = assert(archive.extract(z, dest, { strip_components = 1 }))
         assert.are.same({ "README.md", "etcd" }, sorted(got))
         assert.are.equal("bin", helper.read(dest .. "/etcd"))
         assert.are.equal(493, fs.stat(dest .. "/etcd").mode)
         assert.are.equal(384, fs.stat(dest .. "/README.md").mode)
      end)

      it("forces a file mode when asked, and never restores set-id bits", function()
         local t = mkarchive(dir .. "/m.tar.gz", "tar.gz", {
            { name = "suid", data = "x", mode = 2541 }, -- 04755
            { name = "plain", data = "y", mode = 420 },
         })
         assert(archive.extract(t, dir .. "/m1"))
         assert.are.equal(493, fs.stat(dir .. "/m1/suid").mode)
         assert(archive.extract(t, dir .. "/m2", { mode = 448 })) -- 0700
         assert.are.equal(448, fs.stat(dir .. "/m2/plain").mode)
      end)

      it("replaces an existing file by rename, not in place", function()
         local t = mkarchive(dir .. "/r.tar.gz", "tar.gz", { { name = "etcd", data = "new" } })
         local dest = dir .. "/r"
         sh("mkdir -p " .. q(dest))
         helper.write(dest .. "/etcd", "old")
         sh("ln " .. q(dest .. "/etcd") .. " " .. q(dir .. "/old-etcd"))
         assert(archive.extract(t, dest))
         assert.are.equal("new", helper.read(dest .. "/etcd"))
         -- a hard link to the old inode still sees the old bytes
         assert.are.equal("old", helper.read(dir .. "/old-etcd"))
      end)

      it("extracts a hard link to a file of the same archive", function()
         local t = mkarchive(dir .. "/h.tar", "tar", {
            { name = "top/a", data = "same" },
            { name = "top/b", type = "hardlink", link = "top/a" },
         })
         local dest = dir .. "/h"
         assert.are.same({ "a", "b" }, sorted(assert(archive.extract(t, dest,
            { strip_components = 1 }))))
         assert.are.equal("same", helper.read(dest .. "/b"))
         assert.are.equal("2", sh("stat -c %h " .. q(dest .. "/b")):gsub("%s", ""))
      end)

      it("fails with ENOENT when an include pattern matches nothing", function()
         local tgz = tarball("z", ".tar.gz")
         local r, err, code = archive.extract(tgz, dir .. "/n", {
            strip_components = 1, include = { "etcd", "etcdutl" },
         })
         assert.is_nil(r)
         assert.are.equal("ENOENT", code)
         assert.matches("no entry matches 'etcdutl' %(.*%.tar%.gz%)$", err)
      end)

      it("fails with EARCHIVE naming a truncated archive", function()
         local tgz = mkarchive(dir .. "/big.tar.gz", "tar.gz", {
            { name = "big", data = string.rep("0123456789abcdef", 65536) },
         })
         -- keep the gzip header and part of the stream: a download cut short
         local data = helper.read(tgz)
         helper.write(dir .. "/cut.tar.gz", data:sub(1, #data // 2))
         local r, err, code = archive.extract(dir .. "/cut.tar.gz", dir .. "/c")
         assert.is_nil(r)
         assert.are.equal("EARCHIVE", code)
         assert.matches("^archive%.extract: .*%(.*/cut%.tar%.gz%)$", err)
         local l, lerr, lcode = archive.list(dir .. "/cut.tar.gz")
         assert.is_nil(l)
         assert.are.equal("EARCHIVE", lcode)
         assert.matches("cut%.tar%.gz%)$", lerr)
      end)

      it("names the entry it could not write", function()
         local t = mkarchive(dir .. "/w.tar", "tar", {
            { name = "top/f", data = "file" },
            { name = "top/f/g", data = "under a file" },
         })
         local r, err, code = archive.extract(t, dir .. "/w", { strip_components = 1 })
         assert.is_nil(r)
         assert.is_string(code)
         assert.matches("^archive%.extract: cannot extract entry 'top/f/g': .*%(.*/w%.tar%)$", err)
      end)

      it("refuses device nodes", function()
         local t = mkarchive(dir .. "/d.tar", "tar", { { name = "null", type = "chardev" } })
         local r, err, code = archive.extract(t, dir .. "/d")
         assert.is_nil(r)
         assert.are.equal("EUNSUPPORTED", code)
         assert.matches("'null'", err)
         assert.is_false(exists(dir .. "/d/null"))
      end)

      it("raises on misuse", function()
         local tgz = tarball("z", ".tar.gz")
         assert.has_error(function()
            archive.extract(tgz, dir .. "/o", { strip = 1 })
         end)
         assert.has_error(function()
            archive.extract(tgz, dir .. "/o", { include = { 1 } })
         end)
         assert.has_error(function()
            archive.extract(tgz, dir .. "/o", { mode = 4095 })
         end)
      end)

      it("the facade raises the same message", function()
         local ok, err = pcall(earchive.extract, dir .. "/nope.tgz", dir .. "/o")
         assert.is_false(ok)
         assert.matches("archive%.extract: No such file or directory %(.*nope%.tgz%)", err)
         assert.is_false(exists(dir .. "/o")) -- dest is made only for a readable archive
      end)
   end)

   describe("hostile archives", function()
      -- dest sits inside dir; an escape would land in dir (or /tmp).
      local function refused(entries, name_in_msg, format, opts)
         local t = mkarchive(dir .. "/evil." .. (format or "tar.gz"), format or "tar.gz",
            entries)
         local dest = dir .. "/dest"
         local r, err, code = archive.extract(t, dest, opts)
         assert.is_nil(r)
         assert.are.equal("EUNSAFE", code)
         assert.truthy(err:find("entry '" .. name_in_msg .. "'", 1, true), err)
         assert.matches("%(.*/evil%.[%w.]+%)$", err)
         return dest
      end

      it("refuses ../ and writes nothing outside", function()
         refused({ { name = "../evil", data = "pwned" } }, "../evil")
         assert.is_false(exists(dir .. "/evil"))
      end)

      it("refuses .. hidden behind strip_components", function()
         refused({ { name = "top/../../evil", data = "pwned" } }, "top/../../evil", nil,
            { strip_components = 1 })
         assert.is_false(exists(dir .. "/evil"))
      end)

      it("refuses ../ in zip", function()
         refused({ { name = "../evil", data = "pwned" } }, "../evil", "zip")
         assert.is_false(exists(dir .. "/evil"))
      end)

      it("refuses absolute paths", function()
         local victim = dir .. "/abs-victim"
         refused({ { name = victim, data = "pwned" } }, victim)
         assert.is_false(exists(victim))
      end)

      it("refuses a symlink out of the target and the file written through it", function()
         sh("mkdir -p " .. q(dir .. "/outside"))
         local dest = refused({
            { name = "ok", data = "fine" },
            { name = "link", type = "symlink", link = "../outside" },
            { name = "link/pwned", data = "pwned" },
         }, "link")
         assert.is_false(exists(dir .. "/outside/pwned"))
         assert.is_false(exists(dest .. "/link"))
         -- a refused archive leaves nothing half-extracted: earlier entries are removed
         assert.is_false(exists(dest .. "/ok"))
      end)

      it("refuses an absolute symlink target", function()
         local dest = refused({ { name = "etc", type = "symlink", link = "/etc" } }, "etc")
         assert.is_false(exists(dest .. "/etc"))
      end)

      it("refuses a symlink escaping through another symlink", function()
         -- a/b -> .. stays inside, but a/l -> b/../../x would climb out via b
         sh("mkdir -p " .. q(dir .. "/dest/a"))
         refused({
            { name = "a", type = "dir" },
            { name = "a/b", type = "symlink", link = ".." },
            { name = "a/l", type = "symlink", link = "b/../../x" },
         }, "a/l")
         assert.is_false(exists(dir .. "/dest/a/l"))
      end)

      it("refuses writing through a symlink even when it points inside", function()
         refused({
            { name = "real", type = "dir" },
            { name = "l", type = "symlink", link = "real" },
            { name = "l/f", data = "x" },
         }, "l/f")
      end)

      it("refuses a zip symlink out of the target", function()
         local dest = refused({ { name = "l", type = "symlink", link = "../../.." } }, "l",
            "zip")
         assert.is_false(exists(dest .. "/l"))
      end)

      it("refuses hard links to absolute and outside paths", function()
         helper.write(dir .. "/passwd", "root:x:0:0\n")
         local dest = refused({
            { name = "passwd", type = "hardlink", link = dir .. "/passwd" },
         }, "passwd", "tar")
         assert.is_false(exists(dest .. "/passwd"))
         refused({ { name = "p2", type = "hardlink", link = "../passwd" } }, "p2", "tar")
         assert.is_false(exists(dest .. "/p2"))
         assert.are.equal("root:x:0:0\n", helper.read(dir .. "/passwd"))
         assert.are.equal("1", sh("stat -c %h " .. q(dir .. "/passwd")):gsub("%s", ""))
      end)

      it("refuses a hard link to a file not extracted from the archive", function()
         sh("mkdir -p " .. q(dir .. "/dest"))
         helper.write(dir .. "/dest/preexisting", "mine")
         refused({ { name = "h", type = "hardlink", link = "preexisting" } }, "h", "tar")
      end)
   end)

   describe("digests", function()
      -- what extract wrote, as digests reports it: path -> {type, mode, sha256}
      local function on_disk(dest, paths)
         local out = {}
         for _, rel in ipairs(paths) do
            local st = fs.stat(dest .. "/" .. rel, { follow = false })
            local e = { type = st.type == "link" and "symlink" or st.type, mode = st.mode & 511 }
            if st.type == "file" then
               e.sha256 = fs.sha256_file(dest .. "/" .. rel)
            end
            out[rel] = e
         end
         return out
      end
      local function by_path(list)
         local out = {}
         for _, e in ipairs(list) do
            out[e.path] = { type = e.type == "hardlink" and "file" or e.type, mode = e.mode, sha256 = e.sha256 }
         end
         return out
      end

      it("reports what extract writes, with each file's sha256, and writes nothing", function()
         local tgz = tarball("z", ".tar.gz")
         for _, opts in ipairs({ {}, { strip_components = 1 }, { strip_components = 1, include = { "etcd*" } } }) do
            local before = sorted(fs.list(dir))
            local d = assert(archive.digests(tgz, opts))
            assert.are.same(before, sorted(fs.list(dir)))
            local dest = dir .. "/x" .. #fs.list(dir)
            local paths = assert(archive.extract(tgz, dest, opts))
            assert.are.same(on_disk(dest, paths), by_path(d))
         end
         local d = assert(archive.digests(tgz, { strip_components = 1, include = { "etcd" } }))
         assert.are.same({ { path = "etcd", type = "file", mode = 493, size = 20,
            sha256 = fs.sha256("#!/bin/sh\necho etcd\n") } }, d)
         local link = by_path(assert(archive.digests(tgz, { strip_components = 1 })))["etcd-link"]
         assert.are.same({ type = "symlink", mode = 511 }, link)
      end)

      it("reads zip and tar.xz the same way", function()
         local entries = {
            { name = "p/", type = "dir", mode = 448 },
            { name = "p/a", data = "alpha\n", mode = 384 },
            { name = "p/s", type = "symlink", link = "a" },
         }
         for _, fmt in ipairs({ "zip", "tar.xz" }) do
            local t = mkarchive(dir .. "/p." .. fmt, fmt, entries)
            local d = assert(archive.digests(t, { strip_components = 1 }))
            assert.are.same({ "a", "s" }, { d[1].path, d[2].path })
            assert.are.same({ "file", 384, 6, fs.sha256("alpha\n") }, { d[1].type, d[1].mode, d[1].size, d[1].sha256 })
            assert.are.same({ "symlink", "a" }, { d[2].type, d[2].link })
         end
      end)

      it("hashes a sparse file's holes as zeros, as the extracted file reads", function()
         sh("cd " .. q(dir) .. " && truncate -s 1M sp && printf mid | dd of=sp bs=1 seek=300000 conv=notrunc"
            .. " 2>/dev/null && truncate -s 2M sp && tar -cSf sp.tar sp")
         local d = assert(archive.digests(dir .. "/sp.tar"))
         assert.are.same({ 2097152, fs.sha256_file(dir .. "/sp") }, { d[1].size, d[1].sha256 })
      end)

      it("gives a hard link its file's digest, and a name given twice its later content", function()
         local t = mkarchive(dir .. "/h.tar", "tar", {
            { name = "a", data = "one", mode = 384 },
            { name = "b", type = "hardlink", link = "a" },
            { name = "a", data = "two" },
         })
         local d = assert(archive.digests(t))
         assert.are.same({ "a", "b" }, { d[1].path, d[2].path })
         assert.are.same({ fs.sha256("two"), 420 }, { d[1].sha256, d[1].mode })
         assert.are.same({ "hardlink", "a", fs.sha256("one"), 384 }, { d[2].type, d[2].link, d[2].sha256, d[2].mode })
         local dest = dir .. "/hx"
         assert(archive.extract(t, dest))
         assert.are.same({ fs.sha256("two"), fs.sha256("one") },
            { fs.sha256_file(dest .. "/a"), fs.sha256_file(dest .. "/b") })
      end)

      it("refuses what extract refuses, with the same codes", function()
         local cases = {
            { { { name = "../evil", data = "x" } }, "EUNSAFE", "entry '../evil' escapes" },
            { { { name = "/abs", data = "x" } }, "EUNSAFE", "entry '/abs' escapes" },
            { { { name = "l", type = "symlink", link = "../../x" } }, "EUNSAFE", "symlink to '../../x'" },
            { { { name = "h", type = "hardlink", link = "nothere" } }, "EUNSAFE", "not a file extracted" },
            { { { name = "d", type = "dir" }, { name = "h", type = "hardlink", link = "d" } }, "EUNSAFE",
               "not a file extracted" },
            { { { name = "null", type = "chardev" } }, "EUNSUPPORTED", "entry 'null' is a chardev" },
         }
         for i, c in ipairs(cases) do
            local t = mkarchive(dir .. "/bad" .. i .. ".tar", "tar", c[1])
            local r, err, code = archive.digests(t)
            assert.is_nil(r)
            assert.are.equal(c[2], code, err)
            assert.truthy(err:find(c[3], 1, true), err)
            assert.matches("^archive%.digests: .*%(.*/bad" .. i .. "%.tar%)$", err)
            local _, _, xcode = archive.extract(t, dir .. "/bad" .. i)
            assert.are.equal(c[2], xcode)
         end
         local t = mkarchive(dir .. "/i.tar", "tar", { { name = "a", data = "x" } })
         local r, err, code = archive.digests(t, { include = { "a", "nope" } })
         assert.is_nil(r)
         assert.are.equal("ENOENT", code)
         assert.truthy(err:find("no entry matches 'nope'", 1, true), err)
      end)

      it("keeps extract's limits: max_bytes (a sparse file by its declared size), max_entries", function()
         sh("cd " .. q(dir) .. " && truncate -s 3M s && printf x >> s && tar -cSf s.tar s"
            .. " && truncate -s 1T big && tar -cSf big.tar big && rm big")
         local r, err, code = archive.digests(dir .. "/s.tar", { max_bytes = 3 * 1024 * 1024 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code)
         assert.truthy(err:find("archive expands beyond 3145728 bytes (max_bytes), at entry 's'", 1, true), err)
         assert(archive.digests(dir .. "/s.tar", { max_bytes = 3 * 1024 * 1024 + 1 }))
         local t0 = os.time()
         r, err, code = archive.digests(dir .. "/big.tar")
         assert.is_nil(r)
         assert.are.equal("EFBIG", code, err)
         assert.is_true(os.time() - t0 < 5)
         sh("cd " .. q(dir) .. " && mkdir -p z && head -c 4194304 /dev/zero > z/zeros && tar -czf bomb.tgz z")
         r, err, code = archive.digests(dir .. "/bomb.tgz", { max_bytes = 1048576 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code, err)
         local many = {}
         for i = 1, 5 do
            many[i] = { name = "f" .. i, data = "" }
         end
         r, err, code = archive.digests(mkarchive(dir .. "/m.tar", "tar", many), { max_entries = 4 })
         assert.is_nil(r)
         assert.are.equal("EFBIG", code, err)
         assert.truthy(err:find("more than 4 entries", 1, true), err)
      end)

      it("runs under check mode (it writes nothing), unlike extract", function()
         local tgz = tarball("z", ".tar.gz")
         local checkguard = require("etcdrun.checkguard")
         local ok, d = checkguard.run(archive.digests, tgz, { strip_components = 1 })
         assert.is_true(ok)
         assert.is_table(d)
         local _, r, _, code = checkguard.run(archive.extract, tgz, dir .. "/ck")
         assert.is_nil(r)
         assert.are.equal("ECHECK", code)
      end)

      it("fails with ENOENT naming a missing archive; raises on misuse; the facade raises", function()
         local r, err, code = archive.digests(dir .. "/missing.tgz")
         assert.is_nil(r)
         assert.are.equal("ENOENT", code)
         assert.matches("^archive%.digests: .*%(.*/missing%.tgz%)$", err)
         local tgz = tarball("z", ".tar.gz")
         assert.has_error(function() archive.digests(tgz, { mode = "0644" }) end)
         assert.has_error(function() archive.digests(tgz, { include = { 1 } }) end,
            "archive.digests: option 'include' must hold strings without NUL bytes")
         assert.has_error(function() archive.digests(tgz, { max_bytes = -1 }) end)
         assert.has_error(function() archive.digests(tgz .. "\0x") end)
         local ok, ferr = pcall(earchive.digests, dir .. "/nope.tgz")
         assert.is_false(ok)
         assert.matches("archive%.digests: No such file or directory %(.*nope%.tgz%)", ferr)
         assert.are.same(archive.digests(tgz), earchive.digests(tgz))
      end)
   end)

   describe("tree (the facade's cache of extracted trees)", function()
      it("readonly describes a tree not cached yet from digests, as the extraction then caches it", function()
         local t = mkarchive(dir .. "/t.tar.gz", "tar.gz", {
            { name = "top/d/", type = "dir", mode = 488 }, -- explicit: an implicit one's mode is the umask's
            { name = "top/d/x", data = "x\n", mode = 384 },
            { name = "top/y", data = "y\n" },
            { name = "top/h", type = "hardlink", link = "top/y" },
            { name = "top/s", type = "symlink", link = "y" },
         })
         local opts = { strip_components = 1, readonly = true }
         local pre = earchive.tree(t, opts)
         assert.is_nil(pre.dir)
         local ok, under_check = require("etcdrun.checkguard").run(earchive.tree, t, opts)
         assert.is_true(ok)
         assert.are.same(pre, under_check)
         local got = earchive.tree(t, { strip_components = 1 })
         assert.is_string(got.dir)
         assert.are.same(got.entries, pre.entries)
         assert.are.same({ "d", "d/x", "h", "s", "y" }, (function()
            local r = {}
            for i, e in ipairs(got.entries) do
               r[i] = e.rel
            end
            return r
         end)())
         assert.are.equal("x\n", helper.read(got.dir .. "/d/x"))
         assert.are.same(got, earchive.tree(t, opts)) -- cached now: readonly gets the dir too
         local r, err, code = earchive.try.tree(t, { include = { "nope" } })
         assert.is_nil(r)
         assert.are.equal("ENOENT", code)
         assert.truthy(err:find("archive.extract: no entry matches 'nope'", 1, true), err)
         assert.has_error(function() earchive.tree(dir .. "/none.tgz") end)
      end)
   end)
end)
