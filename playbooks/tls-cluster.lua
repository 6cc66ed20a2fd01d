--- etcdrun playbooks/tls-cluster.lua: bare Linux nodes in the inventory
-- group `etcd` -> a running etcd cluster with TLS on client and peer traffic
-- and client-certificate authentication, verified. Safe to run again: keys
-- and certificates are kept while valid, data is never wiped, and a change
-- on a running cluster restarts members one at a time, leader last, each
-- only once the cluster is healthy again. On a running cluster it is also
-- the day-2 tool: the membership follows the inventory (new hosts join as
-- learners, named members leave or are replaced, moved ones move), a new
-- etcd_version is an upgrade checked against etcd's rules, certificates are
-- renewed without restarts; a snapshot comes before, a lock in etcd keeps
-- other runs out, and -C prints the plan.
--
--   etcdrun -i hosts playbooks/tls-cluster.lua [-e etcd_version=3.5.17] [-C] [-D]
--      [-e etcd_remove=NAME,...] [-e etcd_replace=NAME,...] [--ask-secret etcd_ca_passphrase]
--
-- Variables (inventory, -e; defaults in lib/tls_cluster.lua's DEFAULTS):
--   etcd_version, etcd_release_url (the directory holding
--   etcd-v<version>-linux-<arch>.tar.gz and SHA256SUMS), etcd_pki_dir
--   (controller, default pki, relative to the inventory file), etcd_key_type
--   (ec | rsa), etcd_key_bits, etcd_address / etcd_interface (per member),
--   etcd_cluster_token, etcd_client_port, etcd_peer_port,
--   etcd_heartbeat_interval, etcd_election_timeout, etcd_extra_config (list
--   of extra YAML lines), etcd_health_timeout (s), etcd_clock_skew (s),
--   etcd_cert_days, etcd_renew_days, etcd_remove, etcd_replace,
--   etcd_snapshot_dir, etcd_snapshot_retain, etcd_join_timeout (s),
--   etcd_lock_ttl (s), etcd_ca_passphrase (secret).
--
-- Written only with the DSL and modules a site has: the policy that is no
-- module (defaults, SANs, the config's variables, the restart order) is in
-- lib/tls_cluster.lua, next to this file.
local L = include "lib/tls_cluster.lua"
local pki_file, member_file = L.pki_file, L.member_file

local T = include "lib/tls_tasks.lua" (L)
local preflight, preflight_report = T.preflight(false)
local var, num, with_tls, healthy = T.var, T.num, T.with_tls, T.healthy
local member_cert, member_key, client_cert, push = T.member_cert, T.member_key, T.client_cert, T.push

local function joining(v)
   return L.joining(v)
end

-- The configuration. initial-cluster and initial-cluster-state are read only
-- when a member first starts: a change to them alone (a member joined or
-- left, bootstrap done) rewrites the file without restarting anyone. The
-- configuration of a member that joins or moves is written when it does.
local CONFIG_NAMES = { existing = "mark the cluster as existing", join = "joining member's configuration",
   move = "configuration at the new address" }

local function config(state)
   return task(CONFIG_NAMES[state] or "etcd configuration") {
      template = {
         src = "templates/etcd.conf.yaml.j2",
         dest = "/etc/etcd/etcd.conf.yaml",
         mode = "0640",
         owner = "root",
         group = "etcd",
         vars = function(v)
            return L.config_vars(v, state)
         end,
         notify_ignore = { "^initial%-cluster:", "^initial%-cluster%-state:" },
      },
      notify = state == nil and "restart etcd" or nil,
      when = function(v)
         if state == "existing" then
            return true
         elseif state == "move" then
            return L.moving(v) ~= nil
         end
         return (state == "join") == L.joining(v) and not L.moving(v)
      end,
   }
end

-- A membership change through the cluster's API, from the controller.
local function member(name, args, register, when)
   args.endpoints = L.cluster_endpoints
   args.timeout = args.timeout or num("etcd_join_timeout")
   return task(name) { etcd_member = L.admin(args), delegate = "controller", when = when or joining,
      register = register }
end

local function moving(v)
   return L.moving(v) ~= nil
end

-- The cluster healthy with this member (a member that just joined or moved).
local function healthy_with_me(name, when)
   return task(name) {
      etcd_health = with_tls({
         endpoints = function(v)
            local urls = L.cluster_endpoints(v)
            urls[#urls + 1] = L.member(v).client_url
            return urls
         end,
         timeout = num("etcd_health_timeout"),
      }),
      when = when,
   }
end

local function renew_lock(when)
   return task "renew the operator lock" (T.lock("tls-cluster.lua", L.cluster_endpoints, when, true))
end

-- The member's data dir moved aside (<dir>.etcdrun-<what>-<UTC>), never
-- deleted; only when <dir><inside> exists.
local function data_aside(name, what, inside, when)
   return task(name) {
      command = {
         argv = function(v)
            local d = L.data_dir(v)
            return { "mv", "-T", d, ("%s.etcdrun-%s-%s"):format(d, what, os.date("!%Y%m%dT%H%M%SZ")) }
         end,
         removes = function(v)
            return L.data_dir(v) .. inside
         end,
      },
      when = when,
   }
end

local function cluster_exists(v)
   return L.plan(v).exists
end

-- A membership change of the plan's list `list` (remove_first, remove_last),
-- one member at a time, on the controller.
local function remove_members(name, list)
   return controller(name) {
      etcd_member = L.admin({
         name = function(v)
            return v.item.name
         end,
         state = "absent",
         endpoints = L.cluster_endpoints,
         timeout = num("etcd_join_timeout"),
      }),
      loop = function(v)
         return L.plan(v)[list]
      end,
      loop_label = function(item)
         return item.name
      end,
   }
end

local tasks = {
   -- settings that contradict each other stop the run before it starts
   T.ca_passphrase_check(),
   controller "settings" {
      assert = {
         that = function(v)
            return L.num(v, "etcd_renew_days") < L.num(v, "etcd_cert_days")
         end,
         fail_msg = function(v)
            return ("etcd_renew_days (%s) must be less than etcd_cert_days (%s): a certificate would be due for"
               .. " renewal as soon as it is issued"):format(v.etcd_renew_days, v.etcd_cert_days)
         end,
         quiet = true,
      },
   },
   -- 1-2: look before touching anything; every problem of every host at once
   preflight,
   preflight_report,
   -- the membership plan: the cluster's members against the inventory, the
   -- changes in order with the quorum at each (under --check: only this)
   controller "membership" {
      etcd_membership = L.admin({
         hosts = L.membership_hosts,
         remove = function(v)
            return L.names(v, "etcd_remove")
         end,
         replace = function(v)
            return L.names(v, "etcd_replace")
         end,
      }),
      register = "membership",
   },
   -- one operator at a time: a lock on a lease in the cluster itself
   controller "operator lock" (T.lock("tls-cluster.lua", L.cluster_endpoints, cluster_exists)),
   -- a version change on a running cluster: etcd's upgrade rules, checked
   -- before any binary moves (etcdrun.etcd_versions)
   controller "etcd version" {
      etcd_upgrade = L.admin({ version = var("etcd_version"), endpoints = L.cluster_endpoints, v2 = L.v2_enabled }),
      register = "upgrade",
      when = function(v)
         return L.plan(v).exists
      end,
   },
   -- a verified snapshot on the controller before any disruptive change
   task "snapshot before the changes" {
      etcd_snapshot = {
         dir = L.snapshot_dir,
         retain = num("etcd_snapshot_retain"),
         cluster = var("etcd_cluster_token"),
         reason = L.snapshot_reason,
      },
      when = function(v)
         return L.snapshot_reason(v) ~= nil and L.plan(v).snapshot_from == v.inventory_hostname
      end,
   },
   -- dead and replaced members leave first: the cluster stays writable
   remove_members("remove dead or replaced members", "remove_first"),

   -- 3: the release, fetched once on the controller, verified against SHA256SUMS
   controller "etcd release" {
      release = { base_url = L.release_url, files = L.release_files },
      register = "release",
   },
   task "etcd binaries" {
      unarchive = {
         src = function(v)
            return v.release.paths[L.release_file(v, v.preflight.arch)]
         end,
         dest = "/opt/etcd/bin",
         strip_components = 1,
         include = L.release_binaries,
         mode = "0755",
      },
      notify = "restart etcd",
   },
   task "etcdctl environment" {
      copy = { dest = "/etc/profile.d/etcd.sh", content = L.profile, mode = "0644" },
   },

   -- 4: the etcd user and a data dir that is never wiped
   task "etcd group" { group = { name = "etcd", system = true } },
   task "etcd user" {
      user = { name = "etcd", group = "etcd", system = true, home = "/var/lib/etcd", shell = "/usr/sbin/nologin",
         create_home = false },
   },
   task "data directory parent" { file = { path = "/var/lib/etcd", state = "directory", mode = "0755" } },
   task "data directory" {
      file = { path = L.data_dir, state = "directory", mode = "0700", owner = "etcd", group = "etcd" },
   },

   -- 5: PKI on the controller; the CA key never leaves it
   controller "PKI directory" { file = { path = L.pki, state = "directory", mode = "0700" } },
   controller "CA key" {
      x509_key = {
         path = pki_file("ca.key"),
         -- a new CA would not be trusted by running members: an existing CA key
         -- is kept even when etcd_key_type changes (members' keys follow it)
         regenerate = "never",
         type = var("etcd_key_type"),
         bits = L.key_bits,
         passphrase = T.ca_passphrase,
      },
   },
   -- made once: a new CA for a running cluster is playbooks/rotate-ca.lua's
   controller "CA certificate" {
      when = function(v)
         return not L.has_ca(v)
      end,
      x509_cert = {
         path = pki_file("ca.crt"),
         provider = "selfsigned",
         privatekey_path = pki_file("ca.key"),
         privatekey_passphrase = T.ca_passphrase,
         subject = { CN = "etcd CA", O = "etcdrun" },
         days = 3650,
         pathlen = 0,
      },
   },
   -- the members' keys are made on the members (all at once, each on its
   -- own CPU) and never leave them; the controller signs their CSRs
   task "TLS directory" {
      file = { path = "/etc/etcd/ssl", state = "directory", mode = "0750", owner = "root", group = "etcd" },
   },
}
for _, list in ipairs({ member_key("server"), member_key("peer"), { member_cert("server"), member_cert("peer"),
   barrier "member certificates issued" }, client_cert("admin", "root"), client_cert("healthcheck", "healthcheck"), {
   -- 6: certificates on the members (etcd reads a certificate at every
   -- handshake: a renewed one is in use at once, with no restart)
   push(pki_file("ca.crt"), "/etc/etcd/ssl/ca.crt", "0644", "root"),
   push(member_file("server", "crt"), "/etc/etcd/ssl/server.crt", "0644", "root", true),
   push(member_file("peer", "crt"), "/etc/etcd/ssl/peer.crt", "0644", "root", true),

   -- 7-8: configuration and unit; daemon-reload only when the unit changed
   config(nil),
   task "etcd unit" {
      systemd = { name = "etcd", unit_file = L.template_text("etcd.service"), enabled = true },
      notify = "restart etcd",
   },

   -- 9: start members that are not running, without blocking (Type=notify:
   -- the first member waits for a quorum that only the others bring), then
   -- wait for the whole cluster to be healthy; a joining member starts in
   -- the next play, once it is a learner
   task "start etcd" {
      systemd = { name = "etcd", state = "started", no_block = true },
      when = function(v)
         return not v.preflight.running and not L.joining(v)
      end,
   },
   healthy "cluster healthy",

   -- a change on a running cluster: the rolling restart handler, now
   flush_handlers "restart changed members",
} }) do
   for _, t in ipairs(list) do
      tasks[#tasks + 1] = t
   end
end

-- New members join one at a time: a learner (it does not count for quorum
-- until promoted), started with the member list of that moment, promoted once
-- in sync with the leader, the cluster healthy before the next one.
local join = {
   renew_lock(joining),
   -- data from an earlier life (a removed member, a failed join) would make
   -- etcd start as that member: stopped and moved aside, never deleted
   task "stop the old etcd of a joining node" {
      systemd = { name = "etcd", state = "stopped" },
      when = function(v)
         return L.joining(v) and L.plan(v).aside[v.inventory_hostname] == true
      end,
   },
   data_aside("move old data aside", "aside", "/member", function(v)
      return L.joining(v) and L.plan(v).aside[v.inventory_hostname] == true
   end),
   task "data directory of a joining member" {
      file = { path = L.data_dir, state = "directory", mode = "0700", owner = "etcd", group = "etcd" },
      when = joining,
   },
   member("add as a learner", {
      name = var("inventory_hostname"),
      peer_url = function(v)
         return L.member(v).peer_url
      end,
      state = "learner",
   }, "joined"),
   config("join"),
   task "start the learner" { systemd = { name = "etcd", state = "started", no_block = true }, when = joining },
   member("promote once in sync", {
      name = var("inventory_hostname"),
      peer_url = function(v)
         return L.member(v).peer_url
      end,
      state = "voter",
      remove_on_failure = true,
   }),
   healthy_with_me("cluster healthy with the new member", joining),
}

-- A member whose address changed moves, one at a time: its certificates
-- already name both addresses (issued in the first play; etcd reads them
-- at every handshake), the cluster learns the new peer URL (member update),
-- the member restarts on it, and once the cluster is healthy its
-- certificates are issued again for the new address only.
local move = {
   renew_lock(moving),
   member("move to the new address", {
      name = var("inventory_hostname"),
      peer_url = function(v)
         return L.member(v).peer_url
      end,
      state = "voter",
      update = true,
   }, "moved", moving),
   config("move"),
   task "restart on the new address" { systemd = { name = "etcd", state = "restarted" }, when = moving },
   healthy_with_me("cluster healthy with the moved member", moving),
}
for _, t in ipairs({ member_cert("server"), member_cert("peer"),
   task "install /etc/etcd/ssl/server.crt" {
      copy = { src = member_file("server", "crt"), dest = "/etc/etcd/ssl/server.crt", mode = "0644", owner = "root",
         group = "etcd" },
   },
   task "install /etc/etcd/ssl/peer.crt" {
      copy = { src = member_file("peer", "crt"), dest = "/etc/etcd/ssl/peer.crt", mode = "0644", owner = "root",
         group = "etcd" },
   } }) do
   t.when = moving
   move[#move + 1] = t
end

local finish = {
   -- members named in etcd_remove leave after the joins
   remove_members("remove members named in etcd_remove", "remove_last"),
   controller "retire removed members' certificates" {
      shell = { cmd = L.retire_certs_cmd },
      when = function(v)
         local inv = {}
         for _, n in ipairs(v.play_hosts) do
            inv[n] = true
         end
         for _, r in ipairs(L.plan(v).removals) do
            if not inv[r.name] then
               return true
            end
         end
         return false
      end,
   },
   -- 10: after bootstrap the members' state is `existing` (no restart needed)
   config("existing"),

   -- 11-12: verify over mutual TLS; leave etcdctl settings for the operator
   controller "verify" { etcd_verify = with_tls({ members = L.members }) },
   -- what each member serves, by handshake: the certificates issued last
   -- (renewed ones are in use without a restart), chained to the CA
   controller "certificates in use" {
      etcd_certs = L.admin({ members = L.members, pki_dir = L.pki, renew_days = num("etcd_renew_days") }),
   },
   controller "etcdctl settings" {
      copy = { dest = pki_file("etcdctl.env"), content = L.etcdctl_env, mode = "0600" },
   },
   -- users, roles and authentication (etcd_auth, etcd_roles, etcd_users):
   -- with auth on, etcd's gateway takes only a client certificate without
   -- a CommonName, with a root token (etcdrun.etcd finds both in the PKI)
   controller "gateway client key" { x509_key = T.key(pki_file("gateway.key")), when = L.rbac },
   controller "gateway client certificate" {
      x509_cert = {
         path = pki_file("gateway.crt"),
         provider = "ca",
         privatekey_path = pki_file("gateway.key"),
         ca_cert_path = T.CA.cert,
         ca_key_path = T.CA.key,
         ca_key_passphrase = T.ca_passphrase,
         subject = { O = "etcd gateway clients" },
         san = {},
         days = num("etcd_cert_days"),
         renew_before_days = num("etcd_renew_days"),
         ext_key_usage = { "clientAuth" },
      },
      when = L.rbac,
   },
   controller "users and roles" {
      etcd_rbac = L.admin({
         endpoints = L.endpoints,
         roles = var("etcd_roles"),
         users = var("etcd_users"),
         members = function(v)
            return v.play_hosts
         end,
         auth = function(v)
            return v.etcd_auth == true or v.etcd_auth == "true" or v.etcd_auth == "yes"
         end,
         prune = function(v)
            return v("etcd_rbac_prune", "no") == "yes"
         end,
         password_file = pki_file("root.password"),
      }),
      when = L.rbac,
   },
   controller "etcdctl for the operator" {
      unarchive = {
         src = function(v)
            return v.release.paths[L.release_file(v, v.facts.arch_go)]
         end,
         dest = pki_file("bin"),
         strip_components = 1,
         include = { "etcdctl" },
         mode = "0755",
      },
      when = L.needs_etcdctl,
   },
   controller "cluster" {
      etcd_status = with_tls({
         members = L.members,
         note = function(v)
            return ("etcdctl on this machine:\n  set -a; . %s/etcdctl.env; etcdctl endpoint status -w table")
               :format(L.pki(v))
         end,
      }),
   },
   controller "cluster version" {
      etcd_upgrade = L.admin({ version = var("etcd_version"), endpoints = L.endpoints, verify = true }),
      when = function(v)
         return L.upgrading(v)
      end,
   },
   controller "give the operator lock back" (T.lock(nil, L.endpoints, cluster_exists)),
}

-- The node of a member named in etcd_remove, when the inventory still has it
-- (in another group than etcd): etcd stopped and disabled, its data dir moved
-- aside (not deleted), its keys removed.
local function leaving(v)
   for _, n in ipairs(L.names(v, "etcd_remove")) do
      if n == v.inventory_hostname then
         return true
      end
   end
   return false
end

local retire = {
   task "stop and disable etcd" { systemd = { name = "etcd", state = "stopped", enabled = false }, when = leaving },
   data_aside("move the data dir aside", "removed", "", leaving),
   task "remove its keys" {
      file = { path = var("item"), state = "absent" },
      loop = { "/etc/etcd/ssl/server.key", "/etc/etcd/ssl/peer.key" },
      when = leaving,
   },
}

local handlers = { T.restart_handler() }

return {
   play "etcd cluster with TLS" {
      hosts = "etcd",
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = tasks,
      handlers = handlers,
   },
   play "members move to their new address" {
      hosts = "etcd",
      serial = 1,
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = move,
   },
   play "new members join" {
      hosts = "etcd",
      serial = 1,
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = join,
   },
   play "verify" {
      hosts = "etcd",
      any_errors_fatal = true,
      defaults = L.DEFAULTS,
      tasks = finish,
   },
   play "retire removed members" {
      hosts = "all:!etcd",
      optional = true,
      defaults = L.DEFAULTS,
      tasks = retire,
   },
}
