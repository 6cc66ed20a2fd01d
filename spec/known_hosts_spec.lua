-- known_hosts under `--host-key accept-new` follows the symlink rule of the
-- content modules (modules/README.md, "A symlink at a destination"): a
-- symlinked known_hosts stays a link and the file it points to gets the new
-- key; a dangling link is refused. First host.remember_host_key on the
-- controller, then accept-new against a lab node's real sshd.
local helper = require("support.helper")
local lab = require("support.lab")
local host = require("etcdrun.host")
local fs = require("etcdrun.core.fs")

local LINE = "198.51.100.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"

-- a dotfiles-style layout: d/ssh/known_hosts -> ../dotfiles/known_hosts
local function layout(content)
   local d = helper.tmpdir()
   assert(fs.mkdir(d .. "/ssh"))
   assert(fs.mkdir(d .. "/dotfiles"))
   if content then
      helper.write(d .. "/dotfiles/known_hosts", content)
      assert(fs.chmod(d .. "/dotfiles/known_hosts", 420))
   end
   assert(fs.symlink("../dotfiles/known_hosts", d .. "/ssh/known_hosts"))
   return d
end

local function link_target(p)
   local st = fs.stat(p, { follow = false })
   return st.type == "link" and st.target or st.type
end

describe("host.remember_host_key", function()
   it("appends through a symlinked known_hosts, keeping the link and the file's mode", function()
      local d = layout("other.example ssh-ed25519 AAAAold")
      assert(host.remember_host_key(d .. "/ssh/known_hosts", LINE))
      assert.are.equal("../dotfiles/known_hosts", link_target(d .. "/ssh/known_hosts"))
      assert.are.equal("other.example ssh-ed25519 AAAAold\n" .. LINE .. "\n", helper.read(d .. "/dotfiles/known_hosts"))
      assert.are.equal(420, fs.stat(d .. "/dotfiles/known_hosts").mode)
      assert.are.same({}, (function()
         local left = {}
         for _, name in ipairs(fs.list(d .. "/ssh")) do
            if name ~= "known_hosts" then
               left[#left + 1] = name
            end
         end
         return left
      end)())
   end)

   it("refuses a dangling known_hosts link, creating nothing", function()
      local d = layout(nil)
      local ok, err, code = host.remember_host_key(d .. "/ssh/known_hosts", LINE)
      assert.is_nil(ok)
      assert.are.equal("ENOENT", code)
      assert.are.equal(("known_hosts %s/ssh/known_hosts is a symlink to ../dotfiles/known_hosts, which does not "
         .. "exist: create that file to accept new host keys into it"):format(d), err)
      assert.are.equal("../dotfiles/known_hosts", link_target(d .. "/ssh/known_hosts"))
      assert.is_nil(helper.read(d .. "/dotfiles/known_hosts"))
   end)

   it("creates a missing known_hosts 0600 and appends to a plain one", function()
      local d = helper.tmpdir()
      local kh = d .. "/new/known_hosts"
      assert(host.remember_host_key(kh, LINE))
      assert.are.equal(LINE .. "\n", helper.read(kh))
      assert.are.equal(384, fs.stat(kh).mode)
      assert(host.remember_host_key(kh, "second"))
      assert.are.equal(LINE .. "\nsecond\n", helper.read(kh))
      assert.are.equal("file", link_target(kh))
   end)
end)

describe("accept-new with a symlinked known_hosts against a lab node", function()
   local dir, why_not
   setup(function()
      dir, why_not = lab.ensure(10)
   end)

   local function bare(kh, mode)
      return host.new({ name = "etcd5", address = "198.18.0.15", user = "root" },
         { known_hosts = kh, host_key = mode, read_ssh_config = false, identities = { dir .. "/id_ed25519" } })
   end

   it("adds the node's key to the file the link points to and keeps the link", function()
      if not dir then pending(why_not) return end
      local d = layout("")
      local kh = d .. "/ssh/known_hosts"
      local h = bare(kh, "accept-new")
      assert(h:connect())
      h:close()
      assert.are.equal("../dotfiles/known_hosts", link_target(kh))
      local content = helper.read(d .. "/dotfiles/known_hosts")
      assert.matches("^198%.18%.0%.15 ssh%-ed25519 AAAA%S+\n$", content)
      assert.is_truthy(helper.read(dir .. "/known_hosts"):find(content:match("ssh%-ed25519 (%S+)"), 1, true))
      -- strict checking reads the key back through the link
      local strict = bare(kh)
      assert(strict:connect())
      assert.are.equal("etcd5\n", strict:exec("hostname").stdout)
      strict:close()
   end)

   it("fails the host with a clear message when the link dangles", function()
      if not dir then pending(why_not) return end
      local d = layout(nil)
      local ok, err, code = bare(d .. "/ssh/known_hosts", "accept-new"):connect()
      assert.is_nil(ok)
      assert.are.equal("EHOSTKEY", code)
      assert.matches("is a symlink to %.%./dotfiles/known_hosts, which does not exist", err)
      assert.is_nil(helper.read(d .. "/dotfiles/known_hosts"))
   end)
end)
