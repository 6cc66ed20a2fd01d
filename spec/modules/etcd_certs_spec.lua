-- etcd_certs decides from what the handshakes showed and the controller's
-- files (no cluster needed); the lab case (renewal with no restart, the new
-- serials served) is in spec/certs_spec.lua.
local plancases = require("support.plancases")

local NOW = 1800000000
local DAY = 86400
local ARGS = { members = { { name = "etcd1" } }, pki_dir = "/p", ca = "/p/ca.crt", cert = "/p/admin.crt",
   key = "/p/admin.key" }

local function served(serial, want, days, chain)
   return { serial = serial, want = want or serial, not_after = NOW + (days or 800) * DAY, chain = chain ~= false }
end

local function state(server, peer, ca_days)
   return { now = NOW, ca = { not_after = NOW + (ca_days or 3000) * DAY }, clients = { admin = { not_after = NOW
      + 700 * DAY } }, members = { { name = "etcd1", address = "10.0.0.1", server = server, peer = peer } } }
end

describe("etcd_certs plan", function()
   plancases.run(it, "etcd_certs", {
      { name = "reports the earliest expiry of each kind when all is in order",
         state = state(served("AA", nil, 800), served("BB", nil, 790)), args = ARGS,
         want = { changed = false, msg = "certificates in use, earliest expiry: CA 2035-04-03 (the cluster), server"
            .. " 2029-03-25 (etcd1), peer 2029-03-15 (etcd1), client 2028-12-15 (admin)" } },
      { name = "names a member that serves an older certificate than the one issued last",
         state = state(served("AA", "CC"), served("BB")), args = ARGS, also = function(p)
            assert.matches("etcd1 serves the server certificate with serial AA on its client port, not the one issued"
               .. " last (CC)", p.msg, 1, true)
         end, want = { failed = true } },
      { name = "fails a certificate that does not chain to the CA or name the address",
         state = state(served("AA"), { serial = "BB", want = "BB", not_after = NOW + 800 * DAY, chain = false,
            why = "certificate signature failure" }), args = ARGS, also = function(p)
            assert.matches("etcd1's peer certificate does not verify against the CA for 10.0.0.1: certificate"
               .. " signature failure", p.msg, 1, true)
         end, want = { failed = true } },
      { name = "fails what expires within the renew window, the CA too",
         state = state(served("AA", nil, 10), served("BB"), 20), args = ARGS, also = function(p)
            assert.matches("the cluster's CA certificate expires", p.msg, 1, true)
            assert.matches("etcd1's server certificate expires", p.msg, 1, true)
         end, want = { failed = true } },
      { name = "names a port that does not answer", state = state({ err = "connection refused" }, served("BB")),
         args = ARGS, also = function(p)
            assert.matches("etcd1: no handshake on its client port: connection refused", p.msg, 1, true)
         end, want = { failed = true } },
   })
end)
