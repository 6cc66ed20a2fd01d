-- etcd_restore: a member's data dir made anew from a snapshot, as one member
-- of a new cluster (etcd's disaster recovery: every member restores the same
-- snapshot with its own name and peer URL and one new cluster token). The
-- member must be stopped (under --check it may still run: an earlier task
-- would have stopped it). The snapshot is restored into a temporary dir
-- beside the data dir, owned by etcd; only then is the old data dir moved
-- aside (<dir>.etcdrun-replaced-<UTC time>, never deleted) and the restored
-- one renamed into place, so an interrupted restore leaves either the old
-- data or the new, and running it again starts over. With etcdutl (3.5+) the
-- revision is bumped and marked compacted, so that watchers never see a
-- revision go back; etcdctl (3.4) has no such option.
local shell = require("etcdrun.shell")

local q = shell.quote

local M = {
   doc = "Restore an etcd snapshot into a stopped member's data dir, as a member of a new cluster.",
   args = {
      snapshot = { type = "path", required = true, absolute = true, doc = "the snapshot file on the host" },
      data_dir = { type = "path", required = true, absolute = true, doc = "the member's data dir" },
      name = { type = "string", required = true, doc = "the member's name" },
      peer_url = { type = "string", required = true, doc = "its advertised peer URL" },
      initial_cluster = { type = "string", required = true, doc = "every member, name=peer_url,..." },
      token = { type = "string", required = true, doc = "the new cluster's token (the same on every member)" },
      bin_dir = { type = "path", absolute = true, default = "/opt/etcd/bin", doc = "where etcdutl/etcdctl are" },
      bump_revision = { type = "integer", default = 1000000000,
         doc = "with etcdutl: raise the revision by this much and mark it compacted (0: do not)" },
      owner = { type = "string", default = "etcd", doc = "owner and group of the restored data dir" },
   },
   examples = [[task "restore" { etcd_restore = { snapshot = "/var/lib/etcd/restore.db", data_dir =
   "/var/lib/etcd/etcd1.etcd", name = "etcd1", peer_url = "https://10.0.0.1:2380", initial_cluster =
   "etcd1=https://10.0.0.1:2380,...", token = "etcd-cluster-2" } }]],
}

function M.gather(ctx, args)
   local b = args.bin_dir
   local r, err, code = ctx.host:exec(([[
      systemctl is-active -q etcd && echo running=yes
      [ -e %s ] && echo data=yes
      [ -s %s ] && echo snapshot=yes
      if [ -x %s/etcdutl ] && %s/etcdutl snapshot restore --help 2>&1 | grep -q -- --bump-revision; then
         echo tool=etcdutl-bump
      elif [ -x %s/etcdutl ]; then echo tool=etcdutl
      elif [ -x %s/etcdctl ]; then echo tool=etcdctl; fi
      true]]):format(q(args.data_dir), q(args.snapshot), q(b), q(b), q(b), q(b)))
   if not r then
      return nil, err, code
   end
   local out = r.stdout
   return { running = out:find("running=yes", 1, true) ~= nil, data = out:find("data=yes", 1, true) ~= nil,
      snapshot = out:find("snapshot=yes", 1, true) ~= nil, tool = out:match("tool=([%w-]+)") }
end

function M.plan(state, args, opts)
   local function fail(msg)
      return { failed = true, msg = ("etcd_restore: %s: %s"):format(opts.host, msg) }
   end
   if state.running and not opts.check then
      return fail("etcd is running: stop it before restoring its data dir")
   elseif not state.tool then
      return fail(("neither etcdutl nor etcdctl in %s"):format(args.bin_dir))
   elseif not state.snapshot and not opts.check then
      return fail(("no snapshot at %s"):format(args.snapshot))
   end
   local bump = state.tool == "etcdutl-bump" and args.bump_revision > 0
   return {
      changed = true,
      bump = bump,
      tool = state.tool:match("^%a+"),
      msg = ("would restore the snapshot as %s of a new cluster (%s, with %s%s)%s"):format(args.name, args.token,
         state.tool:match("^%a+"), bump and (", revision +%d, compacted"):format(args.bump_revision) or "",
         state.data and ("; %s moved aside"):format(args.data_dir) or ""),
      result = { data_dir = args.data_dir, moved_aside = state.data },
   }
end

function M.apply(ctx, args, plan)
   local dir, tmp = args.data_dir, args.data_dir .. ".etcdrun-restoring"
   local cmd = {
      ("ETCDCTL_API=3 %s/%s snapshot restore %s --name %s --initial-cluster %s --initial-cluster-token %s"
         .. " --initial-advertise-peer-urls %s --data-dir %s"):format(q(args.bin_dir), plan.tool, q(args.snapshot),
         q(args.name), q(args.initial_cluster), q(args.token), q(args.peer_url), q(tmp)),
   }
   if plan.bump then
      cmd[1] = cmd[1] .. (" --bump-revision %d --mark-compacted"):format(args.bump_revision)
   end
   local script = table.concat({
      "set -e",
      ("rm -rf %s"):format(q(tmp)),
      cmd[1] .. " >/dev/null",
      ("chown -R %s: %s && chmod 0700 %s"):format(q(args.owner), q(tmp), q(tmp)),
      -- a name no earlier restore took (two runs may fall in one second)
      ("if [ -e %s ]; then aside=%s.etcdrun-replaced-$(date -u +%%Y%%m%%dT%%H%%M%%SZ); n=$aside; i=1;"
         .. " while [ -e \"$n\" ]; do n=$aside-$i; i=$((i + 1)); done; mv -T %s \"$n\"; echo \"aside=$n\"; fi")
         :format(q(dir), q(dir), q(dir)),
      ("mv -T %s %s"):format(q(tmp), q(dir)),
   }, "\n")
   local r, err, code = ctx.host:exec(script)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      return nil, ("etcd_restore: %s: %s"):format(ctx.host.name, (r.stderr or ""):gsub("%s+$", "")), "EREMOTE"
   end
   local aside = r.stdout:match("aside=([^\n]+)")
   local msg = ("restored as %s of a new cluster%s%s"):format(args.name,
      plan.bump and (" (revision +%d)"):format(args.bump_revision) or "", aside and ("; old data in " .. aside) or "")
   -- shown under the task line: where the replaced data went
   return { moved_aside = aside, msg = msg, report = msg }
end

return M
