-- etcd_restore decides from what the node has: etcd running or not, a data
-- dir, the snapshot, and which tool (etcdutl with --bump-revision, etcdutl,
-- etcdctl). The restores themselves run on the lab (spec/restore_spec.lua).
local plancases = require("support.plancases")

local ARGS = { snapshot = "/var/lib/etcd/.r.db", data_dir = "/var/lib/etcd/etcd1.etcd", name = "etcd1",
   peer_url = "https://10.0.0.1:2380", initial_cluster = "etcd1=https://10.0.0.1:2380", token = "t-restored" }

local function st(over)
   return plancases.merge({ running = false, data = true, snapshot = true, tool = "etcdutl-bump" }, over)
end

describe("etcd_restore plan", function()
   plancases.run(it, "etcd_restore", {
      { name = "restores with etcdutl, the revision bumped, the old data dir moved aside", state = st(), args = ARGS,
         want = { changed = true, bump = true, tool = "etcdutl", msg = "would restore the snapshot as etcd1 of a new"
            .. " cluster (t-restored, with etcdutl, revision +1000000000, compacted); /var/lib/etcd/etcd1.etcd"
            .. " moved aside" } },
      { name = "with etcdctl (3.4): no revision bump", state = st({ tool = "etcdctl", data = false }), args = ARGS,
         want = { changed = true, bump = false, tool = "etcdctl",
            msg = "would restore the snapshot as etcd1 of a new cluster (t-restored, with etcdctl)" } },
      { name = "an etcdutl without --bump-revision", state = st({ tool = "etcdutl" }), args = ARGS,
         want = { bump = false, tool = "etcdutl" } },
      { name = "no bump when asked for none", state = st(), args = plancases.merge(ARGS, { bump_revision = 0 }),
         want = { bump = false } },
      { name = "refuses while etcd runs", state = st({ running = true }), args = ARGS, opts = { host = "etcd1" },
         want = { failed = true,
            msg = "etcd_restore: etcd1: etcd is running: stop it before restoring its data dir" } },
      { name = "refuses without a tool", state = st({ tool = false }), args = ARGS, opts = { host = "etcd1" },
         want = { failed = true, msg = "etcd_restore: etcd1: neither etcdutl nor etcdctl in /opt/etcd/bin" } },
      { name = "refuses without the snapshot on the node", state = st({ snapshot = false }), args = ARGS,
         opts = { host = "etcd1" },
         want = { failed = true, msg = "etcd_restore: etcd1: no snapshot at /var/lib/etcd/.r.db" } },
      { name = "under --check the snapshot is not there yet and etcd still runs: the plan still shows",
         state = st({ snapshot = false, running = true }), args = ARGS, opts = { check = true },
         want = { changed = true } },
   })
end)
