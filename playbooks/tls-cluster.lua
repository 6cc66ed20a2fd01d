--- etcdrun playbooks/tls-cluster.lua: bare Linux nodes in the inventory
-- group `etcd` -> a running etcd cluster with TLS on client and peer traffic
-- and client-certificate authentication, verified. Safe to run again: keys
-- and certificates are kept while valid, data is never wiped, and a change
-- on a running cluster restarts members one at a time, leader last, each
-- only once the cluster is healthy again.
--
--   etcdrun -i hosts playbooks/tls-cluster.lua [-e etcd_version=3.5.17] [-C] [-D]
--
-- Variables (inventory, -e; defaults in DEFAULTS below):
--   etcd_version, etcd_release_url (the directory holding
--   etcd-v<version>-linux-<arch>.tar.gz and SHA256SUMS), etcd_pki_dir
--   (controller, default pki, relative to the inventory file), etcd_key_type (ec | rsa), etcd_key_bits,
--   etcd_address / etcd_interface (per member), etcd_cluster_token,
--   etcd_client_port, etcd_peer_port, etcd_heartbeat_interval,
--   etcd_election_timeout, etcd_extra_config (list of extra YAML lines),
--   etcd_health_timeout (s), etcd_clock_skew (s), etcd_cert_days,
--   etcd_renew_days.
local lib = require("etcdrun.etcdcluster")

local function member_file(kind, ext)
   return function(v)
      return ("%s/%s-%s.%s"):format(lib.pki(v), v.inventory_hostname, kind, ext)
   end
end

local function pki_file(name)
   return function(v)
      return lib.pki(v) .. "/" .. name
   end
end

-- A member certificate: server (serverAuth; clientAuth too, because etcd's
-- own gateway dials itself with it when client-cert-auth is on) or peer
-- (serverAuth + clientAuth: with trusted-ca-file set, every peer must
-- present a client certificate — the first seed's cluster never formed
-- for want of this).
local function member_cert(kind)
   return task(("%s certificate"):format(kind)) {
      x509_cert = {
         path = member_file(kind, "crt"),
         provider = "ca",
         privatekey_path = member_file(kind, "key"),
         ca_cert_path = pki_file("ca.crt"),
         ca_key_path = pki_file("ca.key"),
         subject = function(v)
            return { CN = v.inventory_hostname, O = "etcd " .. kind }
         end,
         san = function(v)
            return lib.sans(v)
         end,
         days = function(v)
            return lib.opt(v, "etcd_cert_days")
         end,
         renew_before_days = function(v)
            return lib.opt(v, "etcd_renew_days")
         end,
         key_usage = { "digitalSignature", "keyEncipherment" },
         ext_key_usage = { "serverAuth", "clientAuth" },
      },
      delegate = "controller",
      register = kind .. "_cert",
   }
end

local function member_key(kind)
   return task(("%s key"):format(kind)) {
      x509_key = {
         path = member_file(kind, "key"),
         type = function(v)
            return lib.opt(v, "etcd_key_type")
         end,
         bits = function(v)
            return lib.key_bits(v)
         end,
      },
      delegate = "controller",
   }
end

local function client_cert(name, cn)
   return {
      controller(name .. " client key") {
         x509_key = {
            path = pki_file(name .. ".key"),
            type = function(v)
               return lib.opt(v, "etcd_key_type")
            end,
            bits = function(v)
               return lib.key_bits(v)
            end,
         },
      },
      controller(name .. " client certificate") {
         x509_cert = {
            path = pki_file(name .. ".crt"),
            provider = "ca",
            privatekey_path = pki_file(name .. ".key"),
            ca_cert_path = pki_file("ca.crt"),
            ca_key_path = pki_file("ca.key"),
            subject = { CN = cn, O = "etcd clients" },
            san = {},
            days = function(v)
               return lib.opt(v, "etcd_cert_days")
            end,
            renew_before_days = function(v)
               return lib.opt(v, "etcd_renew_days")
            end,
            key_usage = { "digitalSignature", "keyEncipherment" },
            ext_key_usage = { "clientAuth" },
         },
      },
   }
end

local function push(src, dest, mode, owner, register)
   return task("install " .. dest) {
      copy = { src = pki_file(src), dest = dest, mode = mode, owner = owner, group = "etcd" },
      register = register,
   }
end

local function member_push(kind, ext, dest, mode, owner, register)
   return task("install " .. dest) {
      copy = { src = member_file(kind, ext), dest = dest, mode = mode, owner = owner, group = "etcd" },
      register = register,
   }
end

local function config(register, state)
   return task(state == "existing" and "mark the cluster as existing" or "etcd configuration") {
      template = {
         src = "templates/etcd.conf.yaml.j2",
         dest = "/etc/etcd/etcd.conf.yaml",
         mode = "0640",
         owner = "root",
         group = "etcd",
         vars = function(v)
            return lib.config_vars(v, state)
         end,
      },
      register = register,
   }
