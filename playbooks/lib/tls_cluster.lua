--- The policy of playbooks/tls-cluster.lua that is not a module: the
-- defaults, where things live, the member list, SANs, the etcd config's
-- variables, and the order of a rolling restart. Functions of the variables
-- view `v`; tls-cluster.lua uses them as computed module arguments.
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.fs")
local shell = require("etcdrun.shell")
local x509 = require("etcdrun.x509")

local here = ... -- this file's directory (include passes it)
local L = {}

--- A file of the playbook's templates/ directory, as text.
function L.template_text(name)
   local f, err = io.open(here .. "/../templates/" .. name, "rb")
   if not f then
      error(err, 0)
   end
   local text = f:read("a")
   f:close()
   return text
end

-- What the playbook assumes unless the inventory or -e says otherwise (play
-- defaults rank below the inventory).
L.DEFAULTS = {
   etcd_version = "3.5.17",
   etcd_pki_dir = "pki",
   etcd_key_type = "ec",
   etcd_key_bits = 4096,
   etcd_cluster_token = "etcd-cluster-1",
   etcd_client_port = 2379,
   etcd_peer_port = 2380,
   etcd_heartbeat_interval = 100,
   etcd_election_timeout = 1000,
   etcd_snapshot_count = 10000,
   etcd_compaction_retention = "1",
   etcd_extra_config = {},
   etcd_health_timeout = 60,
   etcd_clock_skew = 60,
   etcd_cert_days = 825,
   etcd_renew_days = 30,
   etcd_remove = {},
   etcd_replace = {},
   etcd_snapshot_dir = "snapshots",
   etcd_snapshot_retain = 5,
   etcd_join_timeout = 120,
   etcd_lock_ttl = 900,
   etcd_auth = false,
   etcd_roles = {},
   etcd_users = {},
}

--- A numeric variable (-e gives strings).
function L.num(v, name)
   local x = v(name)
   local n = tonumber(x)
   if not n then
      error(("%s must be a number, got '%s'"):format(name, tostring(x)), 0)
   end
   -- "150.0" stays 150 in etcd.conf.yaml: templates print a float as 150.0
   return math.tointeger(n) or n
end

--- The PKI directory on the controller, absolute: a relative etcd_pki_dir
-- (the default `pki` included) is relative to the inventory file's
-- directory, so the same inventory always finds the same CA.
function L.pki(v)
   return L.controller_dir(v, v.etcd_pki_dir)
end

--- A directory on the controller: relative to the inventory file's.
function L.controller_dir(v, dir)
   if dir:sub(1, 1) ~= "/" then
      dir = (v("inventory_dir", nil) or os.getenv("PWD") or ".") .. "/" .. dir
   end
   return (dir:gsub("/+$", ""))
end

function L.snapshot_dir(v)
   return L.controller_dir(v, v.etcd_snapshot_dir)
end

