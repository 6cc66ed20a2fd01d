--- The task builders tls-cluster.lua and rotate-ca.lua share: members' keys
-- made on the members and their certificates signed on the controller,
-- files pushed to the members, the health gate and the rolling restart
-- handler. `include "lib/tls_tasks.lua" (L)`
-- with L = include "lib/tls_cluster.lua".
return function(L)
   local T = {}
   local pki_file, member_file = L.pki_file, L.member_file

   function T.var(name)
      return function(v)
         return v(name, nil)
      end
   end

   function T.num(name)
      return function(v)
         return L.num(v, name)
      end
   end
   local var, num = T.var, T.num

   -- the issuing CA (rotate-ca.lua issues from the next one)
   T.CA = { cert = pki_file("ca.crt"), key = pki_file("ca.key") }

   -- the CA key's passphrase, when the operator keeps it encrypted
   -- (--ask-secret etcd_ca_passphrase, or a secret() in -e @vars.lua)
   function T.ca_passphrase(v)
      return v("etcd_ca_passphrase", nil)
   end

   -- An encrypted CA key needs its passphrase: said before anything starts.
   function T.ca_passphrase_check()
      return controller "CA key passphrase" {
         assert = {
            that = function(v)
               return not L.ca_key_encrypted(v) or v("etcd_ca_passphrase", nil) ~= nil
            end,
            fail_msg = function(v)
               return ("%s/ca.key is encrypted: run with --ask-secret etcd_ca_passphrase (or give it as a secret() in"
                  .. " -e @vars.lua)"):format(L.pki(v))
            end,
            quiet = true,
         },
      }
   end

   -- Preflight: every node's facts, then every problem of every host at once
   -- (`rotation`: a CA rotation's members may trust the next CA too).
   function T.preflight(rotation)
      return task "preflight" {
         etcd_facts = { data_dir = L.data_dir, client_port = num("etcd_client_port"),
            peer_port = num("etcd_peer_port"), address = var("etcd_address"), interface = var("etcd_interface"),
            clock_skew = num("etcd_clock_skew") },
         register = "preflight",
      }, controller "preflight report" {
         etcd_preflight = {
            members = L.preflight_results,
            order = function(v)
               return v.play_hosts
            end,
            group_size = function(v)
               return #(v.groups.etcd or v.play_hosts)
            end,
            pki_dir = L.pki,
            rotation = rotation,
         },
      }
   end

   -- The operator lock's task body, taken (or renewed) for `purpose`, or
   -- given back (`purpose` nil): `controller "..." (T.lock(...))` once per
   -- run, `task "..." (T.lock(..., true))` per host (delegated).
   function T.lock(purpose, endpoints, when, per_host)
      return {
         etcd_lock = L.admin(purpose and { endpoints = endpoints, ttl = num("etcd_lock_ttl"), purpose = purpose }
            or { state = "absent", endpoints = endpoints }),
         delegate = per_host and "controller" or nil,
         when = when,
         changed_when = false,
      }
   end

   -- the health check's client certificate, for etcd_health/verify/status
   local TLS = { ca = pki_file("ca.crt"), cert = pki_file("healthcheck.crt"), key = pki_file("healthcheck.key") }

   function T.with_tls(args)
      for k, x in pairs(TLS) do
         args[k] = x
      end
      return args
   end

   -- a health gate: every member in the cluster (`all`: joiners too)
   function T.healthy(name, all)
      return task(name) {
         etcd_health = T.with_tls({ endpoints = all and L.endpoints or L.cluster_endpoints,
            timeout = num("etcd_health_timeout") }),
      }
   end

   -- A member certificate: server (serverAuth; clientAuth too, because etcd's
   -- own gateway dials itself with it when client-cert-auth is on) or peer
   -- (serverAuth + clientAuth: with trusted-ca-file set, every peer must
   -- present a client certificate — the first seed's cluster never formed
   -- for want of this), signed on the controller from the member's CSR
   -- (its subject from there, its SANs from the inventory).
   function T.member_cert(kind, ca)
      ca = ca or T.CA
      return task(("%s certificate"):format(kind)) {
         x509_cert = {
            path = member_file(kind, "crt"),
            provider = "ca",
            csr_path = member_file(kind, "csr"),
            ca_cert_path = ca.cert,
            ca_key_path = ca.key,
            ca_key_passphrase = T.ca_passphrase,
            san = L.sans,
            days = num("etcd_cert_days"),
            renew_before_days = num("etcd_renew_days"),
            key_usage = { "digitalSignature", "keyEncipherment" },
            ext_key_usage = { "serverAuth", "clientAuth" },
         },
         delegate = "controller",
      }
   end

   function T.key(path)
      return { path = path, type = var("etcd_key_type"), bits = L.key_bits }
   end

   -- A member's key (server or peer) is made on the member and never leaves
   -- it; its CSR goes to <pki>/<name>-<kind>.csr for member_cert to sign. A
   -- new key restarts a running member (etcd pairs it with the new
   -- certificate at start). A copy of the key on the controller, from a
   -- cluster installed before keys were made on the members, is deleted
   -- once the member has its own (the same key, kept in use).
   function T.member_key(kind)
      local reg = kind .. "_key"
      return {
         task(("%s key"):format(kind)) {
            x509_node_key = {
               path = ("/etc/etcd/ssl/%s.key"):format(kind),
               csr_path = ("/etc/etcd/ssl/%s.csr"):format(kind),
               type = var("etcd_key_type"),
               bits = L.key_bits,
               subject = function(v)
                  return { CN = v.inventory_hostname, O = "etcd " .. kind }
               end,
               owner = "etcd",
               group = "etcd",
            },
            register = reg,
            notify = "restart etcd",
         },
         task(("%s CSR to the controller"):format(kind)) {
            copy = { content = function(v)
               return v[reg].csr
            end, dest = member_file(kind, "csr"), mode = "0644" },
            delegate = "controller",
            -- under --check a key not made yet has no CSR to copy
            when = function(v)
               return v[reg].csr ~= nil
            end,
         },
         task(("%s key off the controller"):format(kind)) {
            file = { path = member_file(kind, "key"), state = "absent" },
            delegate = "controller",
         },
      }
   end

   function T.client_cert(name, cn, ca)
      ca = ca or T.CA
      return {
         controller(name .. " client key") { x509_key = T.key(pki_file(name .. ".key")) },
         controller(name .. " client certificate") {
            x509_cert = {
               path = pki_file(name .. ".crt"),
               provider = "ca",
               privatekey_path = pki_file(name .. ".key"),
               ca_cert_path = ca.cert,
               ca_key_path = ca.key,
               ca_key_passphrase = T.ca_passphrase,
               subject = { CN = cn, O = "etcd clients" },
               san = {},
               days = num("etcd_cert_days"),
               renew_before_days = num("etcd_renew_days"),
               key_usage = { "digitalSignature", "keyEncipherment" },
               ext_key_usage = { "clientAuth" },
            },
         },
      }
   end

   -- A file a running member reads at start: a change restarts it (rolling).
   -- etcd reads its certificate and key files at every TLS handshake, so a
   -- renewed certificate (same key) is in use at once, with no restart; the
   -- CA (a trust pool etcd loads once) and a new key restart the member.
   function T.push(src, dest, mode, owner, no_restart)
      return task("install " .. dest) {
         copy = { src = src, dest = dest, mode = mode, owner = owner, group = "etcd" },
         notify = not no_restart and "restart etcd" or nil,
      }
   end

   -- Members that were running restart one at a time, leader last, each
   -- only while the whole cluster is healthy and caught up, before and
   -- after; the leader hands over to the most caught-up follower first, so
   -- nobody holds an election.
   function T.restart_handler()
      return handler "restart etcd" {
         systemd = { name = "etcd", state = "restarted" },
         when = function(v)
            -- a member that moves restarts when it does, on its new address
            return v.preflight.running and not L.moving(v)
         end,
         serial = 1,
         order = L.leader_last,
         gate = task "cluster healthy" {
            etcd_health = T.with_tls({ endpoints = L.cluster_endpoints, timeout = num("etcd_health_timeout"),
               caught_up = true }),
         },
         before = task "leadership elsewhere" {
            etcd_leader = L.admin({ name = var("inventory_hostname"), endpoints = L.cluster_endpoints }),
            delegate = "controller",
         },
      }
   end

   return T
end
