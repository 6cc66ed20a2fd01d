-- make bench: the day-2 operations on a cluster's software and trust, an
-- etcd upgrade, certificate renewal and a CA rotation, with etcdrun against
-- the same steps done by hand over SSH connections that are already open.
-- On 3 lab nodes A B C (default etcd7..etcd9), each operation timed as the
-- whole process (wall clock, spec/bench/common.lua's bench.timed), RUNS runs
-- of each:
--   upgrade   playbooks/tls-cluster.lua with etcd_version=<the lab's
--             etcd_upgrade_version> (3.5.16) on a converged cluster of the
--             lab's etcd_version (3.4.23), installed with etcdrun (untimed)
--             on nodes reset to bare; timing starts at least 10 s after the
--             install ended and once the cluster version has settled at the
--             old minor (etcd decides it a few seconds after a bootstrap);
--   renewal   playbooks/tls-cluster.lua with its defaults on a cluster
--             installed (untimed, on bare nodes) with -e etcd_cert_days=20
--             -e etcd_renew_days=10: all 6 member certificates (server and
--             peer of each member) and the 2 client certificates (admin,
--             healthcheck) are within the default renew window (30 days), so
--             the run renews all 8 with the same keys and pushes the member
--             ones; nothing restarts;
--   rotation  playbooks/rotate-ca.lua on a converged cluster (the renewal's:
--             etcdrun's rotation runs on the cluster etcdrun just renewed,
--             the rotation by hand right after it, on the same cluster).
-- Every timed operation starts at least 6 s after the last set-up step (or
-- restart) ended. During every timed run (etcdrun's and by hand)
-- spec/support/load.lua's writer puts a key every 50 ms into A B C: a failed
-- write, or an acknowledged write not read back, fails the benchmark. After
-- each timed run, untimed, the result is checked: every member runs the
-- target and the cluster version moved to its minor (upgrade); every member
-- serves on both ports the certificate issued last and no etcd process was
-- restarted (renewal); every member serves certificates of the new CA and
-- has the controller's new ca.crt, the old CA is in pki/retired (rotation).
--
-- The floor ("by hand over open SSH"): the bash script FLOOR below, run as
-- `bash floor.sh upgrade|renew|rotate`, over OpenSSH ControlMaster sockets
-- opened before any timing (ssh -fN -o ControlMaster=yes -o
-- ControlPersist=yes, checked with ssh -O check before each floor run), on
-- the controller with the etcdctl that the install left in the workspace's
-- pki/bin (admin client certificate), openssl and curl. Prepared once,
-- untimed: the target release's tarball fetched from the lab's release URL,
-- checked against SHA256SUMS, etcd and etcdctl extracted (etcdrun keeps the
-- same in its cache between runs: an untimed install of the target version
-- fills it before the first round). Shared steps:
--   snapshot: on A, `etcdctl snapshot save` + `snapshot status -w json` +
--     sha256sum (one ssh), the file read back over ssh into the controller's
--     floor-snapshots/ and removed on A, its sha256 compared, a .sha256 file
--     written beside it (spec/bench/membership.lua's floor);
--   roll: `etcdctl endpoint status` of the members (the leader), then each
--     member in turn, followers first in name order, the leader last: if it
--     leads (endpoint status again), `etcdctl move-leader` to the follower
--     with the highest raft index; `systemctl restart etcd` (Type=notify:
--     returns once etcd is ready); `etcdctl endpoint health` retried every
--     0.1 s until every member is healthy, then `endpoint status` every
--     0.05 s until every member's raft index reached the leader's (caught up);
--   sign: a certificate for a key pki/ already has (`openssl req -new -key |
--     openssl x509 -req` signed by a CA key, random 128-bit serial, 825 days)
--     with etcdrun's subject, SANs (member: DNS name, localhost; IP address,
--     127.0.0.1, ::1) and usages, written next to the old one and renamed
--     over it (the writer reads admin.crt while it runs); all 8 in parallel;
--   push: one ssh per file, all in parallel, `cat >dest.floor && chgrp etcd
--     && mv -f` (0644 root:etcd, as etcdrun leaves them);
--   served: per member and port (2379: server, 2380: peer), all in parallel,
--     `openssl s_client` with the admin certificate and -verify_return_error
--     against the issuing CA, the served serial compared with pki/'s.
-- The operations:
--   upgrade: snapshot; etcd and etcdctl pushed to every member at once (tar
--     | ssh, extracted next to /opt/etcd/bin's and renamed over them, 0755);
--     roll; then every member's /version (curl, mutual TLS) polled every
--     0.1 s until each runs the target and the cluster version is its minor.
--   renew: sign the 6 member certificates (from the members' CSRs in pki/:
--     their keys are on the members) and the 2 client certificates with
--     pki/ca.key; push the member certificates; served (the new serials).
--   rotate: snapshot; a new CA (openssl genpkey EC P-256; `openssl req -x509`
--     with etcdrun's subject "etcd CA <N>", N as rotate-ca.lua counts it, 10
--     years, CA:TRUE pathlen 0, keyCertSign + cRLSign) as pki/ca-next.*, the
--     old ca.crt kept as ca-old.crt and pki/ca.crt made old + new (the
--     operator's etcdctl.env and the writer trust both from here on); the
--     bundle pushed as every member's ca.crt; roll; sign all 8 certificates
--     with ca-next.key; push the member certificates; served, verified
--     against the new CA alone; ca-next.crt pushed as every member's ca.crt;
--     roll; on the controller the old ca.crt and ca.key moved to
--     pki/retired/ca-<UTC time>.{crt,key} and ca-next.* renamed to ca.* (the
--     names rotate-ca.lua gives them).
-- What etcdrun does that the floor does not: preflight on every node (OS,
-- arch, addresses, ports, clock skew, data, running etcd, the CA guard), the
-- membership and upgrade plans and etcd's upgrade rules (etcd_upgrade asks
-- every member's version and the cluster version first, and holds the target
-- against etcdrun.etcd_versions), the operator lock (a lease in etcd, taken
-- and given back), looking at every file, key, certificate, user, directory
-- and unit on every node before deciding (the floor knows what must change
-- and never looks; no idempotence), the release's SHA256SUMS fetched again
-- and the cached tarball re-hashed, a digest look-up of the binaries on the
-- node, snapshot retention, a health and caught-up gate before each restart
-- as well as after (the floor checks after each, and the cluster is healthy
-- when it starts), leadership handed to a member of the old minor while old
-- members remain (etcd_leader; the floor hands over only from the member it
-- restarts), the rotation's stages read from the certificates (resumable
-- anywhere), the checks and reports at the end (verify over mutual TLS: a
-- canary written and read, a client without a certificate refused; every
-- member's certificates checked by handshake on every run; the status
-- table), and the recap. The floor polls the cluster version every 0.1 s,
-- etcdrun's etcd_upgrade every 0.5 s (up to 0.4 s of etcdrun's time there is
-- its polling). After every floor operation, untimed, etcdrun's
-- tls-cluster.lua runs with the same inventory and version and must report
-- changed=0 on every host: the floor left the nodes, the certificates, the
-- CA files (pki/retired included) and etcdctl.env as etcdrun would; the
-- by-hand certificates differ from etcdrun's only in what nothing compares
-- (serials; validity, which etcdrun starts 5 minutes back; the authority key
-- identifier etcdrun also puts in its CA certificates).
--
-- Usage: ./etcdrun spec/bench/trust.lua [runs=3] [nodes=7,8,9]
-- (the nodes are reset before and after; spec/bench/run.sh runs it; with
-- KEEP_LOGS=1 in the environment every run's log is kept and its path printed)
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local sched = require("etcdrun.sched")
local etcd = require("etcdrun.etcd")
local x509 = require("etcdrun.x509")
local bench = dofile("spec/bench/common.lua")
package.path = "./spec/?.lua;" .. package.path
local load = require("support.load")

local q = bench.q
local runs = tonumber(arg[1]) or 3
local nodes = bench.nodes(arg[2] or "7,8,9")
if #nodes ~= 3 then
   error("trust benchmark: 3 nodes (a 3-member cluster), got " .. #nodes, 0)
end
local A = nodes[1]
local SETTLE = 6 -- s from the end of the last set-up step to a timed operation
local UPGRADE_SETTLE = 10 -- s from the end of the install to a timed upgrade
local started = runtime.monotonic()

local function lab_file(name, default)
   local text = fs.read(bench.lab .. "/" .. name) or default
   if not text then
      error(("no %s in the lab (%s)"):format(name, bench.lab), 0)
   end
   return (text:gsub("%s+", ""))
end
local from = lab_file("etcd_version", "3.4.23")
local to = lab_file("etcd_upgrade_version")
local base_url = lab_file("release_url")
local function minor(v)
   return v:match("^(%d+%.%d+)")
end

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-trust-"))
local ws = tmp .. "/ws" -- the inventory's directory: pki/, snapshots/, floor-snapshots/
local cm = tmp .. "/cm" -- ControlMaster sockets
assert(fs.mkdir(ws) and fs.mkdir(cm))
local ssh_config = bench.absolute(bench.ssh_config)

-- The floor. Environment: CFG (ssh_config), CM (control sockets), PKI, REL
-- (the target's etcd, etcdctl), TO (the target version), SNAP, MEMBERS
-- ("name=address ..." in inventory order).
local FLOOR = [=[
set -euo pipefail
step() { printf '%s %s\n' "$EPOCHREALTIME" "$*" >&2; }
declare -A addr name_of
names=()
for m in $MEMBERS; do
   n=${m%%=*}
   names+=("$n")
   addr[$n]=${m#*=}
   name_of[https://${m#*=}:2379]=$n
done
s() { local h=$1; shift; ssh -F "$CFG" -o ControlMaster=no -o ControlPath="$CM/%n" -- "$h" "$@"; }
ctl() {
   local ep=$1; shift
   "$PKI/bin/etcdctl" --endpoints="$ep" --cacert="$PKI/ca.crt" --cert="$PKI/admin.crt" --key="$PKI/admin.key" \
      --dial-timeout=5s --command-timeout=15s "$@"
}
NODECTL='ETCDCTL_API=3 /opt/etcd/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ssl/ca.crt'
NODECTL+=' --cert=/etc/etcd/ssl/server.crt --key=/etc/etcd/ssl/server.key'
pids=()
waitall() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }
join_by() { local IFS=,; echo "$*"; }
urls() { local u=() n; for n in "$@"; do u+=("https://${addr[$n]}:2379"); done; join_by "${u[@]}"; }
EP=$(urls "${names[@]}")

snapshot() {
   local h=$1 tmp=/var/lib/etcd/.floor-snapshot.db out rev sum f
   step "snapshot from $h"
   out=$(s "$h" "umask 077 && $NODECTL snapshot save $tmp >/dev/null 2>&1 && \
      $NODECTL snapshot status $tmp -w json && sha256sum $tmp")
   rev=$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$out")
   sum=$(tail -n 1 <<<"$out")
   sum=${sum%% *}
   mkdir -p -m 0700 "$SNAP"
   f="$SNAP/etcd-cluster-1-$(date -u +%Y%m%dT%H%M%SZ)-rev$rev.db"
   (umask 077 && s "$h" "cat $tmp && rm -f $tmp" >"$f.incoming")
   [ "$(sha256sum <"$f.incoming")" = "$sum  -" ] || { echo "floor: snapshot checksum differs" >&2; exit 1; }
   echo "$sum  ${f##*/}" >"$f.sha256"
   mv "$f.incoming" "$f"
}

# every member healthy (retried every 0.1 s, 60 s at most)
wait_healthy() {
   local deadline=$((SECONDS + 60)) out
   until out=$(ctl "$EP" endpoint health 2>&1) && [ "$(grep -c 'is healthy' <<<"$out")" -eq "${#names[@]}" ]; do
      [ $SECONDS -lt $deadline ] || { echo "floor: not healthy: $out" >&2; exit 1; }
      sleep 0.1
   done
}

# every member's raft index at the leader's (read once) or beyond
wait_caught_up() {
   local deadline=$((SECONDS + 60)) st target=""
   while :; do
      st=$(ctl "$EP" endpoint status 2>/dev/null) || true
      [ -n "$target" ] || target=$(awk -F', ' '$5 == "true" { print $8 }' <<<"$st")
      if [ -n "$target" ] && [ "$(awk -F', ' -v t="$target" '$8 + 0 >= t + 0' <<<"$st" | wc -l)" -eq "${#names[@]}" ]
      then
         return 0
      fi
      [ $SECONDS -lt $deadline ] || { echo "floor: not caught up: $st" >&2; exit 1; }
      sleep 0.05
   done
}

# one member at a time, followers first (in name order), the leader last
# after handing over; healthy and caught up after each
roll() {
   local st leader n u order=() id
   st=$(ctl "$EP" endpoint status)
   leader=${name_of[$(awk -F', ' '$5 == "true" { print $1 }' <<<"$st")]}
   for n in $(printf '%s\n' "${names[@]}" | sort); do [ "$n" = "$leader" ] || order+=("$n"); done
   order+=("$leader")
   for n in "${order[@]}"; do
      u="https://${addr[$n]}:2379"
      st=$(ctl "$EP" endpoint status)
      if [ "$(awk -F', ' -v u="$u" '$1 == u { print $5 }' <<<"$st")" = true ]; then
         id=$(awk -F', ' -v u="$u" '$1 != u && $8 + 0 > best { best = $8 + 0; id = $2 } END { print id }' <<<"$st")
         step "move the leader away from $n"
         ctl "$u" move-leader "$id" >/dev/null
      fi
      step "restart $n"
      s "$n" systemctl restart etcd
      wait_healthy
      wait_caught_up
   done
}

# sign OUT KEY SUBJECT CA CAKEY KIND [NODE]: a certificate for an existing key
# (a member's: for its CSR)
sign() {
   local out=$1 key=$2 subj=$3 ca=$4 cakey=$5 kind=$6 n=${7:-} ext
   ext=("basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment")
   if [ "$kind" = client ]; then
      ext+=("extendedKeyUsage=clientAuth")
   else
      ext+=("extendedKeyUsage=serverAuth,clientAuth"
         "subjectAltName=DNS:$n,DNS:localhost,IP:${addr[$n]},IP:127.0.0.1,IP:::1")
   fi
   ext+=("subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid")
   # a member's key is on the member: its certificate is signed from its CSR
   if [ "$kind" = member ]; then cat "${out%.crt}.csr"; else openssl req -new -key "$key" -subj "$subj"; fi |
      openssl x509 -req -CA "$ca" -CAkey "$cakey" -set_serial "0x$(openssl rand -hex 16)" -days 825 \
         -out "$out.floor" -extfile <(printf '%s\n' "${ext[@]}") 2>/dev/null
   chmod 0644 "$out.floor"
   mv -f "$out.floor" "$out"
}

# every member and client certificate, from CA $1 (certificate) and $2 (key)
sign_all() {
   local n k
   step "sign 8 certificates"
   for n in "${names[@]}"; do
      for k in server peer; do
         sign "$PKI/$n-$k.crt" "$PKI/$n-$k.key" "/O=etcd $k/CN=$n" "$1" "$2" member "$n" & pids+=($!)
      done
   done
   sign "$PKI/admin.crt" "$PKI/admin.key" "/O=etcd clients/CN=root" "$1" "$2" client & pids+=($!)
   sign "$PKI/healthcheck.crt" "$PKI/healthcheck.key" "/O=etcd clients/CN=healthcheck" "$1" "$2" client & pids+=($!)
   waitall
}

# put NODE SRC DEST: a file in place, 0644 root:etcd
put() { s "$1" "umask 022 && cat >$3.floor && chgrp etcd $3.floor && mv -f $3.floor $3" <"$2"; }

push_member_certs() {
   local n k
   step "push 6 certificates"
   for n in "${names[@]}"; do
      for k in server peer; do put "$n" "$PKI/$n-$k.crt" "/etc/etcd/ssl/$k.crt" & pids+=($!); done
   done
   waitall
}

push_ca() {
   local n
   step "push $1 as ca.crt"
   for n in "${names[@]}"; do put "$n" "$1" /etc/etcd/ssl/ca.crt & pids+=($!); done
   waitall
}

# served CA: every member serves the certificates pki/ has, chained to CA
served_one() {
   local n=$1 port=$2 k=$3 ca=$4 got want
   want=$(openssl x509 -noout -serial -in "$PKI/$n-$k.crt")
   got=$(openssl s_client -connect "${addr[$n]}:$port" -cert "$PKI/admin.crt" -key "$PKI/admin.key" -CAfile "$ca" \
      -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial) || true
   [ "$got" = "$want" ] || { echo "floor: $n serves '$got' on port $port, want $want" >&2; exit 1; }
}
served() {
   local n
   step "served certificates"
   for n in "${names[@]}"; do
      served_one "$n" 2379 server "$1" & pids+=($!)
      served_one "$n" 2380 peer "$1" & pids+=($!)
   done
   waitall
}

op=$1
case $op in
upgrade)
   snapshot "${names[0]}"
   step "push etcd $TO"
   for n in "${names[@]}"; do
      tar -C "$REL" -cf - etcd etcdctl | s "$n" 'set -e; d=$(mktemp -d /opt/etcd/bin/.floor-XXXXXX)
         tar -xf - -C "$d" --no-same-owner; chmod 0755 "$d/etcd" "$d/etcdctl"
         mv -f "$d/etcd" "$d/etcdctl" /opt/etcd/bin/; rmdir "$d"' & pids+=($!)
   done
   waitall
   roll
   step "versions"
   want="{\"etcdserver\":\"$TO\",\"etcdcluster\":\"${TO%.*}.0\"}"
   deadline=$((SECONDS + 60))
   while :; do
      ok=1
      for n in "${names[@]}"; do
         v=$(curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
            "https://${addr[$n]}:2379/version") || { ok=0; break; }
         [ "$v" = "$want" ] || { ok=0; break; }
      done
      [ $ok = 0 ] || break
      [ $SECONDS -lt $deadline ] || { echo "floor: versions: $n: $v, want $want" >&2; exit 1; }
      sleep 0.1
   done
   ;;
renew)
   sign_all "$PKI/ca.crt" "$PKI/ca.key"
   push_member_certs
   served "$PKI/ca.crt"
   ;;
rotate)
   snapshot "${names[0]}"
   step "new CA"
   num=$(($(find "$PKI/retired" -maxdepth 1 -name 'ca-*.crt' 2>/dev/null | wc -l) + 2))
   (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca-next.key")
   openssl req -x509 -new -key "$PKI/ca-next.key" -subj "/O=etcdrun/CN=etcd CA $num" -days 3650 \
      -set_serial "0x$(openssl rand -hex 16)" -out "$PKI/ca-next.crt" -config <(printf '%s\n' "[req]" \
      "distinguished_name=dn" "x509_extensions=v3" "[dn]" "[v3]" "basicConstraints=critical,CA:TRUE,pathlen:0" \
      "keyUsage=critical,keyCertSign,cRLSign" "subjectKeyIdentifier=hash")
   chmod 0644 "$PKI/ca-next.crt"
   cp -p "$PKI/ca.crt" "$PKI/ca-old.crt"
   cat "$PKI/ca-old.crt" "$PKI/ca-next.crt" >"$PKI/ca.crt.floor"
   chmod 0644 "$PKI/ca.crt.floor"
   mv -f "$PKI/ca.crt.floor" "$PKI/ca.crt"
   push_ca "$PKI/ca.crt"
   roll
   sign_all "$PKI/ca-next.crt" "$PKI/ca-next.key"
   push_member_certs
   served "$PKI/ca-next.crt"
   push_ca "$PKI/ca-next.crt"
   roll
   step "the new CA is the CA"
   ts=$(date -u +%Y%m%dT%H%M%SZ)
   mkdir -p -m 0700 "$PKI/retired"
   mv "$PKI/ca-old.crt" "$PKI/retired/ca-$ts.crt"
   mv "$PKI/ca.key" "$PKI/retired/ca-$ts.key"
   mv "$PKI/ca-next.key" "$PKI/ca.key"
   mv "$PKI/ca-next.crt" "$PKI/ca.crt"
   ;;
*)
   echo "floor: unknown operation $op" >&2
   exit 2
   ;;
esac
step done
]=]

local function urls()
   local t = {}
   for i, n in ipairs(nodes) do
      t[i] = ("https://%s:2379"):format(n.address)
   end
   return t
end

local function tls()
   return { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
end

local function inventory()
   local lines = { "[etcd]" }
   for _, n in ipairs(nodes) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root"):format(n.name, n.address)
   end
   lines[#lines + 1] = "[all:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. ssh_config
   assert(fs.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n"))
end

-- Every timed operation waits until the last set-up step is `secs` s old.
local last_touch = runtime.monotonic()
local function settle(secs)
   local left = last_touch + (secs or SETTLE) - runtime.monotonic()
   if left > 0 then
      sched.sleep(left)
   end
end
local function touched()
   last_touch = runtime.monotonic()
end

local logs = 0
local function log(label)
   logs = logs + 1
   return ("%s/%02d-%s.log"):format(tmp, logs, label)
end

-- Its own cache and state: the releases and extracted trees kept between
-- runs, and a handler journal no other etcdrun on this machine reads or writes.
local function etcdrun(playbook, version, args, label)
   local path = log(label)
   local ok, dt = pcall(bench.timed, ("%s -i %s playbooks/%s -e etcd_version=%s -e etcd_release_url=%s %s"):format(
      bench.etcdrun, q(ws .. "/hosts"), playbook, version, q(base_url .. "/v" .. version), args or ""),
      { log = path, timeout = 300, env = ("XDG_CACHE_HOME=%s XDG_STATE_HOME=%s"):format(q(tmp .. "/cache"),
         q(tmp .. "/state")) })
   touched()
   if not ok then
      error(dt, 0)
   end
   return dt, path
end

local function tls_cluster(version, args, label)
   return etcdrun("tls-cluster.lua", version, args, label)
end

local floor_env
local function floor(op, label)
   -- the floor's connections must be the open ones
   for _, n in ipairs(nodes) do
      if not bench.sh(("ssh -o ControlPath=%s -O check %s 2>/dev/null"):format(q(cm .. "/" .. n.name), n.name)) then
         error("the ControlMaster connection to " .. n.name .. " is gone", 0)
      end
   end
   local ok, dt = pcall(bench.timed, "bash " .. q(tmp .. "/floor.sh") .. " " .. op, { log = log(label), timeout = 300,
      env = floor_env })
   touched()
   if not ok then
      error(dt, 0)
   end
   return dt
end

-- a command on a node over its open connection: its output
local function on(n, cmd)
   local p = io.popen(("ssh -F %s -o ControlMaster=no -o ControlPath=%s %s %s"):format(q(ssh_config),
      q(cm .. "/%n"), n.name, q(cmd)))
   local out = p:read("a")
   p:close()
   return out
end

-- The cluster: every member healthy, their names, versions and the cluster version.
local function cluster(what)
   local list, err = etcd.members(urls()[1], tls())
   if not list then
      error(what .. ": member list: " .. tostring(err), 0)
   end
   local names, servers, cv = {}, {}, nil
   for _, m in ipairs(list) do
      names[#names + 1] = m.name
      local ok, herr = etcd.health(m.client_urls[1], tls())
      if not ok then
         error(("%s: %s unhealthy: %s"):format(what, m.name, tostring(herr)), 0)
      end
      local v = assert(etcd.version(m.client_urls[1], tls()))
      servers[#servers + 1] = v.server
      cv = v.cluster
   end
   table.sort(names)
   table.sort(servers)
   return table.concat(names, " "), table.concat(servers, " "), cv
end

local want_names = {}
for i, n in ipairs(nodes) do
   want_names[i] = n.name
end
table.sort(want_names)
want_names = table.concat(want_names, " ")

local function expect_versions(version, what)
   local names, servers, cv = cluster(what)
   local want = ("%s %s %s"):format(version, version, version)
   if names ~= want_names or servers ~= want or minor(cv or "") ~= minor(version) then
      error(("%s: members %s running %s, cluster version %s; want %s running %s, cluster %s.x"):format(what, names,
         servers, tostring(cv), want_names, want, minor(version)), 0)
   end
end

-- Reset to bare, install `version` with etcdrun (args) with a new PKI (the
-- certificates' lifetime is the install's), the cluster healthy.
local function install(version, args, label)
   bench.reset(nodes, { ws .. "/pki", ws .. "/snapshots", ws .. "/floor-snapshots" })
   inventory()
   tls_cluster(version, args, label)
   cluster(label)
end

-- Until the cluster version is the members' minor (a few s after a bootstrap).
local function cluster_version_settled(version)
   local stop = runtime.monotonic() + 60
   while true do
      local v = etcd.version(urls()[1], tls())
      if v and minor(v.cluster or "") == minor(version) then
         return
      end
      if runtime.monotonic() > stop then
         error("the cluster version did not settle at " .. minor(version) .. ": " .. tostring(v and v.cluster), 0)
      end
      sched.sleep(0.2)
   end
end

-- What each member serves on its client and peer ports: {["etcd7 2379"] = info}.
local function served()
   local t = {}
   for _, n in ipairs(nodes) do
      for _, port in ipairs({ 2379, 2380 }) do
         local pem, err = etcd.served_cert(("https://%s:%d"):format(n.address, port), tls())
         if not pem then
            error(("%s:%d: no certificate served: %s"):format(n.name, port, tostring(err)), 0)
         end
         t[n.name .. " " .. port] = x509.info(pem)
      end
   end
   return t
end

local function pki_info(name)
   return x509.info(assert(fs.read(ws .. "/pki/" .. name)))
end

-- Every member serves the certificates pki/ holds (issued by `issuer`).
local function expect_served(what, issuer)
   for key, info in pairs(served()) do
      local name, port = key:match("^(%S+) (%d+)$")
      local want = pki_info(("%s-%s.crt"):format(name, port == "2379" and "server" or "peer"))
      if info.serial ~= want.serial then
         error(("%s: %s serves serial %s on port %s, pki/ has %s"):format(what, name, info.serial, port,
            want.serial), 0)
      end
      if issuer and info.issuer_dn ~= issuer then
         error(("%s: %s serves a certificate of %s on port %s, want %s"):format(what, name, info.issuer_dn, port,
            issuer), 0)
      end
   end
end

local function etcd_pids()
   local t = {}
   for i, n in ipairs(nodes) do
      t[i] = n.name .. ":" .. on(n, "systemctl show -p ExecMainPID --value etcd"):gsub("%s+", "")
   end
   return table.concat(t, " ")
end

-- Renewed: every certificate new (serials differ from `before`), issued for
-- 825 days, served, and no etcd restarted.
local function expect_renewed(what, before_serials, before_pids)
   local now = os.time()
   for _, f in ipairs(before_serials.files) do
      local info = pki_info(f)
      if info.serial == before_serials[f] then
         error(("%s: %s was not renewed"):format(what, f), 0)
      end
      if info.not_after - now < 800 * 86400 then
         error(("%s: %s expires in %d days"):format(what, f, (info.not_after - now) // 86400), 0)
      end
   end
   expect_served(what)
   local after = etcd_pids()
   if after ~= before_pids then
      error(("%s: etcd restarted: %s, then %s"):format(what, before_pids, after), 0)
   end
end

local function cert_serials()
   local t = { files = { "admin.crt", "healthcheck.crt" } }
   for _, n in ipairs(nodes) do
      t.files[#t.files + 1] = n.name .. "-server.crt"
      t.files[#t.files + 1] = n.name .. "-peer.crt"
   end
   for _, f in ipairs(t.files) do
      t[f] = pki_info(f).serial
   end
   return t
end

local function retired_cas()
   local n = 0
   for _, name in ipairs(fs.list(ws .. "/pki/retired") or {}) do
      n = n + (name:match("^ca%-%d+T%d+Z%.crt$") and 1 or 0)
   end
   return n
end

-- Rotated: a new CA in pki/ca.crt (alone), the old one retired, every member
-- trusting it alone and serving its certificates.
local function expect_rotated(what, old_ca_fp, retired_before)
   local ca = assert(fs.read(ws .. "/pki/ca.crt"))
   local info = x509.info(ca)
   if info.fingerprint_sha256 == old_ca_fp or select(2, ca:gsub("BEGIN CERTIFICATE", "")) ~= 1 then
      error(what .. ": pki/ca.crt is not one new CA", 0)
   end
   if fs.read(ws .. "/pki/ca-next.crt") or fs.read(ws .. "/pki/ca-old.crt") then
      error(what .. ": ca-next.crt or ca-old.crt left in pki/", 0)
   end
   if retired_cas() ~= retired_before + 1 then
      error(("%s: %d CAs in pki/retired, want %d"):format(what, retired_cas(), retired_before + 1), 0)
   end
   for _, n in ipairs(nodes) do
      if on(n, "cat /etc/etcd/ssl/ca.crt") ~= ca then
         error(("%s: %s's ca.crt is not pki/ca.crt"):format(what, n.name), 0)
      end
   end
   expect_served(what, info.subject_dn)
   cluster(what)
end

-- fn timed under the writer (into every member): seconds and the writer's
-- summary; raises on a failed write or an acknowledged one lost.
local function under_load(label, fn)
   local prefix = ("bench/trust/%s/"):format(label)
   local w = load.start({ endpoints = urls(), tls = tls(), prefix = prefix, dir = tmp, name = "writer-" .. label,
      max_seconds = 600 })
   local ok, dt = pcall(fn)
   local s = w:stop()
   if not ok then
      error(dt, 0)
   end
   if s.failed ~= 0 or s.written < 1 then
      error(("%s: the writer was not clean: %s"):format(label, load.describe(s)), 0)
   end
   local r = load.check(urls(), tls(), prefix, (load.acked(s)))
   if r.missing + r.wrong ~= 0 then
      error(("%s: acknowledged writes lost: %s"):format(label, table.concat(r.examples, "; ")), 0)
   end
   return dt, s
end

-- After a floor operation: etcdrun, same inventory and version, must change nothing.
local function converged(version, label)
   local _, path = tls_cluster(version, nil, label .. "-etcdrun-after")
   bench.expect_unchanged(path, nodes)
end

local OPS = { "upgrade", "renew", "rotate" }
local t = {}
for _, op in ipairs(OPS) do
   t[op] = { etcdrun = {}, floor = {}, writes = 0, failed = 0, floor_writes = 0 }
end
local function record(op, tool, i, dt, s)
   t[op][tool][i] = dt
   if tool == "etcdrun" then
      t[op].writes, t[op].failed = t[op].writes + s.written, t[op].failed + s.failed
   else
      t[op].floor_writes = t[op].floor_writes + s.written
   end
end

local SHORT_CERTS = "-e etcd_cert_days=20 -e etcd_renew_days=10"

local function prepare()
   local list = {}
   for i, n in ipairs(nodes) do
      list[i] = n.name
   end
   bench.stderr("trust: nodes %s; etcd %s -> %s", table.concat(list, ","), from, to)
   -- etcdrun's cache gets both releases, untimed (the floor's tarball is fetched untimed too)
   install(to, nil, "warm-" .. to)
   -- the floor's material: the target release's binaries
   local rel = tmp .. "/release"
   local arch = on(A, "uname -m"):gsub("%s+", "")
   arch = ({ x86_64 = "amd64", aarch64 = "arm64" })[arch] or arch
   local tarball = ("etcd-v%s-linux-%s.tar.gz"):format(to, arch)
   local url = base_url .. "/v" .. to
   assert(bench.sh(("set -e; mkdir -p %s; cd %s; curl -fsS -o %s %s/%s; curl -fsS -o SHA256SUMS %s/SHA256SUMS; "
      .. "grep ' %s$' SHA256SUMS | sha256sum -c --quiet; tar -xzf %s --strip-components=1 etcd-v%s-linux-%s/etcd "
      .. "etcd-v%s-linux-%s/etcdctl"):format(q(rel), q(rel), tarball, q(url), tarball, q(url), tarball, tarball, to,
      arch, to, arch)), "fetching the release for the floor")
   local m = {}
   for i, n in ipairs(nodes) do
      m[i] = n.name .. "=" .. n.address
   end
   floor_env = ("CFG=%s CM=%s PKI=%s REL=%s TO=%s SNAP=%s MEMBERS=%s"):format(q(ssh_config), q(cm), q(ws .. "/pki"),
      q(rel), to, q(ws .. "/floor-snapshots"), q(table.concat(m, " ")))
   assert(fs.write(tmp .. "/floor.sh", FLOOR))
end

local function round(i)
   -- renewal, then a rotation on the renewed cluster: etcdrun, then by hand
   install(from, SHORT_CERTS, "install-short-certs")
   settle()
   local serials, pids = cert_serials(), etcd_pids()
   record("renew", "etcdrun", i, under_load(("renew-etcdrun-%d"):format(i), function()
      return tls_cluster(from, nil, "renew")
   end))
   expect_renewed("renewal (etcdrun)", serials, pids)
   settle()
   local ca_fp, retired = pki_info("ca.crt").fingerprint_sha256, retired_cas()
   record("rotate", "etcdrun", i, under_load(("rotate-etcdrun-%d"):format(i), function()
      return etcdrun("rotate-ca.lua", from, nil, "rotate")
   end))
   expect_rotated("rotation (etcdrun)", ca_fp, retired)
   settle()
   ca_fp, retired = pki_info("ca.crt").fingerprint_sha256, retired_cas()
   record("rotate", "floor", i, under_load(("rotate-floor-%d"):format(i), function()
      return floor("rotate", "rotate-floor")
   end))
   expect_rotated("rotation (by hand)", ca_fp, retired)
   converged(from, "rotate-floor")

   -- renewal by hand, on a cluster installed the same way
   install(from, SHORT_CERTS, "install-short-certs")
   settle()
   serials, pids = cert_serials(), etcd_pids()
   record("renew", "floor", i, under_load(("renew-floor-%d"):format(i), function()
      return floor("renew", "renew-floor")
   end))
   expect_renewed("renewal (by hand)", serials, pids)
   converged(from, "renew-floor")

   -- the upgrade, each from a fresh install whose cluster version has settled
   for _, tool in ipairs({ "etcdrun", "floor" }) do
      install(from, nil, "install-" .. from)
      settle(UPGRADE_SETTLE)
      cluster_version_settled(from)
      expect_versions(from, "before the upgrade")
      record("upgrade", tool, i, under_load(("upgrade-%s-%d"):format(tool, i), function()
         if tool == "etcdrun" then
            return tls_cluster(to, nil, "upgrade")
         end
         return floor("upgrade", "upgrade-floor")
      end))
      expect_versions(to, ("upgrade (%s)"):format(tool))
      if tool == "floor" then
         converged(to, "upgrade-floor")
      end
   end
   local function f(op, tool)
      return ("%.2f"):format(t[op][tool][i])
   end
   -- the machine is shared: the load says how quiet the round was
   local loadavg = (fs.read("/proc/loadavg") or "?"):match("^%S+") or "?"
   bench.stderr("trust: round %d: upgrade %s / %s s, renewal %s / %s s, rotation %s / %s s (etcdrun / by hand; "
      .. "load average %s)", i, f("upgrade", "etcdrun"), f("upgrade", "floor"), f("renew", "etcdrun"),
      f("renew", "floor"), f("rotate", "etcdrun"), f("rotate", "floor"), loadavg)
end

local ok, err = pcall(function()
   -- the open connections, before any timing
   for _, n in ipairs(nodes) do
      assert(bench.sh(("ssh -F %s -o ControlMaster=yes -o ControlPersist=yes -o ControlPath=%s -fN %s"):format(
         q(ssh_config), q(cm .. "/%n"), n.name)), "opening a ControlMaster connection to " .. n.name)
   end
   prepare()
   for i = 1, runs do
      round(i)
   end
end)
-- leave the nodes bare, whatever happened
local reset_ok, reset_err = pcall(bench.reset, nodes)
bench.close_masters(cm)
if not ok or not reset_ok then
   io.stderr:write("trust benchmark: ", tostring(ok and reset_err or err), "\n(logs kept in ", tmp, ")\n")
   os.exit(1)
end
if os.getenv("KEEP_LOGS") then
   bench.stderr("trust: logs kept in %s", tmp)
else
   fs.remove(tmp, { recursive = true })
end

local LABEL = {
   upgrade = ("upgrade %s -> %s (3 members, one at a time, leader last)"):format(from, to),
   renew = "renew every certificate, no restart (6 member + 2 client)",
   rotate = "CA rotation (rotate-ca.lua: 2 rolling restarts)",
}
local names = {}
for i, n in ipairs(nodes) do
   names[i] = n.name
end
print(("Upgrade, certificate renewal and CA rotation on a 3-member TLS etcd cluster (%s), each timed as the whole "
   .. "process under a writer putting a key every 50 ms; medians of %d runs in seconds (range in brackets):"):format(
   table.concat(names, ","), runs))
print()
print("| operation | etcdrun median (range) | by hand over open SSH (range) | etcdrun / by hand "
   .. "| writes during etcdrun runs (failed) |")
print("|---|---:|---:|---:|---:|")
for _, op in ipairs(OPS) do
   local r = t[op]
   local me, mf = bench.median(r.etcdrun), bench.median(r.floor)
   print(("| %s | %.2f (%s) | %.2f (%s) | %s | %d (%d) |"):format(LABEL[op], me, bench.range(r.etcdrun, 1, "%.2f"),
      mf, bench.range(r.floor, 1, "%.2f"), bench.ratio(me, mf), r.writes, r.failed))
end
print()
print(("By hand: the bash steps of spec/bench/trust.lua's header over ControlMaster connections opened "
   .. "beforehand; after each, an etcdrun tls-cluster.lua run with the same inventory reported changed=0 everywhere. "
   .. "The writer also ran during the by-hand runs (%d writes, none failed). Whole benchmark: %.0f s."):format(
   t.upgrade.floor_writes + t.renew.floor_writes + t.rotate.floor_writes, runtime.monotonic() - started))
