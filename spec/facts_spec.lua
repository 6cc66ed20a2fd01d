-- Facts: the parser on canned output (default route, the fallbacks, the
-- Ansible view), then gathering for real on lab nodes etcd1..3 in one
-- round trip each, and on the controller.
local lab = require("support.lab")
local facts = require("etcdrun.facts")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local sched = require("etcdrun.sched")
local cjson = require("cjson")

local M = "@@etcdrun-facts:"

local function default(f)
   return { f.default_ipv4, f.default_interface, f.default_ipv4_source }
end

-- Output shaped like the gather script's, for the parser.
local function output(o)
   local function link(i, name, v4, v6, flags, ltype)
      local info = {}
      for _, a in ipairs(v4 or {}) do
         local addr, p = a:match("^(.-)/(%d+)$")
         info[#info + 1] = { family = "inet", ["local"] = addr, prefixlen = tonumber(p) }
      end
      for _, a in ipairs(v6 or {}) do
         local addr, p = a:match("^(.-)/(%d+)$")
         info[#info + 1] = { family = "inet6", ["local"] = addr, prefixlen = tonumber(p) }
      end
      return { ifindex = i, ifname = name, flags = flags or { "BROADCAST", "UP" }, mtu = 1500,
         link_type = ltype or "ether", address = ("02:00:00:00:00:%02x"):format(i), addr_info = info }
   end
   local links = { link(1, "lo", { "127.0.0.1/8" }, { "::1/128" }, { "LOOPBACK", "UP" }, "loopback") }
   for i, l in ipairs(o.links or {}) do
      links[#links + 1] = link(i + 1, l[1], l[2], l[3], l[4])
   end
   return table.concat({
      M .. "hostname", o.hostname or "etcd1",
      M .. "fqdn", o.fqdn or "etcd1.lab",
      M .. "kernel", "6.1.0-18-amd64",
      M .. "arch", o.arch or "x86_64",
      M .. "systemd", o.systemd or "yes",
      M .. "os", o.os or 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
         .. 'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian',
      M .. "addr", o.addr or cjson.encode(links),
      M .. "route4", o.route4 or "[]",
      M .. "route6", o.route6 or "[]",
      M .. "end", "",
   }, "\n")
end

describe("facts.parse", function()
   local two = {
      { "eth0", { "10.0.0.5/24" }, { "fe80::1/64" } },
      { "eth1", { "192.168.56.11/24", "192.168.56.99/24" } },
   }



   it("reads names, OS, architecture and systemd", function()
      local f = facts.parse(output({ arch = "aarch64", systemd = "no" }))
      assert.are.same({ "etcd1", "etcd1.lab", "6.1.0-18-amd64", "aarch64", "arm64", false },
         { f.hostname, f.fqdn, f.kernel, f.arch, f.arch_go, f.systemd })
      assert.are.same({ id = "debian", version_id = "12", pretty_name = "Debian GNU/Linux 12 (bookworm)",
         name = "Debian GNU/Linux", version_codename = "bookworm" }, f.os)
      assert.are.equal("amd64", facts.parse(output({})).arch_go)
   end)

   it("lists interfaces with their addresses, MAC and state", function()
      local f = facts.parse(output({ links = two }))
      assert.are.same({ "192.168.56.11", "192.168.56.99" }, f.interfaces.eth1.ipv4)
      assert.are.same({ "192.168.56.11/24", "192.168.56.99/24" }, f.interfaces.eth1.ipv4_cidr)
      assert.are.same({ "fe80::1" }, f.interfaces.eth0.ipv6)
      assert.are.equal("02:00:00:00:00:02", f.interfaces.eth0.mac)
      assert.is_true(f.interfaces.eth0.up)
      assert.is_true(f.interfaces.lo.loopback)
      assert.is_false(f.interfaces.eth0.loopback)
      -- the seed's private address, as a one-liner either way
      assert.are.equal("192.168.56.11", f.interfaces.eth1.ipv4[1])
      assert.are.equal("192.168.56.11", facts.address_of(f, "eth1"))
      assert.is_nil(facts.address_of(f, "eth7"))
   end)

   it("takes the default IPv4 from the default route with the lowest metric", function()
      local routes = cjson.encode({
         { dst = "default", gateway = "10.0.0.1", dev = "eth0", metric = 200 },
         { dst = "default", gateway = "192.168.56.1", dev = "eth1", metric = 100 },
      })
      local f = facts.parse(output({ links = two, route4 = routes }), "10.0.0.5")
      assert.are.same({ "192.168.56.11", "eth1", "route" }, default(f))
      routes = cjson.encode({ { dst = "default", dev = "eth0", prefsrc = "10.0.0.77" } })
      assert.are.equal("10.0.0.77", facts.parse(output({ links = two, route4 = routes })).default_ipv4)
   end)

   it("falls back to the address the host is reached at, then to the first non-loopback", function()
      local f = facts.parse(output({ links = two }), "192.168.56.99")
      assert.are.same({ "192.168.56.99", "eth1", "connection" }, default(f))
      f = facts.parse(output({ links = two }), "etcd1.example.com")
      assert.are.same({ "10.0.0.5", "eth0", "first" }, default(f))
      f = facts.parse(output({}))
      assert.is_nil(f.default_ipv4)
   end)

   it("copes with no ip tool and an odd os-release", function()
      local f = facts.parse(output({ addr = "", route4 = "", route6 = "sh: ip: not found",
         os = "ID=alpine\nNAME='Alpine Linux'\n# comment\nVERSION_ID=3.19.1\n" }), "10.0.0.5")
      assert.are.same({}, f.interfaces)
      assert.is_nil(f.default_ipv4)
      assert.are.same({ "alpine", "3.19.1", "Alpine Linux" }, { f.os.id, f.os.version_id, f.os.pretty_name })
      assert.are.equal("Alpine", f.ansible.distribution)
   end)

   it("gives Ansible's names for templates written for Ansible", function()
      local links = { { "eth0", { "10.0.0.5/24" } }, { "br-lan", { "172.16.0.1/16" } } }
      local routes = cjson.encode({ { dst = "default", gateway = "10.0.0.1", dev = "eth0" } })
      local a = facts.parse(output({ links = links, route4 = routes })).ansible
      assert.are.same({ address = "10.0.0.5", prefix = "24", netmask = "255.255.255.0" }, a.eth0.ipv4)
      assert.are.equal("255.255.0.0", a.br_lan.ipv4.netmask)
      assert.are.same({ "lo", "eth0", "br-lan" }, a.interfaces)
      assert.are.same({ "10.0.0.5", "172.16.0.1" }, a.all_ipv4_addresses)
      assert.are.same({ address = "10.0.0.5", interface = "eth0" }, a.default_ipv4)
      assert.are.same({ "etcd1", "Debian", "Debian", "12", "bookworm", "systemd", "x86_64" }, { a.hostname,
         a.distribution, a.os_family, a.distribution_major_version, a.distribution_release, a.service_mgr,
         a.architecture })
      local v = facts.ansible_vars(facts.parse(output({ links = links })))
      assert.are.equal("10.0.0.5", v.ansible_facts.eth0.ipv4.address)
      assert.are.equal("10.0.0.5", v.ansible_eth0.ipv4.address)
      assert.are.equal("etcd1", v.ansible_hostname)
   end)
end)

describe("facts.gather", function()
   -- a host object whose exec answers as told, counting calls
   local function fake(answer)
      local h = { name = "fake", address = "10.0.0.5", calls = 0 }
      function h.exec(self)
         self.calls = self.calls + 1
         return answer()
      end
      return h
   end

   it("returns the host's failure as nil, err, code", function()
      local f, err, code = facts.gather(fake(function()
         return nil, "ssh.connect: Connection refused (etcd9)", "ECONNREFUSED"
      end))
      assert.is_nil(f)
      assert.are.same({ "ssh.connect: Connection refused (etcd9)", "ECONNREFUSED" }, { err, code })
      f, err, code = facts.gather(fake(function()
         return { stdout = "", stderr = "sh: 1: cannot fork\n", status = 2 }
      end))
      assert.is_nil(f)
      assert.are.equal("EFACTS", code)
      assert.are.equal("facts: gathering failed on fake (exit 2): sh: 1: cannot fork", err)
   end)

   it("gathers the controller's facts", function()
      local c = localhost.new()
      local f = assert(facts.gather(c))
      local p = io.popen("hostname; uname -m; test -d /run/systemd/system && echo yes || echo no")
      local hostname, arch, sd = p:read("l"), p:read("l"), p:read("l")
      p:close()
      assert.are.same({ hostname, arch, sd == "yes" }, { f.hostname, f.arch, f.systemd })
      assert.are.same({ "127.0.0.1" }, f.interfaces.lo.ipv4)
      assert.is_string(f.os.id)
   end)

   describe("on lab nodes", function()
      local dir, why_not
      local hosts = {}

      setup(function()
         dir, why_not = lab.ensure(10)
         if dir then
            for i = 1, 3 do
               hosts[i] = host.new({ name = "etcd" .. i, address = ("198.18.0.%d"):format(10 + i), user = "root" },
                  { ssh_config = dir .. "/ssh_config" })
            end
         end
      end)

      teardown(function()
         for _, h in ipairs(hosts) do
            h:close()
         end
      end)

      it("gathers three nodes in parallel, one command each", function()
         if not dir then pending(why_not) return end
         local fns, calls = {}, {}
         for i, h in ipairs(hosts) do
            assert(h:connect())
            -- count the round trips: every remote operation goes through exec
            local real = h.exec
            calls[i] = 0
            h.exec = function(self, ...)
               calls[i] = calls[i] + 1
               return real(self, ...)
            end
            fns[i] = function()
               return assert(facts.gather(h))
            end
         end
         local results = sched.run(fns)
         for i, h in ipairs(hosts) do
            h.exec = nil
            assert.is_true(results[i].ok, results[i].err)
            local f = results[i].values[1]
            local addr = ("198.18.0.%d"):format(10 + i)
            assert.are.equal(1, calls[i])
            assert.are.same({ "etcd" .. i, "debian", "12", "x86_64", "amd64", true },
               { f.hostname, f.os.id, f.os.version_id, f.arch, f.arch_go, f.systemd })
            -- the lab's nodes are on eth0 and have no default route
            assert.are.same({ addr }, f.interfaces.eth0.ipv4)
            assert.are.equal(addr, facts.address_of(f, "eth0"))
            assert.are.same({ addr, "eth0", "connection" }, default(f))
            assert.are.equal(addr, f.ansible.eth0.ipv4.address)
            assert.are.equal(addr, f.ansible.default_ipv4.address)
            assert.is_true(f.interfaces.eth0.up)
            assert.matches("^%x%x:%x%x:", f.interfaces.eth0.mac)
         end
      end)
   end)
end)