end

local tasks = {
   -- 1-2: look before touching anything; every problem of every host at once
   -- (read-only steps: check_mode = false runs them under --check too)
   task "preflight" { run = lib.preflight, register = "preflight", check_mode = false },
   controller "preflight report" { run = lib.preflight_report, check_mode = false },

   -- 3: the release, fetched once on the controller, verified against SHA256SUMS
   controller "etcd release" { run = lib.fetch_release, register = "release", check_mode = false },
   task "etcd binaries" {
      unarchive = {
         src = function(v)
            return v.release.tarballs[v.preflight.arch]
         end,
         dest = "/opt/etcd/bin",
         strip_components = 1,
         include = { "etcd", "etcdctl" },
         mode = "0755",
      },
      register = "binaries",
   },
   task "etcdctl environment" {
      copy = { dest = "/etc/profile.d/etcd.sh", content = lib.profile, mode = "0644" },
   },

   -- 4: the etcd user and a data dir that is never wiped
   task "etcd group" { group = { name = "etcd", system = true } },
   task "etcd user" {
      user = { name = "etcd", group = "etcd", system = true, home = "/var/lib/etcd", shell = "/usr/sbin/nologin",
         create_home = false },
   },
   task "data directory parent" { file = { path = "/var/lib/etcd", state = "directory", mode = "0755" } },
   task "data directory" {
      file = { path = lib.data_dir, state = "directory", mode = "0700", owner = "etcd", group = "etcd" },
   },

   -- 5: PKI on the controller; the CA key never leaves it
   controller "PKI directory" { file = { path = pki_file(""), state = "directory", mode = "0700" } },
   controller "CA key" {
      x509_key = {
         path = pki_file("ca.key"),
         -- a new CA would not be trusted by running members: an existing CA key
         -- is kept even when etcd_key_type changes (members' keys follow it)
         regenerate = "never",
         type = function(v)
            return lib.opt(v, "etcd_key_type")
         end,
         bits = function(v)
            return lib.key_bits(v)
         end,
      },
   },
   controller "CA certificate" {
      x509_cert = {
         path = pki_file("ca.crt"),
         provider = "selfsigned",
         privatekey_path = pki_file("ca.key"),
         subject = { CN = "etcd CA", O = "etcdrun" },
         days = 3650,
         pathlen = 0,
      },
   },
   member_key("server"),
   member_cert("server"),
   member_key("peer"),
   member_cert("peer"),
   barrier "member certificates issued",
}
for _, t in ipairs(client_cert("admin", "root")) do
   tasks[#tasks + 1] = t
end
for _, t in ipairs(client_cert("healthcheck", "healthcheck")) do
   tasks[#tasks + 1] = t
end
for _, t in ipairs({
   -- 6: certificates and keys on the members
   task "TLS directory" {
      file = { path = "/etc/etcd/ssl", state = "directory", mode = "0750", owner = "root", group = "etcd" },
   },
   push("ca.crt", "/etc/etcd/ssl/ca.crt", "0644", "root", "ca_pushed"),
   member_push("server", "crt", "/etc/etcd/ssl/server.crt", "0644", "root", "server_crt_pushed"),
   member_push("server", "key", "/etc/etcd/ssl/server.key", "0600", "etcd", "server_key_pushed"),
   member_push("peer", "crt", "/etc/etcd/ssl/peer.crt", "0644", "root", "peer_crt_pushed"),
   member_push("peer", "key", "/etc/etcd/ssl/peer.key", "0600", "etcd", "peer_key_pushed"),

   -- 7-8: configuration and unit; daemon-reload only when the unit changed
   config("config", nil),
   task "etcd unit" {
      systemd = { name = "etcd", unit_file = lib.unit_file, enabled = true },
      register = "unit",
   },

   -- 9: start members that are not running, without blocking (Type=notify:
   -- the first member waits for a quorum that only the others bring), then
   -- wait for the whole cluster to be healthy
   task "start etcd" {
      systemd = { name = "etcd", state = "started", no_block = true },
      when = function(v)
         return not v.preflight.running
      end,
   },
   controller "cluster healthy" { run = lib.wait_healthy },

   -- a change on a running cluster: one member at a time, leader last
   controller "rolling restart" { run = lib.rolling_restart },
   controller "rolling restart plan" {
      run = lib.restart_plan,
      check_mode = false,
      when = function(v)
         return v.ansible_check_mode
      end,
   },

   -- 10: after bootstrap the members' state is `existing` (no restart needed)
   config("config_existing", "existing"),

   -- 11-12: verify over mutual TLS; leave etcdctl settings for the operator
   controller "verify" { run = lib.verify },
   controller "operator files" { run = lib.operator_files },
   controller "cluster" { run = lib.report },
}) do
   tasks[#tasks + 1] = t
end

return {
   play "etcd cluster with TLS" {
      hosts = "etcd",
      any_errors_fatal = true,
      tasks = tasks,
   },
}
