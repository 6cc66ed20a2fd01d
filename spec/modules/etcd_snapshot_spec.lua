-- etcd_snapshot decides from what gather found (etcdctl there, the member's
-- health, the snapshots kept), no node needed; one lab case takes real
-- snapshots from a 1-member TLS cluster on etcd10 made by tls-cluster.lua.
local plancases = require("support.plancases")
local NONE = plancases.NONE
local OK = { dir = "/s", names = {}, etcdctl = true, healthy = true, tmp_dir = "/var/lib/etcd",
   health = "https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.9ms" }
local function state(over)
   return plancases.merge(OK, over)
end
local KEPT = { -- as fs.list returns them: sorted by name, other files mixed in
   "etcd-20260101T000000Z-rev10.db", "etcd-20260101T000000Z-rev10.db.sha256", "etcd-20260101T000000Z-rev9.db",
   "etcd-20260102T000000Z-rev12-2.db", "etcd-20260102T000000Z-rev12.db", "etcd-prod-20250101T000000Z-rev1.db",
   "etcd-20260103T000000Z-rev15.db", "notes.txt", ".etcd-20260104T000000Z-rev16.db.incoming",
}

describe("etcd_snapshot plan", function()
   plancases.run(it, "etcd_snapshot", {
      { name = "a healthy member: a deliberate change, with the files before and after",
         state = state(), args = { dir = "snap" }, opts = { host = "etcd10" },
         want = { changed = true, failed = NONE, msg = "would take a snapshot from etcd10 into /s",
            dir = "/s", tmp_dir = "/var/lib/etcd",
            diff = { path = "/s", before = "", after = "etcd-<UTC time>-rev<revision>.db\n" } } },
      { name = "retention names the oldest of this cluster's snapshots (time, then revision, then sequence)",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 4, reason = "before adding etcd4" },
         opts = { host = "etcd10" },
         want = { changed = true, msg = "would take a snapshot from etcd10 into /s (before adding etcd4); retention"
            .. " (keep 4) would delete etcd-20260101T000000Z-rev9.db, etcd-20260101T000000Z-rev10.db",
            diff = { path = "/s", before = "etcd-20260101T000000Z-rev9.db\netcd-20260101T000000Z-rev10.db\n"
               .. "etcd-20260102T000000Z-rev12.db\netcd-20260102T000000Z-rev12-2.db\netcd-20260103T000000Z-rev15.db\n",
               after = "etcd-20260102T000000Z-rev12.db\netcd-20260102T000000Z-rev12-2.db\n"
                  .. "etcd-20260103T000000Z-rev15.db\netcd-<UTC time>-rev<revision>.db\n" } } },
      { name = "another cluster's files are its own",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 1, cluster = "etcd-prod" },
         want = { msg = "would take a snapshot from h into /s; retention (keep 1) would delete"
            .. " etcd-prod-20250101T000000Z-rev1.db" } },
      { name = "retain = 0 keeps every snapshot",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 0 },
         want = { changed = true, msg = "would take a snapshot from h into /s" } },
      { name = "room for one more: nothing deleted",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 6 },
         want = { msg = "would take a snapshot from h into /s" } },
      { name = "etcdctl missing: no member to take it from",
         state = state({ etcdctl = false, healthy = false, health = "" }), args = { dir = "snap" },
         opts = { host = "etcd10" },
         want = { failed = true, changed = NONE,
            msg = "no healthy member to snapshot: /opt/etcd/bin/etcdctl not found on etcd10" } },
      { name = "a member that does not answer: fails with what etcdctl said",
         state = state({ healthy = false, health = "https://127.0.0.1:2379 is unhealthy: failed to commit proposal:"
            .. " context deadline exceeded\nError: unhealthy cluster" }),
         args = { dir = "snap", endpoint = "https://10.0.0.5:2379" }, opts = { host = "etcd3" },
         want = { failed = true, msg = "no healthy member to snapshot: etcd3 (https://10.0.0.5:2379): "
            .. "https://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n"
            .. "Error: unhealthy cluster" } },
      { name = "a member that says nothing",
         state = state({ healthy = false, health = "" }), args = { dir = "snap" },
         want = { failed = true, msg = "no healthy member to snapshot: h (https://127.0.0.1:2379): no answer" } },
      { name = "under --check a member an earlier task would start is reported, not failed",
         state = state({ etcdctl = false, healthy = false }), args = { dir = "snap" }, opts = { check = true },
         want = { skipped = true, failed = NONE, msg = "no healthy member to snapshot now (/opt/etcd/bin/etcdctl not"
            .. " found on h): a run would fail unless an earlier task starts it" } },
      { name = "a tmp_dir that is not there",
         state = state({ tmp_dir = false }), args = { dir = "snap", tmp_dir = "/nope" },
         want = { failed = true, msg = "no healthy member to snapshot: h: tmp_dir /nope is not a directory" } },
      { name = "a cluster name that is no file name word",
         state = state(), args = { dir = "snap", cluster = "a/b" },
         want = { failed = true,
            msg = 'etcd_snapshot: cluster must be a file name word, retain >= 0 (got "a/b", 5)' } },
      { name = "a negative retain",
         state = state(), args = { dir = "snap", retain = -1 },
         want = { failed = true } },
   })
end)
