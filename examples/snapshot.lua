--- examples/snapshot.lua: a verified snapshot of a cluster that
-- playbooks/tls-cluster.lua made, taken from one member onto the controller
-- (the newest 5 kept), as a disruptive step would take one first.
--
--   ./etcdrun -i .lab/hosts examples/snapshot.lua [-e snapshot_dir=DIR] [-e snapshot_reason=TEXT] [-C]
--
-- snapshot_dir (default /tmp/etcdrun-example/snapshots; a relative one is
-- relative to this file's directory) ends up with
-- etcd-<UTC time>-rev<revision>.db and its .sha256 file, both 0600.
return {
   play "snapshot" {
      hosts = "etcd",
      tasks = {
         task "snapshot onto the controller" {
            etcd_snapshot = {
               dir = function(v) return v("snapshot_dir", "/tmp/etcdrun-example/snapshots") end,
               reason = function(v) return v("snapshot_reason", "examples/snapshot.lua") end,
               retain = 5,
            },
            run_once = true,
         },
      },
   },
}
