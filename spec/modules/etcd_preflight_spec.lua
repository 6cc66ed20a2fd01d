-- etcd_preflight decides from the members' facts and the controller's PKI,
-- no node needed: every problem at once, the CA guard, unreachable members.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_preflight"))

local function member(address, over)
   local m = { address = address, running = false, has_data = false, problems = {} }
   for k, v in pairs(over or {}) do
      m[k] = v
   end
   return m
end

local ORDER = { "etcd1", "etcd2", "etcd3" }

local function run(members, state, extra)
   local args = { members = members, order = ORDER, pki_dir = "/srv/pki", group_size = 3 }
   for k, v in pairs(extra or {}) do
      args[k] = v
   end
   state = state or { ca = "AA" }
   if not state.cas then
      state.cas = state.ca and { [state.ca] = true } or {}
   end
   return module.plan(mod, state, args)
end

local READY = { etcd1 = member("10.0.0.1"), etcd2 = member("10.0.0.2"), etcd3 = member("10.0.0.3") }

describe("etcd_preflight plan", function()
   it("passes ready members and names the PKI directory", function()
      local p = run(READY)
      assert.is_nil(p.failed)
      assert.are.equal("3 members ready; PKI /srv/pki", p.msg)
      assert.are.equal("PKI (etcd_pki_dir): /srv/pki", p.result.report)
   end)

   it("names an unreachable or failed member", function()
      local p = run({ etcd1 = READY.etcd1, etcd2 = { failed = true, unreachable = true, msg = "ssh: timeout" },
         etcd3 = false })
      assert.is_true(p.failed)
      assert.matches("etcd2: unreachable %(ssh: timeout%): every member must be up", p.msg)
      assert.matches("etcd3: no preflight result: every member must be up", p.msg)
   end)

   it("lists every member's problems and a shared address at once", function()
      local p = run({ etcd1 = member("10.0.0.1", { problems = { "systemd is not running" } }),
         etcd2 = member("10.0.0.1"), etcd3 = member("10.0.0.3", { problems = { "clock is off" } }) })
      assert.is_true(p.failed)
      assert.matches("etcd1: systemd is not running", p.msg)
      assert.matches("etcd2: address 10.0.0.1 is also etcd1's", p.msg)
      assert.matches("etcd3: clock is off", p.msg)
   end)

   it("refuses a running cluster whose CA the controller lacks", function()
      local running = {}
      for n, m in pairs(READY) do
         running[n] = member(m.address, { running = true, has_data = true, ca_fingerprint = "BB" })
      end
      local p = run(running, { ca = nil, peer_ips = {} })
      assert.is_true(p.failed)
      assert.matches("etcd1, etcd2, etcd3: etcd runs %(or has data%) trusting the CA in /etc/etcd/ssl/ca.crt, "
         .. "SHA%-256 BB; the PKI directory /srv/pki has no ca.crt", p.msg)
      p = run(running, { ca = "AA", peer_ips = {} })
      assert.matches("holds another CA, SHA%-256 AA", p.msg)
      p = run(running, { ca = "BB", peer_ips = {} })
      assert.is_nil(p.failed)
   end)

   it("refuses during a CA rotation, pointing to it; the rotation itself accepts both CAs", function()
      local running = {}
      for n, m in pairs(READY) do
         running[n] = member(m.address, { running = true, has_data = true, ca_fingerprint = "NEXT" })
      end
      local p = run(running, { ca = "OLD", cas = { OLD = true }, rotating = true })
      assert.is_true(p.failed)
      assert.matches("a CA rotation is in progress (/srv/pki/ca-next.crt): finish it with playbooks/rotate-ca.lua",
         p.msg, 1, true)
      p = run(running, { ca = "OLD", cas = { OLD = true, NEXT = true }, rotating = true }, { rotation = true })
      assert.is_nil(p.failed)
   end)

   it("lets a stopped member without data take a new CA", function()
      local p = run({ etcd1 = member("10.0.0.1", { ca_fingerprint = "OLD" }), etcd2 = READY.etcd2,
         etcd3 = READY.etcd3 }, { ca = "NEW", peer_ips = {} })
      assert.is_nil(p.failed)
   end)

   it("leaves a member whose address changed to the membership plan (it moves)", function()
      local p = run({ etcd1 = READY.etcd1, etcd2 = member("10.0.0.22", { has_data = true }), etcd3 = READY.etcd3 },
         { ca = "AA" })
      assert.is_nil(p.failed)
   end)

   it("warns that a --limit covers part of the group", function()
      local p = run(READY, nil, { group_size = 5 })
      assert.is_true(p.failed)
      assert.matches("the play covers 3 of the 5 hosts of the group", p.msg)
   end)
end)
