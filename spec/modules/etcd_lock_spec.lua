-- etcd_lock decides from the lock as gather read it (held or not, by this
-- run, by a run that is gone); the lab scenario of two runs at once is in
-- spec/membership_spec.lua.
local plancases = require("support.plancases")

local ARGS = { endpoints = { "https://a:2379" }, ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key" }
local HOLDER = "ops@ctl1 (pid 4242, since 2026-11-25 10:00:00 UTC, tls-cluster.lua)"

describe("etcd_lock plan", function()
   plancases.run(it, "etcd_lock", {
      { name = "takes a free lock", state = { via = "u", held = false, mine = false, stale = false }, args = ARGS,
         want = { changed = true, msg = "would take the cluster's lock" } },
      { name = "refuses while another run holds it, naming the holder",
         state = { via = "u", held = true, holder = HOLDER, mine = false, stale = false }, args = ARGS,
         want = { failed = true, msg = "another run holds the cluster's lock (etcdrun/lock): " .. HOLDER
            .. ". Wait for it to end; a run that died gives the lock up 900 s after it took it" } },
      { name = "takes over the lock of a run of this machine that is gone",
         state = { via = "u", held = true, holder = HOLDER, mine = false, stale = true }, args = ARGS,
         want = { changed = true, msg = "would take over the lock of a run that is gone (" .. HOLDER .. ")" } },
      { name = "renews its own lock", state = { via = "u", held = true, holder = HOLDER, mine = true }, args = ARGS,
         want = { changed = true, msg = "would renew the cluster's lock" } },
      { name = "gives back only its own lock", state = { via = "u", held = true, holder = HOLDER, mine = false },
         args = plancases.merge(ARGS, { state = "absent" }),
         want = { changed = false, msg = "this run does not hold the cluster's lock" } },
      { name = "gives back its lock", state = { via = "u", held = true, holder = HOLDER, mine = true },
         args = plancases.merge(ARGS, { state = "absent" }),
         want = { changed = true, msg = "would give the cluster's lock back" } },
   })
end)
