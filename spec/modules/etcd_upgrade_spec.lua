-- etcd_upgrade decides from the versions the members reported (no cluster
-- needed); the rules themselves are spec/etcd_versions_spec.lua's. The lab
-- upgrade 3.4.23 -> 3.5.16 under load is in spec/upgrade_spec.lua.
local plancases = require("support.plancases")

local ARGS = { version = "3.5.16", endpoints = { "https://a:2379" }, ca = "/p/ca.crt", cert = "/p/admin.crt",
   key = "/p/admin.key" }

local function state(v1, v2, v3, cluster)
   return { versions = { ["https://a:2379"] = v1, ["https://b:2379"] = v2, ["https://c:2379"] = v3 },
      names = { ["https://a:2379"] = "etcd1", ["https://b:2379"] = "etcd2", ["https://c:2379"] = "etcd3" },
      cluster = cluster or "3.4.0", unanswered = {} }
end

describe("etcd_upgrade plan", function()
   plancases.run(it, "etcd_upgrade", {
      { name = "says nothing changes when every member runs the target", state = state("3.5.16", "3.5.16", "3.5.16"),
         args = ARGS, also = function(p)
            assert.are.equal("none", p.result.kind)
            assert.is_nil(p.result.report)
         end, want = { changed = false } },
      { name = "plans a minor upgrade: snapshot, followers, the leader last, the cluster version",
         state = state("3.4.23", "3.4.23", "3.4.23"), args = ARGS, also = function(p)
            assert.matches("upgrade plan: etcd1 3.4.23, etcd2 3.4.23, etcd3 3.4.23 -> 3.5.16 (a minor upgrade): a"
               .. " verified snapshot, then one member at a time", p.result.report, 1, true)
            assert.are.equal("minor", p.result.kind)
         end, want = { changed = false } },
      { name = "refuses what etcd's rules forbid, before anything moves", state = state("3.4.23", "3.4.23", "3.4.23"),
         args = plancases.merge(ARGS, { version = "3.6.5" }), want = { failed = true, msg = "etcd_version 3.6.5:"
            .. " refused, nothing was changed (members run etcd1 3.4.23, etcd2 3.4.23, etcd3 3.4.23; cluster version"
            .. " 3.4.0):\n  etcd1, etcd2, etcd3 run 3.4: etcd upgrades one minor at a time; upgrade to the newest 3.5"
            .. " patch first, then to 3.6.5" } },
      { name = "refuses a minor upgrade while the cluster version has not settled (just after a bootstrap)",
         state = state("3.4.23", "3.4.23", "3.4.23", "3.0.0"), args = ARGS, also = function(p)
            assert.matches("the cluster version is 3.0.0, not yet the members' 3.4: a minor upgrade waits until it"
               .. " has settled", p.msg, 1, true)
         end, want = { failed = true } },
      { name = "refuses a 3.4 -> 3.5 roll with authentication on",
         state = plancases.merge(state("3.4.23", "3.4.23", "3.4.23"), { auth = true }), args = ARGS,
         also = function(p)
            assert.matches("with authentication enabled is not supported", p.msg, 1, true)
         end, want = { failed = true } },
      { name = "verifies the roll took: every member and the cluster version",
         state = state("3.5.16", "3.5.16", "3.5.16", "3.5.0"), args = plancases.merge(ARGS, { verify = true }),
         want = { changed = false,
            msg = "members run etcd1 3.5.16, etcd2 3.5.16, etcd3 3.5.16; cluster version 3.5.0" } },
      { name = "fails the verification while a member or the cluster version lags",
         state = state("3.5.16", "3.4.23", "3.5.16", "3.4.0"), args = plancases.merge(ARGS, { verify = true }),
         want = { failed = true, msg = "the upgrade to 3.5.16 did not complete: members run etcd1 3.5.16, etcd2"
            .. " 3.4.23, etcd3 3.5.16; cluster version 3.4.0" } },
   })
end)