--- A list variable: -e gives "a,b", the inventory a list.
function L.names(v, name)
   local x = v(name, nil)
   if type(x) == "table" then
      return x
   end
   local out = {}
   for n in tostring(x or ""):gmatch("[^,%s]+") do
      out[#out + 1] = n
   end
   return out
end

function L.pki_file(name)
   return function(v)
      return L.pki(v) .. "/" .. name
   end
end

function L.member_file(kind, ext)
   return function(v)
      return ("%s/%s-%s.%s"):format(L.pki(v), v.inventory_hostname, kind, ext)
   end
end

function L.key_bits(v)
   return v.etcd_key_type == "rsa" and L.num(v, "etcd_key_bits") or nil
end

function L.data_dir(v)
   return ("/var/lib/etcd/%s.etcd"):format(v.inventory_hostname)
end

local function url(address, port)
   local a = address:find(":", 1, true) and ("[" .. address .. "]") or address
   return ("https://%s:%d"):format(a, port)
end

--- The members in play order: name, address, client and peer URL.
function L.members(v)
   local out = {}
   for i, name in ipairs(v.play_hosts) do
      local address = v.hostvars[name].preflight.address
      out[i] = { name = name, address = address, client_url = url(address, L.num(v, "etcd_client_port")),
         peer_url = url(address, L.num(v, "etcd_peer_port")),
         cert_file = ("%s/%s-server.crt"):format(L.pki(v), name) }
   end
   return out
end

--- initial-cluster: name=peer URL of every member of the inventory.
function L.initial_cluster(v)
   local parts = {}
   for i, m in ipairs(L.members(v)) do
      parts[i] = m.name .. "=" .. m.peer_url
   end
   return table.concat(parts, ",")
end

--- The shell command that moves removed members' certificates and keys
--- into <pki>/retired (kept for the record, no longer issued from).
function L.retire_certs_cmd(v)
   local names = {}
   for _, r in ipairs(L.plan(v).removals) do
      names[#names + 1] = shell.quote(r.name)
   end
   return ("cd %s && mkdir -p -m 0700 retired && for n in %s; do for f in \"$n\"-server.* \"$n\"-peer.*; do"
      .. " if [ -e \"$f\" ]; then mv -- \"$f\" retired/; fi; done; done"):format(shell.quote(L.pki(v)),
      table.concat(names, " "))
end

--- The SHA-256 fingerprint of the (first) certificate in a controller file.
function L.fingerprint(path)
   local pem = fs.try.read(path)
   local info = pem and x509.try.info(pem)
   return info and info.fingerprint_sha256 or nil
end

--- Whether the controller holds a CA certificate already (made once; a new
--- one is a rotation: playbooks/rotate-ca.lua).
function L.has_ca(v)
   return L.exists(L.pki(v) .. "/ca.crt")
end

--- Whether the controller's CA key is encrypted (and so needs
--- etcd_ca_passphrase).
function L.ca_key_encrypted(v)
   local pem = fs.try.read(L.pki(v) .. "/ca.key")
   return pem ~= nil and pem:find("ENCRYPTED PRIVATE KEY", 1, true) ~= nil
end

function L.exists(path)
   return fs.try.stat(path) ~= nil
end

--- The CA rotation's files on the controller.
L.NEXT = { cert = L.pki_file("ca-next.crt"), key = L.pki_file("ca-next.key") }

--- The number of the next CA (its common name "etcd CA N"): the CAs
--- retired so far, plus the one in use, plus one.
function L.next_ca_number(v)
   local n = 0
   for _, name in ipairs(fs.try.list(L.pki(v) .. "/retired") or {}) do
      n = n + (name:match("^ca%-.*%.crt$") and 1 or 0)
   end
   return n + 2
end

--- Whether this member trusts only the next CA already (the rotation's last
--- stage reached it).
function L.trusts_next_only(v)
   local next_fp = L.fingerprint(L.pki(v) .. "/ca-next.crt")
   return next_fp ~= nil and v.preflight.ca_fingerprint == next_fp
end

--- The trust bundle during a rotation: the old CA, then the next one.
function L.trust_bundle(v)
   local pki = L.pki(v)
   local old = fs.try.read(pki .. "/ca-old.crt") or fs.try.read(pki .. "/ca.crt") or ""
   local new = fs.try.read(pki .. "/ca-next.crt") or ""
   return old .. new
end

--- The shell command that makes the next CA the CA, resumable at any point:
--- the old key and certificate go to <pki>/retired/, ca-next.* become ca.*.
function L.finish_rotation_cmd(v)
   return ("cd %s && mkdir -p -m 0700 retired && ts=$(date -u +%%Y%%m%%dT%%H%%M%%SZ) && "
      .. "if [ -e ca-old.crt ]; then mv ca-old.crt retired/ca-$ts.crt; fi && "
      .. "if [ -e ca-next.key ] && [ -e ca.key ]; then mv ca.key retired/ca-$ts.key; fi && "
      .. "if [ -e ca-next.key ]; then mv ca-next.key ca.key; fi && "
      .. "if [ -e ca-next.crt ]; then mv ca-next.crt ca.crt; fi"):format(shell.quote(L.pki(v)))
end

--- This host's entry of L.members.
function L.member(v)
   for _, m in ipairs(L.members(v)) do
      if m.name == v.inventory_hostname then
         return m
      end
   end
end

function L.endpoints(v)
   local urls = {}
   for i, m in ipairs(L.members(v)) do
      urls[i] = m.client_url
   end
   return urls
end

--- The inventory's members as etcd_membership compares them with the cluster.
function L.membership_hosts(v)
   local out = {}
   for i, m in ipairs(L.members(v)) do
      local p = v.hostvars[m.name].preflight
      out[i] = { name = m.name, peer_url = m.peer_url, client_url = m.client_url, has_data = p.has_data,
         running = p.running }
   end
   return out
end

--- What etcd_membership planned (nothing, before it ran).
function L.plan(v)
   return v("membership", nil) or { join = {}, joins = {}, remove_first = {}, remove_last = {}, aside = {},
      move = {}, moves = {}, changes = 0 }
end

--- Whether this run changes the etcd version of a running cluster.
function L.upgrading(v)
   local u = v("upgrade", nil)
   return type(u) == "table" and (u.kind == "patch" or u.kind == "minor")
end

--- Why a snapshot is taken before this run's changes, or nil.
function L.snapshot_reason(v)
   local why = {}
   local n = L.plan(v).changes
   if n > 0 then
      why[#why + 1] = ("%d membership change%s"):format(n, n == 1 and "" or "s")
   end
   if L.upgrading(v) then
      why[#why + 1] = "the upgrade to etcd " .. v.etcd_version
   end
   return #why > 0 and ("before " .. table.concat(why, " and ")) or nil
end

--- Whether the members run with the v2 API (etcd_extra_config says so).
function L.v2_enabled(v)
   for _, line in ipairs(v.etcd_extra_config or {}) do
      if tostring(line):match("^%s*enable%-v2:%s*true") then
         return true
      end
   end
   return false
end

--- This host's move to a new address in this run, if it moves.
function L.moving(v)
   return (L.plan(v).move or {})[v.inventory_hostname]
end

--- Whether this host joins a running cluster in this run (as a learner).
function L.joining(v)
   return L.plan(v).join[v.inventory_hostname] == true
end

--- The client URLs of the members that are in the cluster already, at
--- their address (not those joining or moving in this run).
function L.cluster_endpoints(v)
   local urls, plan = {}, L.plan(v)
   for _, m in ipairs(L.members(v)) do
      if not plan.join[m.name] and not (plan.move or {})[m.name] then
         urls[#urls + 1] = m.client_url
      end
   end
   return urls
end

--- The operator's client certificate, for membership changes and the lock.
function L.admin(args)
   args.ca, args.cert, args.key = L.pki_file("ca.crt"), L.pki_file("admin.crt"), L.pki_file("admin.key")
   return args
end

--- Each member's etcd_facts result (or failure), for etcd_preflight.
function L.preflight_results(v)
   local t = {}
   for _, name in ipairs(v.play_hosts) do
      t[name] = v.hostvars[name]("preflight", nil) or false
   end
   return t
end

--- A member certificate's SANs: its address, its name, localhost, loopbacks.
function L.sans(v)
   local ips = { v.preflight.address, "127.0.0.1", "::1" }
   -- a member moving to a new address: both, until the move is done
   local mv = L.moving(v)
   if mv and mv.from_ip and not v("moved", nil) then
      table.insert(ips, 2, mv.from_ip)
   end
   local dns = { v.inventory_hostname, "localhost" }
   if v.preflight.hostname and v.preflight.hostname ~= v.inventory_hostname then
      dns[#dns + 1] = v.preflight.hostname
   end
   return { ip = ips, dns = dns }
end

--- The release file of an architecture, and the files the members need.
function L.release_file(v, arch)
   return ("etcd-v%s-linux-%s.tar.gz"):format(v.etcd_version, arch)
end

--- Whether users, roles and authentication are managed (etcd_auth, or any
--- declared user or role).
function L.rbac(v)
   return v.etcd_auth == true or v.etcd_auth == "true" or v.etcd_auth == "yes" or next(v.etcd_users or {}) ~= nil
      or next(v.etcd_roles or {}) ~= nil
end

--- The binaries placed in /opt/etcd/bin: etcd and etcdctl, and from 3.5
--- etcdutl (the offline tool: snapshot restore with a revision bump, defrag
--- of a stopped member).
function L.release_binaries(v)
   local major, minor = tostring(v.etcd_version):match("^(%d+)%.(%d+)")
   local t = { "etcd", "etcdctl" }
   if tonumber(major) and (tonumber(major) > 3 or tonumber(major) == 3 and tonumber(minor) >= 5) then
      t[3] = "etcdutl"
   end
   return t
end

function L.release_files(v)
   local files, seen = {}, {}
   for _, name in ipairs(v.play_hosts) do
      local f = L.release_file(v, v.hostvars[name].preflight.arch)
      if not seen[f] then
         seen[f] = true
         files[#files + 1] = f
      end
   end
   return files
end

function L.release_url(v)
   local u = v("etcd_release_url", nil)
   return u and (u:gsub("/+$", "")) or ("https://github.com/etcd-io/etcd/releases/download/v" .. v.etcd_version)
end

--- /etc/profile.d/etcd.sh: etcdctl on a member talks to its own member.
function L.profile(v)
   return table.concat({
      "# Managed by etcdrun (playbooks/tls-cluster.lua).",
      'export PATH="$PATH:/opt/etcd/bin"',
      "export ETCDCTL_API=3",
      ("export ETCDCTL_ENDPOINTS=https://127.0.0.1:%d"):format(L.num(v, "etcd_client_port")),
      "export ETCDCTL_CACERT=/etc/etcd/ssl/ca.crt",
      "export ETCDCTL_CERT=/etc/etcd/ssl/server.crt",
      "export ETCDCTL_KEY=/etc/etcd/ssl/server.key",
      "",
   }, "\n")
end

--- The operator's etcdctl settings, left in the PKI directory.
function L.etcdctl_env(v)
   local pki = L.pki(v)
   return table.concat({
      "# etcdctl settings for this cluster, written by etcdrun (playbooks/tls-cluster.lua)",
      "ETCDCTL_API=3",
      "ETCDCTL_ENDPOINTS=" .. table.concat(L.endpoints(v), ","),
      "ETCDCTL_CACERT=" .. pki .. "/ca.crt",
      "ETCDCTL_CERT=" .. pki .. "/admin.crt",
      "ETCDCTL_KEY=" .. pki .. "/admin.key",
      "PATH=" .. pki .. "/bin:$PATH",
      "",
   }, "\n")
end

--- Variables for templates/etcd.conf.yaml.j2.
function L.config_vars(v, state)
   return {
      name = v.inventory_hostname,
      data_dir = L.data_dir(v),
      address = v.preflight.address,
      client_port = L.num(v, "etcd_client_port"),
      peer_port = L.num(v, "etcd_peer_port"),
      initial_cluster = state == "join" and v.joined.initial_cluster or L.initial_cluster(v),
      cluster_token = v.etcd_cluster_token,
      cluster_state = (state == "join" or state == "move") and "existing" or state
         or (v.preflight.has_data and "existing" or "new"),
      heartbeat_interval = L.num(v, "etcd_heartbeat_interval"),
      election_timeout = L.num(v, "etcd_election_timeout"),
      snapshot_count = L.num(v, "etcd_snapshot_count"),
      compaction_retention = v.etcd_compaction_retention,
      extra_config = v.etcd_extra_config,
   }
end

function L.tls(v)
   local pki = L.pki(v)
   return { ca = pki .. "/ca.crt", cert = pki .. "/healthcheck.crt", key = pki .. "/healthcheck.key" }
end

--- Whether the operator's etcdctl is still to be placed in the PKI directory
--- (once: a converged re-run does not look inside the release again).
function L.needs_etcdctl(v)
   return v.release.paths[L.release_file(v, v.facts.arch_go)] ~= nil
      and not fs.try.stat(L.pki(v) .. "/bin/etcdctl")
end

--- The rolling restart's order: followers first, the leader last (restarting
--- it first would force an extra election).
function L.leader_last(names, v)
   local tls, leader = L.tls(v), {}
   local url_of = {}
   for _, m in ipairs(L.members(v)) do
      url_of[m.name] = m.client_url
   end
   for _, n in ipairs(names) do
      local s = url_of[n] and etcd.status(url_of[n], tls)
      leader[n] = s and s.is_leader or false
   end
   table.sort(names, function(a, b)
      if leader[a] ~= leader[b] then
         return not leader[a]
      end
      return a < b
   end)
   return names
end

return L
