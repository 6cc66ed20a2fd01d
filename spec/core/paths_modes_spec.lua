-- Every C primitive reads a mode the same way (an octal string, or an
-- integer within 0..07777) and refuses a path holding a NUL byte (a C string
-- ends there: "a\0b" would silently be "a"). Issue 10.
local helper = require("support.helper")
local cjson = require("cjson")
local fs = require("etcdrun.core.fs")
local archive = require("etcdrun.core.archive")
local http = require("etcdrun.core.http")
local ssh = require("etcdrun.core.ssh")

local q = helper.q

local function raises(pattern, fn, ...)
   local ok, err = pcall(fn, ...)
   assert.is_false(ok, "expected an error matching " .. pattern)
   assert.truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

describe("modes", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   it("fs.write reads octal strings as octal", function()
      for _, m in ipairs({ "0600", "600", "0o600", "00600" }) do
         local p = dir .. "/f" .. m
         assert(fs.write(p, "x", { mode = m }))
         assert.are.equal(384, fs.stat(p).mode, m)
      end
      assert(fs.write(dir .. "/s", "x", { mode = "01777" }))
      assert.are.equal(1023, fs.stat(dir .. "/s").mode)
      assert(fs.write(dir .. "/n", "x", { mode = 420 })) -- numbers stay valid
      assert.are.equal(420, fs.stat(dir .. "/n").mode)
   end)

   it("fs.write refuses a mode out of range or malformed, naming the path, writing nothing", function()
      local p = dir .. "/bad"
      for _, m in ipairs({ -1, 4096, 1.5, "0999", "12", "rw-r--r--", "0x1ff", "", "007777", true }) do
         raises("(" .. p .. ")", fs.write, p, "x", { mode = m })
      end
      raises("fs.write: option 'mode' -1 is out of range 0..07777", fs.write, p, "x", { mode = -1 })
      raises("fs.write: option 'mode' '0999' is not an octal mode", fs.write, p, "x", { mode = "0999" })
      assert.is_nil(fs.stat(p))
      assert.are.same({}, fs.list(dir))
   end)

   it("fs.mkdir and fs.chmod take the same modes", function()
      assert(fs.mkdir(dir .. "/d", { mode = "0700" }))
      assert.are.equal(448, fs.stat(dir .. "/d").mode)
      assert(fs.chmod(dir .. "/d", "0750"))
      assert.are.equal(488, fs.stat(dir .. "/d").mode)
      raises("fs.chmod: mode 8191 is out of range", fs.chmod, dir .. "/d", 8191)
      raises("fs.mkdir: option 'mode' '755x'", fs.mkdir, dir .. "/e", { mode = "755x" })
      assert.is_nil(fs.stat(dir .. "/e"))
      assert.are.equal(384, fs.mode("0600"))
      raises("fs.mode: mode -1 is out of range 0..07777 (x)", fs.mode, -1, "x")
   end)

   it("archive.extract takes a string mode", function()
      helper.write(dir .. "/a.json", cjson.encode({ { name = "f", data = "x", mode = 511 } }))
      local _, err, code = helper.run("/usr/bin/python3 spec/support/mkarchive.py " .. q(dir .. "/a.tar")
         .. " tar < " .. q(dir .. "/a.json"))
      assert(code == 0, err)
      assert(archive.extract(dir .. "/a.tar", dir .. "/x", { mode = "0640" }))
      assert.are.equal(416, fs.stat(dir .. "/x/f").mode)
      raises("archive.extract: option 'mode'", archive.extract, dir .. "/a.tar", dir .. "/y", { mode = "9" })
   end)

   it("http.fetch takes a string mode", function()
      helper.write(dir .. "/src", "body")
      assert(http.fetch("file://" .. dir .. "/src", dir .. "/dst", { mode = "0640", progress = false }))
      assert.are.equal(416, fs.stat(dir .. "/dst").mode)
      raises("http.fetch: option 'mode'", http.fetch, "file://" .. dir .. "/src", dir .. "/d2", { mode = -1 })
      assert.is_nil(fs.stat(dir .. "/d2"))
   end)

   it("ssh jobs check modes before anything is sent", function()
      local s = ssh.session({ host = "127.0.0.1", port = 1, config = false, agent = false, timeout = 1 })
      raises("ssh.put: option 'mode' '0999'", s.submit, s, "put", "x", "/tmp/x", { mode = "0999" })
      raises("ssh.mkdir: option 'mode' 4096", s.submit, s, "mkdir", "/tmp/x", { mode = 4096 })
      raises("ssh.chmod: mode -1 is out of range", s.submit, s, "chmod", "/tmp/x", -1)
      raises("ssh.get: option 'mode'", s.submit, s, "get", "/tmp/x", { mode = "rw" })
      -- accepted: the job runs (and fails to connect to port 1)
      local j = s:submit("chmod", "/tmp/x", "0644")
      local ok = j:wait()
      assert.is_nil(ok)
      s:close()
   end)
end)

