--- etcdrun playbooks/defrag.lua: the members of the inventory group `etcd`
-- give back the space compaction freed in their DB files: one member at a
-- time, followers first, the leader last after handing its leadership to the
-- most caught-up follower, each answering again before the next. A member
-- is defragmented when at least 10% and 1 MiB of its DB file are free
-- (-e force=yes: every member). Nothing is done, with the reason, when a member does not
-- answer, there is no leader, or CORRUPT is raised. With NOSPACE raised it
-- is the recovery: compaction to the current revision, every member
-- defragmented, the alarm disarmed, a test write. -e compact=yes compacts to
-- the current revision first in any case (all history is dropped: watchers
-- of older revisions must start over; auto-compaction keeps the history of
-- etcd_compaction_retention otherwise).
--
--   etcdrun -i hosts playbooks/defrag.lua [-e force=yes] [-e compact=yes] [-C] [--json]
local L = include "lib/tls_cluster.lua"
local T = include "lib/tls_tasks.lua" (L)

local facts = T.preflight() -- its first task: every node's facts (addresses)

local function yes(name)
   return function(v)
      return v(name, "no") == "yes"
   end
end

return {
   play "etcd defragmentation" {
      hosts = "etcd",
      defaults = L.DEFAULTS,
      tasks = {
         facts,
         controller "defragment" {
            etcd_defrag = L.admin({ members = L.members, force = yes("force"), compact = yes("compact") }),
         },
      },
   },
}
