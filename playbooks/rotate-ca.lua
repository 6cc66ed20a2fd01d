--- etcdrun playbooks/rotate-ca.lua: a running cluster's CA replaced by a
-- new one without downtime, in stages that keep every member trusting every
-- certificate in use at every moment:
--   1. a new CA on the controller (ca-next.key, ca-next.crt; the old CA
--      certificate kept as ca-old.crt, and ca.crt becomes old + new, so the
--      operator's etcdctl.env trusts both from here on);
--   2. each member trusts both (its ca.crt the bundle), restarted one at a
--      time, leader last (etcd loads its trust pool only at start);
--   3. every member certificate and the client certificates issued from the
--      new CA (etcd reads certificates at every handshake: no restart), and
--      proof by handshake that every member serves one that chains to it;
--   4. each member trusts only the new CA, restarted one at a time, and the
--      new CA becomes the CA on the controller (the old one in retired/).
-- Each stage is read from the certificates themselves (the controller's
-- files and each member's ca.crt), so a rotation stopped anywhere resumes
-- where it stopped; tls-cluster.lua refuses to run while one is in progress.
-- A verified snapshot comes first, and one operator at a time (the lock).
--
--   etcdrun -i hosts playbooks/rotate-ca.lua [-C]
local L = include "lib/tls_cluster.lua"
local T = include "lib/tls_tasks.lua" (L)
local preflight, preflight_report = T.preflight(true)
local var, num, pki_file, member_file = T.var, T.num, L.pki_file, L.member_file

local function started(v)
   return L.exists(L.pki(v) .. "/ca-next.crt")
end

local tasks = {
   -- the hand-over of a rotation stopped inside its last step is finished
   controller "finish an interrupted hand-over" {
      shell = { cmd = L.finish_rotation_cmd },
      when = function(v)
         local pki = L.pki(v)
         return L.exists(pki .. "/ca-next.crt") and not L.exists(pki .. "/ca-next.key")
      end,
   },
   T.ca_passphrase_check(),
   preflight,
   preflight_report,
   -- the plan, printed (under --check too: this step only reads)
   controller "rotation plan" {
      run = function(_, v)
         local text = started(v) and "CA rotation in progress (ca-next.crt): it resumes where it stopped"
            or ("CA rotation: 1. a new CA (etcd CA %d) on the controller; 2. members trust both, restarted one at a"
               .. " time, leader last; 3. every certificate issued from the new CA, in use at once (no restart),"
               .. " proven by handshake; 4. members trust only the new CA (rolling restart); the old CA goes to"
               .. " retired/"):format(L.next_ca_number(v))
         return { changed = false, report = text }
      end,
      check_mode = false,
   },
   controller "operator lock" (T.lock("rotate-ca.lua", L.endpoints)),
   task "snapshot before the rotation" {
      etcd_snapshot = { dir = L.snapshot_dir, retain = num("etcd_snapshot_retain"), cluster = var("etcd_cluster_token"),
         reason = "before a CA rotation" },
      run_once = true,
   },

   -- 1: the new CA, on the controller; the old one kept beside it
   controller "keep the old CA certificate" {
      copy = { src = pki_file("ca.crt"), dest = pki_file("ca-old.crt"), force = false, mode = "0644" },
      when = function(v)
         return not started(v)
      end,
   },
   controller "new CA key" {
      x509_key = { path = L.NEXT.key, regenerate = "never", type = var("etcd_key_type"), bits = L.key_bits,
         passphrase = T.ca_passphrase },
      when = function(v)
         return not started(v)
      end,
   },
   controller "new CA certificate" {
      x509_cert = {
         path = L.NEXT.cert,
         provider = "selfsigned",
         privatekey_path = L.NEXT.key,
         privatekey_passphrase = T.ca_passphrase,
         subject = function(v)
            return { CN = ("etcd CA %d"):format(L.next_ca_number(v)), O = "etcdrun" }
         end,
         days = 3650,
         pathlen = 0,
      },
      when = function(v)
         return not started(v)
      end,
   },
   controller "trust both CAs on the controller" {
      copy = { dest = pki_file("ca.crt"), content = L.trust_bundle, mode = "0644" },
   },

   -- 2: members trust both, one restart at a time
   task "members trust both CAs" {
      copy = { src = pki_file("ca.crt"), dest = "/etc/etcd/ssl/ca.crt", mode = "0644", owner = "root", group = "etcd" },
      notify = "restart etcd",
      when = function(v)
         return not L.trusts_next_only(v)
      end,
   },
   flush_handlers "restart members to trust both CAs",
}
-- 3: every certificate from the new CA, for the key each member holds (its
-- CSR); members serve them at once
for _, list in ipairs({ T.member_key("server"), T.member_key("peer"), {
   T.member_cert("server", L.NEXT),
   T.member_cert("peer", L.NEXT),
   T.push(member_file("server", "crt"), "/etc/etcd/ssl/server.crt", "0644", "root", true),
   T.push(member_file("peer", "crt"), "/etc/etcd/ssl/peer.crt", "0644", "root", true),
}, T.client_cert("admin", "root", L.NEXT), T.client_cert("healthcheck", "healthcheck", L.NEXT) }) do
   for _, t in ipairs(list) do
      tasks[#tasks + 1] = t
   end
end
for _, t in ipairs({
   -- proof by handshake: what every member serves chains to the new CA
   controller "every member serves certificates of the new CA" {
      etcd_certs = L.admin({ members = L.members, pki_dir = L.pki, trust = L.NEXT.cert,
         renew_days = num("etcd_renew_days") }),
   },

   -- 4: members trust only the new CA, one restart at a time; then the
   -- controller's CA is the new one
   task "members trust only the new CA" {
      copy = { src = L.NEXT.cert, dest = "/etc/etcd/ssl/ca.crt", mode = "0644", owner = "root", group = "etcd" },
      notify = "restart etcd",
   },
   flush_handlers "restart members to trust only the new CA",
   controller "the new CA is the CA" { shell = { cmd = L.finish_rotation_cmd, removes = L.NEXT.cert } },
   controller "verify" { etcd_verify = T.with_tls({ members = L.members }) },
   controller "certificates in use" {
      etcd_certs = L.admin({ members = L.members, pki_dir = L.pki, renew_days = num("etcd_renew_days") }),
   },
   controller "give the operator lock back" (T.lock(nil, L.endpoints)),
}) do
   tasks[#tasks + 1] = t
end

return {
   play "etcd CA rotation" {
      hosts = "etcd",
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = tasks,
      handlers = { T.restart_handler() },
   },
}
