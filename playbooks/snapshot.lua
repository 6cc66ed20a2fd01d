--- etcdrun playbooks/snapshot.lua: a snapshot of the cluster of the inventory
-- group `etcd` onto the controller, taken through etcd's snapshot API from
-- the first member (inventory order) whose etcd runs, never a copy of the db
-- file; fetched, its sha256 compared with the member's, its revision, keys
-- and hash read with `snapshot status`, kept as
-- <etcd_snapshot_dir>/<etcd_cluster_token>-<UTC time>-rev<N>.db (0600) with a
-- .sha256 file beside it, the newest etcd_snapshot_retain kept. Read-only for
-- the cluster, and quick enough for cron; --json gives the path and figures
-- (the task's path, revision, keys, size, sha256).
--
--   etcdrun -i hosts playbooks/snapshot.lua [-e etcd_snapshot_retain=N] [--json]
local L = include "lib/tls_cluster.lua"
local T = include "lib/tls_tasks.lua" (L)

-- the first member, in inventory order, whose etcd runs
local function source(v)
   for _, name in ipairs(v.play_hosts) do
      local r = v.hostvars[name].etcd_active
      if r and r.stdout and r.stdout:match("^active") then
         return name
      end
   end
end

return {
   play "etcd snapshot" {
      hosts = "etcd",
      defaults = L.DEFAULTS,
      tasks = {
         -- one command per node, not the full facts: this runs from cron
         task "etcd running" {
            command = { cmd = "systemctl is-active etcd" },
            register = "etcd_active",
            changed_when = false,
            failed_when = false,
            check_mode = false,
         },
         controller "a running member" {
            assert = {
               that = function(v)
                  return source(v) ~= nil
               end,
               fail_msg = "no host of the group etcd runs etcd: there is nothing to take a snapshot from",
               quiet = true,
            },
         },
         task "snapshot" {
            etcd_snapshot = {
               dir = L.snapshot_dir,
               retain = T.num("etcd_snapshot_retain"),
               cluster = T.var("etcd_cluster_token"),
            },
            when = function(v)
               return v.inventory_hostname == source(v)
            end,
         },
      },
   },
}
