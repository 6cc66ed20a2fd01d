-- etcd_health decides from what the probes found, no cluster needed.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_health"))
local ARGS = { endpoints = { "https://a:2379", "https://b:2379" }, ca = "/p/ca.crt", cert = "/p/h.crt",
   key = "/p/h.key", timeout = 30 }

describe("etcd_health plan", function()
   it("is ok when every member is healthy", function()
      local p = module.plan(mod, { healthy = true }, ARGS)
      assert.is_false(p.changed)
      assert.are.equal("2 members healthy", p.msg)
   end)

   it("fails with the journal and what its messages mean", function()
      local p = module.plan(mod, { healthy = false, why = "https://b:2379: connection refused",
         journal = "... rejected connection: remote error: tls: bad certificate; incompatible key usage\nfailed\n" },
         ARGS, { host = "etcd2" })
      assert.is_true(p.failed)
      assert.matches("did not become healthy within 30 s: https://b:2379: connection refused", p.msg)
      assert.matches("%-%-%- etcd2: journalctl %-u etcd", p.msg)
      assert.matches("=> etcd2: a peer certificate lacks clientAuth", p.msg)
   end)

   it("under --check reports instead of waiting or failing", function()
      local p = module.plan(mod, { healthy = false, why = "refused" }, ARGS, { check = true })
      assert.is_true(p.skipped)
      assert.matches("not healthy now %(refused%): a run would wait up to 30 s", p.msg)
   end)
end)
