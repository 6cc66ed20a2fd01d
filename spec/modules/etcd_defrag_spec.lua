-- etcd_defrag's plan from recorded member statuses and alarms: the order
-- (followers by name, the leader last after handing over to the most
-- caught-up follower), what is worth defragmenting, NOSPACE recovery, and
-- the refusals.
local plancases = require("support.plancases")

local MIB = 1048576
local ARGS = { members = {}, ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key" }

local function m(i, size, used, over)
   local t = { name = "etcd" .. i, url = "https://" .. i .. ":2379", status = { member_id = tostring(i),
      leader = "2", raft_index = 100 + i, revision = 40 + i, db_size = size * MIB, db_size_in_use = used * MIB } }
   for k, v in pairs(over or {}) do
      t[k] = v
   end
   return t
end

local function ops(p)
   local t = {}
   for _, s in ipairs(p.steps or {}) do
      t[#t + 1] = s.op .. (s.name and (" " .. s.name) or "") .. (s.revision and (" " .. s.revision) or "")
   end
   return table.concat(t, ", ")
end

local function steps(want)
   return function(p)
      assert.are.equal(want, ops(p))
   end
end

describe("etcd_defrag plan", function()
   plancases.run(it, "etcd_defrag", {
      { name = "followers first, the leader last after handing over to the most caught-up follower",
         state = { members = { m(1, 10, 1), m(2, 10, 1), m(3, 10, 1) }, alarms = {} }, args = ARGS,
         want = { changed = true }, also = steps("defrag etcd1, defrag etcd3, move_leader etcd3, defrag etcd2") },
      { name = "only members with at least min_share free",
         state = { members = { m(1, 10, 9.5), m(2, 10, 9.5), m(3, 10, 5) }, alarms = {} }, args = ARGS,
         want = { changed = true }, also = steps("defrag etcd3") },
      { name = "nothing to reclaim", state = { members = { m(1, 10, 10), m(2, 10, 9.9), m(3, 10, 10) }, alarms = {} },
         args = ARGS, want = { changed = false, msg = "nothing to reclaim (no DB has 10% and 1.0 MiB of its file"
            .. " free)" } },
      { name = "a small DB is not worth it, whatever its share free",
         state = { members = { m(1, 0.5, 0.1), m(2, 0.5, 0.1), m(3, 0.5, 0.1) }, alarms = {} }, args = ARGS,
         want = { changed = false } },
      { name = "force: every member", state = { members = { m(1, 10, 10), m(2, 10, 10), m(3, 10, 10) }, alarms = {} },
         args = plancases.merge(ARGS, { force = true }), want = { changed = true },
         also = steps("defrag etcd1, defrag etcd3, move_leader etcd3, defrag etcd2") },
      { name = "NOSPACE: compact to the newest revision, every member, disarm, a test write",
         state = { members = { m(1, 16, 16), m(2, 16, 16), m(3, 16, 16) },
            alarms = { { member_id = "3", alarm = "NOSPACE" } } }, args = ARGS, want = { changed = true },
         also = steps("compact 43, defrag etcd1, defrag etcd3, move_leader etcd3, defrag etcd2, disarm, test_put") },
      { name = "compact=yes compacts first", state = { members = { m(1, 10, 1), m(2, 10, 10), m(3, 10, 10) },
         alarms = {} }, args = plancases.merge(ARGS, { compact = true }), want = { changed = true },
         also = steps("compact 43, defrag etcd1") },
      { name = "a member that does not answer: nothing, and why",
         state = { members = { m(1, 10, 1), m(2, 10, 1), m(3, 10, 1, { status = false, err = "refused" }) } },
         args = ARGS, want = { skipped = true, msg = "not defragmenting: etcd3 does not answer (refused); every member"
            .. " must" } },
      { name = "no leader", state = { members = { m(1, 10, 1, { status = { member_id = "1", leader = "0" } }) } },
         args = ARGS, want = { skipped = true, msg = "not defragmenting: the cluster has no leader" } },
      { name = "CORRUPT: defragmenting does not help", state = { members = { m(1, 10, 1), m(2, 10, 1) },
         alarms = { { member_id = "1", alarm = "CORRUPT" } } }, args = ARGS,
         want = { skipped = true, msg = "not defragmenting: CORRUPT is raised (restore from a good snapshot)" } },
   })
end)
