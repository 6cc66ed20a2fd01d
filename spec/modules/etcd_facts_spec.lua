-- etcd_facts decides from recorded state (what the node's one exec and its
-- facts said), no node needed.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_facts"))

local FACTS = {
   arch = "x86_64", arch_go = "amd64", hostname = "etcd1", default_ipv4 = "10.0.0.5",
   interfaces = { eth0 = { ipv4 = { "198.18.0.11" } }, eth1 = { ipv4 = { "10.0.0.5" } },
      lo = { ipv4 = { "127.0.0.1" } } },
}

local function state(over)
   local s = { kv = { uid = "0", systemd = "yes", now = "1000", active = "inactive", has_data = "no" }, ports = {},
      controller_now = 1000, facts = FACTS, reached_at = "198.18.0.11", ca_fingerprint = nil }
   for k, v in pairs(over or {}) do
      if k == "kv" then
         for kk, vv in pairs(v) do
            s.kv[kk] = vv
         end
      else
         s[k] = v
      end
   end
   return s
end

local ARGS = { data_dir = "/var/lib/etcd/etcd1.etcd" }

local function args(over)
   local a = {}
   for k, v in pairs(ARGS) do
      a[k] = v
   end
   for k, v in pairs(over or {}) do
      a[k] = v
   end
   return a
end

local CASES = {
   { "a ready node, reached at its own address", state(), args(),
      { address = "198.18.0.11", running = false, has_data = false, problems = {} } },
   { "a running member with data and its CA", state({ kv = { active = "active", has_data = "yes" },
      ca_fingerprint = "AB:CD" }), args(),
      { address = "198.18.0.11", running = true, has_data = true, ca_fingerprint = "AB:CD", problems = {} } },
   { "activating counts as running", state({ kv = { active = "activating" } }), args(), { running = true } },
   { "a pinned address that is the node's", state(), args({ address = "10.0.0.5" }), { address = "10.0.0.5" } },
   { "a pinned address that is not the node's", state(), args({ address = "10.9.9.9" }), { address = "10.9.9.9",
      problems = { "etcd_address 10.9.9.9 is not an address of this node (it has 10.0.0.5, 198.18.0.11)" } } },
   { "an interface's address", state(), args({ interface = "eth1" }), { address = "10.0.0.5" } },
   { "an interface without IPv4", state(), args({ interface = "eth9" }),
      { address = "", problems = { "etcd_interface eth9 has no IPv4 address" } } },
   { "reached by name: the default route's address", state({ reached_at = "etcd1.example" }), args(),
      { address = "10.0.0.5" } },
   { "not root, no systemd", state({ kv = { uid = "1000", systemd = "no" } }), args(), { problems = {
      "commands run as uid 1000: root (or become) is needed", "systemd is not running (PID 1 must be systemd)" } } },
   { "a clock 2 minutes off", state({ kv = { now = "1120" } }), args(),
      { problems = { "clock is 120 s off the controller's (certificates depend on time; limit 60 s)" } } },
   { "a port held by another program", state({ ports = { 'LISTEN 0 4096 *:2379 *:* users:(("nginx",pid=7))' } }),
      args(), { problems = { 'port in use by another program: LISTEN 0 4096 *:2379 *:* users:(("nginx",pid=7))' } } },
   { "a port held by etcd is fine", state({ ports = { 'LISTEN 0 4096 *:2379 *:* users:(("etcd",pid=7,fd=6))' } }),
      args(), { problems = {} } },
   { "an architecture without a release", state({ facts = setmetatable({ arch = "riscv64", arch_go = "riscv64" },
      { __index = FACTS }) }), args(), { problems = { "architecture riscv64 (riscv64) has no etcd release" } } },
}

describe("etcd_facts plan", function()
   for _, c in ipairs(CASES) do
      it(c[1], function()
         local p = module.plan(mod, c[2], c[3])
         assert.is_false(p.changed)
         for k, want in pairs(c[4]) do
            assert.are.same(want, p.result[k], k)
         end
      end)
   end
end)