describe("NUL bytes in paths", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   it("every fs function refuses them, and nothing is written at the truncated path", function()
      local p = dir .. "/a\0b"
      local calls = {
         { "stat", p }, { "read", p }, { "write", p, "x" }, { "mkdir", p }, { "chmod", p, "0600" },
         { "chown", p }, { "remove", p }, { "list", p }, { "sha256_file", p }, { "mkdtemp", p },
         { "symlink", "t", p }, { "symlink", p, dir .. "/l" }, { "realpath", p }, { "tempname", p },
         { "sweep", p, ".x-" },
      }
      for _, c in ipairs(calls) do
         raises("fs." .. c[1] .. ": path contains a NUL byte (" .. dir .. "/a\\0...)", fs[c[1]],
            table.unpack(c, 2))
      end
      assert.are.same({}, fs.list(dir))
   end)

   it("archive.list and archive.extract refuse them (archive, target, include)", function()
      raises("archive.list: path contains a NUL byte", archive.list, dir .. "/a.tar\0x")
      raises("archive.extract: path contains a NUL byte", archive.extract, dir .. "/a.tar\0x", dir .. "/d")
      raises("archive.extract: path contains a NUL byte", archive.extract, dir .. "/a.tar", dir .. "/d\0x")
      raises("option 'include' must hold strings without NUL", archive.extract, dir .. "/a.tar", dir .. "/d",
         { include = { "etcd\0x" } })
      assert.are.same({}, fs.list(dir))
   end)

   it("http.fetch refuses them in the destination, the URL and TLS file options", function()
      helper.write(dir .. "/src", "body")
      local url = "file://" .. dir .. "/src"
      raises("http.fetch: path contains a NUL byte", http.fetch, url, dir .. "/d\0x")
      raises("http.fetch: the URL contains a NUL byte", http.fetch, url .. "\0x", dir .. "/d")
      raises("http.fetch: option 'ca' contains a NUL byte", http.fetch, url, dir .. "/d", { ca = "/etc/ca\0x" })
      raises("http.request: the URL contains a NUL byte", http.request, { url = url .. "\0x" })
      raises("http.request: option 'cert' contains a NUL byte", http.request, { url = url, cert = "c\0x" })
      assert.are.same({ "src" }, fs.list(dir))
   end)

   it("ssh sessions and jobs refuse them in every local and remote path", function()
      raises("ssh.session: option 'known_hosts' contains a NUL byte", ssh.session,
         { host = "h", known_hosts = "kh\0x" })
      raises("ssh.session: option 'global_known_hosts' contains a NUL byte", ssh.session,
         { host = "h", global_known_hosts = "kh\0x" })
      raises("ssh.session: option 'config' contains a NUL byte", ssh.session, { host = "h", config = "c\0x" })
      raises("ssh.session: path contains a NUL byte", ssh.session, { host = "h", identities = { "id\0x" } })
      raises("ssh.key_needs_passphrase: path contains a NUL byte", ssh.key_needs_passphrase, "k\0x")
      local s = ssh.session({ host = "127.0.0.1", port = 1, config = false, agent = false, timeout = 1 })
      raises("ssh.put: option 'from' contains a NUL byte", s.submit, s, "put", nil, "/r", { from = "l\0x" })
      raises("ssh.put: path contains a NUL byte", s.submit, s, "put", "x", "/r\0x")
      raises("ssh.get: option 'to' contains a NUL byte", s.submit, s, "get", "/r", { to = "l\0x" })
      raises("ssh.get: path contains a NUL byte", s.submit, s, "get", "/r\0x")
      raises("ssh.stat: path contains a NUL byte", s.submit, s, "stat", "/r\0x")
      raises("ssh.mkdir: path contains a NUL byte", s.submit, s, "mkdir", "/r\0x")
      raises("ssh.remove: path contains a NUL byte", s.submit, s, "remove", "/r\0x")
      raises("ssh.chmod: path contains a NUL byte", s.submit, s, "chmod", "/r\0x", "0600")
      raises("ssh.rename: path contains a NUL byte", s.submit, s, "rename", "/r", "/s\0x")
      s:close()
   end)
end)
