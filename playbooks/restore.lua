--- etcdrun playbooks/restore.lua: the cluster of the inventory group `etcd`
-- brought back from a snapshot (etcd's disaster recovery). Destructive, so
-- it shows what it replaces and asks first (or takes -e confirm=yes); the
-- snapshot is checked (etcd's own sha256 at its end, and the .sha256 file
-- beside it when there is one) before anything is stopped. Then every
-- member is stopped, restores the same snapshot as a member of a new
-- cluster (its name and peer URL, one new cluster token, the revision
-- bumped and marked compacted where etcdutl can), the old data dirs moved
-- aside (<dir>.etcdrun-replaced-<UTC time>, never deleted), starts, and the
-- cluster is verified. A restore interrupted anywhere is run again whole.
-- The members must be installed (tls-cluster.lua): to restore onto other
-- nodes, install them first, then restore.
--
--   etcdrun -i hosts playbooks/restore.lua -e snapshot=FILE [-e confirm=yes] [-C]
local L = include "lib/tls_cluster.lua"
local T = include "lib/tls_tasks.lua" (L)
local fs = require("etcdrun.fs")
local term = require("etcdrun.term")

local facts = T.preflight() -- its first task: every node's facts (address, data)
local NODE_COPY = "/var/lib/etcd/.etcdrun-restore.db"

-- the snapshot file, absolute (a relative -e snapshot= is the operator's
-- working directory's)
local function snapshot(v)
   local s = v("snapshot", nil)
   return s and (fs.try.realpath(s) or s)
end

-- etcdctl snapshot save ends the file with the sha256 of what precedes it
-- (etcd's restore checks it too); a copied member.db has none.
local function check_snapshot(_, v)
   local path = v("snapshot", nil)
   if not path then
      return nil, "no snapshot given: run with -e snapshot=FILE (a file etcdctl snapshot save or snapshot.lua made)"
   end
   local data, err = fs.try.read(snapshot(v))
   if not data then
      return nil, ("snapshot %s: %s"):format(path, err)
   end
   if #data < 512 + 32 or #data % 512 ~= 32 then
      return nil, ("snapshot %s: not a snapshot made by etcd (%d bytes, no hash at its end): refused before"
         .. " anything was stopped"):format(path, #data)
   end
   local body, tail = data:sub(1, -33), data:sub(-32)
   local want = tail:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
   if fs.sha256(body) ~= want then
      return nil, ("snapshot %s: its content does not match the sha256 at its end (corrupt or truncated):"
         .. " refused before anything was stopped"):format(path)
   end
   local sums = fs.try.read(snapshot(v) .. ".sha256")
   if sums and sums:match("^(%x+)") ~= fs.sha256(data) then
      return nil, ("snapshot %s: its sha256 differs from %s.sha256: refused before anything was stopped"):format(
         path, path)
   end
   return { changed = false, msg = ("%s: %d bytes, etcd's hash%s verified"):format(path, #data,
      sums and " and the .sha256 file" or "") }
end

local function confirm(_, v)
   local what = ("This stops etcd on %d members (%s), moves their data dirs aside and restores %s on each as a"
      .. " new cluster: every write since the snapshot is left behind."):format(#v.play_hosts,
      table.concat(v.play_hosts, ", "), v("snapshot", "?"))
   if v.ansible_check_mode then
      return { changed = false, msg = "--check: nothing is stopped", report = what }
   elseif v("confirm", nil) == "yes" then
      return { changed = false, msg = "confirmed with -e confirm=yes", report = what }
   elseif not term.isatty(0) then
      return nil, what .. " Refusing without confirmation: run with -e confirm=yes"
   end
   if term.ask(what .. "\nType yes to go on: ") ~= "yes" then
      return nil, "not confirmed: nothing was changed"
   end
   return { changed = false, msg = "confirmed" }
end

-- one new cluster token for every member of this run
local TOKEN
local function token(v)
   TOKEN = TOKEN or ("%s-restored-%s"):format(v.etcd_cluster_token, os.date("!%Y%m%dT%H%M%SZ"))
   return TOKEN
end

return {
   play "etcd restore from a snapshot" {
      hosts = "etcd",
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = {
         -- read-only, so they run under --check too
         controller "snapshot" { run = check_snapshot, check_mode = false },
         facts,
         controller "confirm" { run = confirm, check_mode = false },
         task "stop etcd" { systemd = { name = "etcd", state = "stopped" } },
         -- no member restores while another still runs the old cluster
         barrier "every member stopped",
         task "snapshot onto the member" {
            copy = { src = snapshot, dest = NODE_COPY, mode = "0600", owner = "etcd", group = "etcd" },
         },
         task "restore" {
            etcd_restore = {
               snapshot = NODE_COPY,
               data_dir = L.data_dir,
               name = T.var("inventory_hostname"),
               peer_url = function(v)
                  return L.member(v).peer_url
               end,
               initial_cluster = L.initial_cluster,
               token = token,
            },
         },
         task "remove the member's copy" { file = { path = NODE_COPY, state = "absent" } },
         barrier "every member restored",
         task "start etcd" { systemd = { name = "etcd", state = "started", no_block = true } },
         T.healthy("cluster healthy", true),
         controller "verify" { etcd_verify = T.with_tls({ members = L.members }) },
      },
   },
}
