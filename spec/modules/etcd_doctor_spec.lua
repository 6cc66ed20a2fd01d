-- etcd_doctor's findings from recorded state: every check, including the
-- one the lab cannot cause safely (members' hashkv differing).
local plancases = require("support.plancases")

local NOW = 1800000000
local ARGS = { members = {}, ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key",
   fix = { install = "etcdrun -i hosts tls-cluster.lua", defrag = "etcdrun -i hosts defrag.lua",
      restore = "etcdrun -i hosts restore.lua -e snapshot=FILE" } }

local function cert(days, ip)
   return { not_after = NOW + days * 86400 + 3600, san = { ip = { ip } } }
end

local function member(i, over)
   local m = { name = "etcd" .. i, url = "https://10.0.0." .. i .. ":2379", address = "10.0.0." .. i, healthy = true,
      status = { member_id = tostring(i), leader = "1", raft_index = 100, revision = 50, db_size = 1048576,
         db_size_in_use = 1000000 }, version = { server = "3.4.23", cluster = "3.4.0" },
      client_cert = cert(300, "10.0.0." .. i), peer_cert = cert(300, "10.0.0." .. i) }
   for k, v in pairs(over or {}) do
      m[k] = v
   end
   return m
end

local function healthy(over)
   local s = { now = NOW, members = { member(1), member(2), member(3) }, alarms = {},
      list = { { id = "1", name = "etcd1", peer_urls = {}, is_learner = false },
         { id = "2", name = "etcd2", peer_urls = {}, is_learner = false },
         { id = "3", name = "etcd3", peer_urls = {}, is_learner = false } },
      hashkv = { revision = 50, { url = "u1", hash = 7 }, { url = "u2", hash = 7 }, { url = "u3", hash = 7 } },
      nodes = { etcd1 = { skew = 0, enabled = "enabled", initial_cluster_state = "existing" } } }
   for k, v in pairs(over or {}) do
      s[k] = v
   end
   return s
end

-- a case: the state, and the one finding expected (level, check, what)
local function finds(name, state, level, check, what, fix, args)
   return { name = name, state = state, args = plancases.merge(ARGS, args), want = {}, also = function(p)
      local f = p.result.findings
      assert.are.equal(1, #f, require("cjson").encode(f))
      assert.are.equal(level, f[1].level)
      assert.are.equal(check, f[1].check)
      assert.are.equal(what, f[1].what)
      assert.is_string(f[1].means)
      if fix then
         assert.are.equal(fix, f[1].fix)
      end
      assert.are.equal(level == "attention" or nil, p.failed)
   end }
end

local function with_member(i, over)
   local s = healthy()
   s.members[i] = member(i, over)
   return s
end

describe("etcd_doctor plan", function()
   plancases.run(it, "etcd_doctor", {
      { name = "a healthy cluster: nothing", state = healthy(), args = ARGS,
         want = { changed = false, msg = "3 members: nothing needs attention" } },
      finds("a member that does not answer", with_member(3, { status = false, status_err = "refused" }),
         "attention", "health", "etcd3 does not answer on https://10.0.0.3:2379 (refused)"),
      finds("a member that answers unhealthy", with_member(2, { healthy = false, health_err = "HTTP 503" }),
         "attention", "health", "etcd2 answers but is not healthy (HTTP 503)"),
      finds("members disagreeing on the leader", with_member(3, { status = plancases.merge(member(3).status,
         { leader = "3" }) }), "attention", "leader", "members disagree on the leader (1, 3)"),
      finds("no leader", healthy({ members = { member(1, { status = plancases.merge(member(1).status,
         { leader = "0" }) }) }, list = { { id = "1", name = "etcd1", peer_urls = {} } }, hashkv = false }),
         "attention", "leader", "a member sees no leader"),
      finds("a member far behind", with_member(2, { status = plancases.merge(member(2).status, { raft_index = 5 }) }),
         "attention", "raft index", "etcd2 is 95 raft entries behind", nil, { index_spread = 10 }),
      finds("a named learner of the inventory", healthy({ list = { { id = "1", name = "etcd1", peer_urls = {} },
         { id = "2", name = "etcd2", peer_urls = {} },
         { id = "3", name = "etcd3", peer_urls = {}, is_learner = true } } }),
         "attention", "learner", "etcd3 is a learner, not a voter", "etcdrun -i hosts tls-cluster.lua (promotes it)"),
      finds("an unstarted learner: removed by its hex ID", healthy({ list = {
         { id = "1", name = "etcd1", peer_urls = {} }, { id = "2", name = "etcd2", peer_urls = {} },
         { id = "3", name = "etcd3", peer_urls = {} },
         { id = "12930724621108900649", name = "", peer_urls = { "https://10.0.0.4:2380" }, is_learner = true } } }),
         "attention", "learner", "(unstarted https://10.0.0.4:2380) is a learner, not a voter",
         "etcdctl member remove b37329887197f329 (on a member: it never started)"),
      finds("a member not in the inventory", healthy({ list = { { id = "1", name = "etcd1", peer_urls = {} },
         { id = "2", name = "etcd2", peer_urls = {} }, { id = "3", name = "etcd3", peer_urls = {} },
         { id = "4", name = "etcd4", peer_urls = {} } } }), "attention", "membership",
         "etcd4 is a member but not in the inventory"),
      finds("NOSPACE (members' unhealthiness is its doing)", healthy({ alarms = { { member_id = "2",
         alarm = "NOSPACE" } }, members = { member(1, { healthy = false }), member(2, { healthy = false }),
         member(3, { healthy = false }) } }), "attention", "alarm", "NOSPACE raised by etcd2",
         "etcdrun -i hosts defrag.lua"),
      finds("CORRUPT", healthy({ alarms = { { member_id = "1", alarm = "CORRUPT" } } }), "attention", "alarm",
         "CORRUPT raised by etcd1", "etcdrun -i hosts restore.lua -e snapshot=FILE"),
      finds("a DB near the quota", healthy({ nodes = { etcd1 = { quota_backend_bytes = 1200000 } } }), "attention",
         "db size", "etcd1: DB 1.0 MiB of a 1.1 MiB quota (87%)"),
      finds("a fragmented DB", with_member(2, { status = plancases.merge(member(2).status,
         { db_size = 100 * 1048576, db_size_in_use = 10 * 1048576 }) }), "advice", "fragmentation",
         "etcd2: 10.0 MiB of its 100.0 MiB DB in use"),
      finds("hashkv differing", healthy({ hashkv = { revision = 50, { url = "u1", hash = 7 }, { url = "u2", hash = 7 },
         { url = "u3", hash = 8 } } }), "attention", "hashkv",
         "members' key-value hashes differ at revision 50 (u3 differs)"),
      finds("mixed versions", with_member(3, { version = { server = "3.5.16", cluster = "3.4.0" } }), "advice",
         "versions", "members run different versions (3.4.23, 3.5.16)"),
      finds("a certificate about to expire", with_member(1, { peer_cert = cert(10, "10.0.0.1") }), "attention",
         "certificate", "etcd1 serves a peer certificate that expires in 10 days"),
      finds("a certificate without the member's address", with_member(2, { client_cert = cert(300, "10.9.9.9") }),
         "attention", "certificate", "etcd2's client certificate does not name 10.0.0.2"),
      finds("a clock off", healthy({ nodes = { etcd3 = { skew = -5 } } }), "attention", "clock",
         "etcd3's clock is -5 s off the controller's"),
      finds("the unit not enabled", healthy({ nodes = { etcd2 = { enabled = "disabled" } } }), "attention", "unit",
         "etcd2: etcd.service is disabled"),
      finds("initial-cluster-state still new", healthy({ nodes = { etcd1 = { initial_cluster_state = "new" } } }),
         "advice", "configuration", "etcd1 is still configured with initial-cluster-state: new"),
   })
end)
