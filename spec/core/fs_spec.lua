local helper = require("support.helper")
local fs = require("etcdrun.core.fs")
local efs = require("etcdrun.fs")

local is_root = helper.run("id -u") == "0\n"

describe("fs", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   describe("stat", function()
      it("reports type, mode, owner names, size and mtime", function()
         local p = dir .. "/f"
         helper.write(p, "hello")
         assert(fs.chmod(p, 420)) -- 0644
         local st = assert(fs.stat(p))
         assert.are.equal("file", st.type)
         assert.are.equal(420, st.mode)
         assert.are.equal(5, st.size)
         local uid = tonumber((helper.run("id -u")))
         assert.are.equal(uid, st.uid)
         assert.are.equal((helper.run("id -un")):gsub("\n", ""), st.user)
         assert.is_string(st.group)
         assert.is_true(math.abs(os.time() - st.mtime) < 60)
         assert.are.equal("dir", fs.stat(dir).type)
      end)

      it("sees links without following when asked", function()
         assert(fs.symlink("target-x", dir .. "/l"))
         local st = assert(fs.stat(dir .. "/l", { follow = false }))
         assert.are.equal("link", st.type)
         assert.are.equal("target-x", st.target)
      end)

      it("returns ENOENT naming the path", function()
         local st, err, code = fs.stat(dir .. "/missing")
         assert.is_nil(st)
         assert.are.equal("ENOENT", code)
         assert.matches("fs.stat: No such file or directory %(.*/missing%)", err)
      end)

      it("raises on unknown options", function()
         assert.has_error(function()
            fs.stat(dir, { folow = true })
         end, "fs.stat: unknown option 'folow' (known: follow)")
      end)
   end)

   describe("write", function()
      it("writes atomically with the mode asked for and leaves no temp file", function()
         local p = dir .. "/secret.key"
         assert(fs.write(p, "KEY", { mode = 384 })) -- 0600
         assert.are.equal("KEY", helper.read(p))
         assert.are.equal(384, fs.stat(p).mode)
         assert.are.same({ "secret.key" }, fs.list(dir))
      end)

      it("keeps an existing file's mode when none is given", function()
         local p = dir .. "/f"
         assert(fs.write(p, "a", { mode = 448 }))
         assert(fs.write(p, "b"))
         assert.are.equal(448, fs.stat(p).mode)
         assert.are.equal("b", fs.read(p))
      end)

      it("sets owner and group by name and by id", function()
         local p = dir .. "/owned"
         local uid = tonumber((helper.run("id -u")))
         assert(fs.write(p, "x", { owner = uid, group = tonumber((helper.run("id -g"))) }))
         assert.are.equal(uid, fs.stat(p).uid)
         if is_root then
            assert(fs.write(p, "y", { owner = "nobody", group = "nogroup" }))
            local st = fs.stat(p)
            assert.are.equal("nobody", st.user)
            assert.are.equal("nogroup", st.group)
         end
      end)

      it("fails on an unknown user without touching the file", function()
         local p = dir .. "/f"
         helper.write(p, "old")
         local ok, err, code = fs.write(p, "new", { owner = "no-such-user-xyz" })
         assert.is_nil(ok)
         assert.are.equal("ENOUSER", code)
         assert.matches("no such user 'no%-such%-user%-xyz'", err)
         assert.are.equal("old", helper.read(p))
      end)

      it("fails in a missing directory naming the path", function()
         local ok, err, code = fs.write(dir .. "/nope/f", "x")
         assert.is_nil(ok)
         assert.are.equal("ENOENT", code)
         assert.matches("fs.write: .*nope/f", err)
      end)

      it("leaves the old file whole when the disk is full", function()
         if not is_root then
            pending("needs root to mount a tiny tmpfs")
            return
         end
         local mnt = dir .. "/small"
         assert(fs.mkdir(mnt))
         local _, err, code = helper.run("mount -t tmpfs -o size=64k tmpfs " .. helper.q(mnt))
         assert.are.equal(0, code, err)
         finally(function()
            helper.run("umount " .. helper.q(mnt))
         end)
         local p = mnt .. "/config"
         assert(fs.write(p, "old content"))
         local ok, werr, wcode = fs.write(p, string.rep("x", 1024 * 1024))
         assert.is_nil(ok)
         assert.are.equal("ENOSPC", wcode)
         assert.matches("No space left on device %(.*config%)", werr)
         assert.are.equal("old content", helper.read(p))
         assert.are.same({ "config" }, fs.list(mnt))
      end)

      it("refuses to replace a directory", function()
         local _, err, code = fs.write(dir, "x")
         assert.are.equal("EISDIR", code)
         assert.matches("fs.write", err)
      end)
   end)

   describe("mkdir", function()
      it("creates parents and sets the mode despite the umask", function()
         local p = dir .. "/a/b/c"
         assert.is_true(fs.mkdir(p, { mode = 448 }))
         assert.are.equal(448, fs.stat(p).mode)
         assert.are.equal("dir", fs.stat(dir .. "/a/b").type)
         assert.is_false(fs.mkdir(p, { mode = 448 }))
      end)

      it("fails when a file is in the way", function()
         helper.write(dir .. "/file", "")
         local ok, err, code = fs.mkdir(dir .. "/file")
         assert.is_nil(ok)
         assert.are.equal("EEXIST", code)
         assert.matches("not a directory %(.*/file%)", err)
      end)
   end)

   describe("chmod and chown", function()
      it("change mode and owner", function()
         local p = dir .. "/f"
         helper.write(p, "")
         assert(fs.chmod(p, 493))
         assert.are.equal(493, fs.stat(p).mode)
         local uid = tonumber((helper.run("id -u")))
         assert(fs.chown(p, uid, nil))
         if is_root then
            assert(fs.chown(p, "nobody", "nogroup"))
            assert.are.equal("nobody", fs.stat(p).user)
         end
         local _, err, code = fs.chown(p, "no-such-user-xyz")
         assert.are.equal("ENOUSER", code)
         assert.matches("fs.chown", err)
         assert.has_error(function()
            fs.chmod(p, 99999)
         end)
      end)
   end)

   describe("remove", function()
      it("removes trees recursively without following links", function()
         local outside = helper.tmpdir()
         helper.write(outside .. "/keep", "k")
         assert(fs.mkdir(dir .. "/t/sub"))
         helper.write(dir .. "/t/sub/f", "x")
         assert(fs.symlink(outside, dir .. "/t/link"))
         local ok, err, code = fs.remove(dir .. "/t")
         assert.is_nil(ok)
         assert.are.equal("ENOTEMPTY", code, err)
         assert.is_true(fs.remove(dir .. "/t", { recursive = true }))
         assert.is_nil(fs.stat(dir .. "/t"))
         assert.are.equal("k", helper.read(outside .. "/keep"))
         assert.is_false(fs.remove(dir .. "/t"))
      end)

      it("refuses the root directory however it is spelled", function()
         for _, p in ipairs({ "/", "//", "/.", "/tmp/.." }) do
            local ok, err, code = fs.remove(p, { recursive = true })
            assert.is_nil(ok)
            assert.are.equal("EPERM", code)
            assert.matches("refusing to remove the root directory", err)
         end
      end)
   end)

   describe("list and sha256", function()
      it("lists names sorted", function()
         for _, n in ipairs({ "b", "a", "c" }) do
            helper.write(dir .. "/" .. n, n)
         end
         assert.are.same({ "a", "b", "c" }, fs.list(dir))
         local _, _, code = fs.list(dir .. "/none")
         assert.are.equal("ENOENT", code)
      end)

      it("hashes strings and files like sha256sum", function()
         local p = dir .. "/data"
         local data = string.rep("etcd\0", 100000)
         helper.write(p, data)
         local expected = helper.run("sha256sum " .. helper.q(p)):match("^(%x+)")
         assert.are.equal(expected, fs.sha256_file(p))
         assert.are.equal(expected, fs.sha256(data))
         assert.are.equal(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            fs.sha256("")
         )
      end)
   end)

   describe("facade", function()
      it("raises with the core's message", function()
         assert.has_error(function()
            efs.read(dir .. "/missing")
         end)
         local ok, err = pcall(efs.read, dir .. "/missing")
         assert.is_false(ok)
         assert.matches("fs.read: No such file or directory %(.*/missing%)", err)
         assert.are.equal(fs.read, efs.try.read)
      end)
   end)
end)
