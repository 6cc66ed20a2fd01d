-- make bench: day-2 membership changes with playbooks/tls-cluster.lua against
-- the same steps done by hand over SSH connections that are already open.
-- On 5 lab nodes A B C D E (default etcd1..etcd5; A B C the cluster, D E the
-- nodes that join and leave), each operation timed as the whole process
-- (wall clock, spec/bench/common.lua's bench.timed), RUNS runs of each:
--   add     a converged 3-member cluster A B C, D bare: the inventory gains D;
--   grow    3 -> 5 in one run, D and E bare;
--   shrink  5 -> 3, D and E named in etcd_remove and moved to group [retired];
--   replace etcd on C stopped and its node wiped (spec/bench/reset-node.sh),
--           then a run with -e etcd_replace=C.
-- During every timed run (etcdrun's and the floor's) spec/support/load.lua's
-- writer puts a key every 50 ms into members that stay (A B C; A B for
-- replace): a failed write, or an acknowledged write not read back, fails
-- the benchmark. Every timed operation starts at least 6 s after the last
-- set-up step (and the member starts in it) ended: etcd refuses membership
-- changes (strict reconfiguration, "unhealthy cluster") while a voter has
-- been connected for less than 5 s, and a day-2 change does not start on a
-- cluster that just booted. Growing 3 -> 5 still waits for that inside each
-- timed run, with both tools: etcd 3.4/3.5 take one learner at a time, and
-- the second member can only be added 5 s after the first one started.
-- Set-up between runs is untimed: the 3-member cluster is installed once with
-- etcdrun; after an add, D leaves again through an etcdrun run with
-- etcd_remove; nodes that must be bare are reset with reset-node.sh.
--
-- The floor ("by hand over open SSH"): the bash script FLOOR below, run as
-- `bash floor.sh add|remove|replace ...`, over OpenSSH ControlMaster sockets
-- opened before any timing (ssh -fN -o ControlMaster=yes -o ControlPersist=yes,
-- checked with ssh -O check before each floor run), membership changes with
-- the etcdctl the playbook leaves in the workspace's pki/bin (admin client
-- certificate), on the controller. Prepared once, untimed: the release
-- tarball fetched from the lab's release URL, checked against SHA256SUMS,
-- etcd and etcdctl extracted (etcdrun keeps the same extracted tree in its
-- cache between runs); etcd.conf.yaml, etcd.service and /etc/profile.d/etcd.sh
-- copied from A as etcdrun rendered them. In each timed run it does:
--   add (one or more new members N):
--     snapshot: on A, `etcdctl snapshot save` + `snapshot status -w json` +
--       sha256sum (one ssh), the file read back over ssh into the controller's
--       floor-snapshots/ and removed on A, its sha256 compared, a .sha256 file
--       written beside it;
--     for each N, a server and a peer key made on N (openssl genpkey, EC
--       P-256) with its CSR (openssl req), one ssh per node, the CSRs read
--       back into pki/; each certificate (openssl x509 -req) signed by the
--       workspace's pki/ca.key, with etcdrun's subject (O=etcd server|peer,
--       CN=N), SANs (DNS N, localhost; IP N, 127.0.0.1, ::1), key usages,
--       825 days, into pki/ as etcdrun names them (all in parallel);
--     for each N, a tree staged on the controller (etcd and etcdctl hard
--       links, ca.crt, the certificates, the config adapted from A's
--       with sed: name, data dir, addresses, initial-cluster with the members
--       of the moment N joins; the unit; the profile) and pushed in one ssh
--       per node (tar | ssh tar -x) that also creates the etcd group and
--       system user, /var/lib/etcd and the 0700 data dir, sets owners
--       and modes as etcdrun does, daemon-reload and enable: new nodes in
--       parallel, and meanwhile the existing members' initial-cluster
--       rewritten with sed -i (one ssh each, parallel);
--     for each N in turn: `etcdctl member add N --learner` (retried every
--       0.5 s on "unhealthy cluster", as etcdrun's etcd_member), `systemctl
--       start --no-block etcd` on N, `etcdctl member promote` retried every
--       0.2 s until in sync (as etcd_member), `etcdctl endpoint health
--       --cluster` (every member must say healthy);
--     the final initial-cluster on members that joined before the last one;
--       ETCDCTL_ENDPOINTS rewritten in pki/etcdctl.env.
--   remove (members R): snapshot from A as above; the remaining members'
--     initial-cluster rewritten; for each R in turn: `etcdctl member list`
--     (its id), `endpoint status --cluster` (the leader), `move-leader` to the
--     first remaining voter if R leads, `member remove` (retried on
--     "unhealthy cluster"); on each R node, in parallel, one ssh: `systemctl
--     disable --now etcd`, the data dir moved to .etcdrun-removed-<UTC time>,
--     server.key and peer.key removed; the certificates and CSRs moved to
--     pki/retired; etcdctl.env rewritten; endpoint health --cluster.
--   replace (member C, node wiped): snapshot from A; `member list`, `member
--     remove` of the old C; then the add steps for C (the wiped node makes
--     new keys, and its certificates are signed again, as with etcdrun).
-- What etcdrun does that the floor does not: preflight on every node
-- (OS, arch, addresses, ports, clock skew, data and running etcd), the
-- membership plan with the quorum at each step and its refusals, the operator
-- lock (a lease in etcd, taken, renewed before each join, given back),
-- looking at every file, key, certificate, user, directory and unit on every
-- node before deciding (the floor knows which nodes are new and never looks;
-- no idempotence: run twice, the floor would fail or redo its work), the
-- release's SHA256SUMS fetched again and the cached tarball re-hashed, a
-- digest cache for the binaries on the node, snapshot retention, removing a
-- learner again when it never gets in sync, the checks and reports at the end
-- (verify over mutual TLS, the status table), and the recap. After every
-- floor operation, untimed, etcdrun runs with the same inventory and must
-- report changed=0 on every host: the floor left the nodes, the certificates
-- and etcdctl.env exactly as etcdrun would.
--
-- Usage: ./etcdrun spec/bench/membership.lua [runs=3] [nodes=1,2,3,4,5]
-- (the nodes are reset before and after; spec/bench/run.sh runs it; with
-- KEEP_LOGS=1 in the environment every run's log is kept and its path printed)
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local sched = require("etcdrun.sched")
local etcd = require("etcdrun.etcd")
local bench = dofile("spec/bench/common.lua")
package.path = "./spec/?.lua;" .. package.path
local load = require("support.load")

local q = bench.q
local runs = tonumber(arg[1]) or 3
local nodes = bench.nodes(arg[2] or "1,2,3,4,5")
if #nodes ~= 5 then
   error("membership benchmark: 5 nodes (3 members, 2 that join and leave), got " .. #nodes, 0)
end
local A, B, C, D, E = table.unpack(nodes)
local SETTLE = 6 -- s from the end of the last set-up step to a timed operation
local started = runtime.monotonic()

local version = ((fs.read(bench.lab .. "/etcd_version") or "3.4.23"):gsub("%s+", ""))
local release = assert(fs.read(bench.lab .. "/release_url"), "no release_url in the lab"):gsub("%s+", "")
   .. "/v" .. version

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-membership-"))
local ws = tmp .. "/ws" -- the inventory's directory: pki/, snapshots/, floor-snapshots/
local cm = tmp .. "/cm" -- ControlMaster sockets
assert(fs.mkdir(ws) and fs.mkdir(cm))
local ssh_config = bench.absolute(bench.ssh_config)

-- The floor. Environment: CFG (ssh_config), CM (control sockets), PKI, REL
-- (etcd, etcdctl), TPL (A's rendered files), TPL_ADDR (A's address), SNAP,
-- STAGE, MEMBERS ("name=address ..." of the cluster before the operation, in
-- inventory order).
local FLOOR = [=[
set -euo pipefail
step() { printf '%s %s\n' "$EPOCHREALTIME" "$*" >&2; }
declare -A addr
names=()
for m in $MEMBERS; do names+=("${m%%=*}"); addr[${m%%=*}]=${m#*=}; done
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
initial_cluster() { local p=() n; for n in "$@"; do p+=("$n=https://${addr[$n]}:2380"); done; join_by "${p[@]}"; }
set_ic() { s "$1" "sed -i 's|^initial-cluster: .*|initial-cluster: $2|' /etc/etcd/etcd.conf.yaml"; }
etcdctl_env() { sed -i "s|^ETCDCTL_ENDPOINTS=.*|ETCDCTL_ENDPOINTS=$(urls "$@")|" "$PKI/etcdctl.env"; }
# retry "what etcd says while it is not ready yet" every $2 s, 120 s at most
retry() {
   local deadline=$((SECONDS + 120)) wait_on=$1 every=$2 out; shift 2
   until out=$("$@" 2>&1); do
      case $out in *"$wait_on"*) ;; *) echo "$out" >&2; return 1 ;; esac
      [ $SECONDS -lt $deadline ] || { echo "$out" >&2; return 1; }
      sleep "$every"
   done
   echo "$out"
}
member_id() { ctl "$EP" member list | awk -F', ' -v n="$1" '$3 == n { print $1 }'; }

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

# keys N: N's server and peer keys made on N by its openssl (they never
# leave it), as etcdrun makes them, and their CSRs brought back into pki/
keys() {
   local n=$1 out
   out=$(s "$n" "set -e; install -d -m 0750 /etc/etcd/ssl; cd /etc/etcd/ssl; umask 077
      for k in server peer; do
         openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \$k.key
         openssl req -new -key \$k.key -subj \"/O=etcd \$k/CN=$n\" -out \$k.csr; chmod 0644 \$k.csr
      done; cat server.csr peer.csr")
   sed -n '1,/^-----END/p' <<<"$out" >"$PKI/$n-server.csr"
   sed '1,/^-----END/d' <<<"$out" >"$PKI/$n-peer.csr"
   chmod 0644 "$PKI/$n-server.csr" "$PKI/$n-peer.csr"
}

# issue N KIND: N's certificate signed from its CSR
issue() {
   local n=$1 k=$2 a=${addr[$1]}
   openssl x509 -req -in "$PKI/$n-$k.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 825 -out "$PKI/$n-$k.crt" \
      -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
         "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth,clientAuth" \
         "subjectAltName=DNS:$n,DNS:localhost,IP:$a,IP:127.0.0.1,IP:::1" \
         "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid") 2>/dev/null
   chmod 0644 "$PKI/$n-$k.crt"
}

# certs N...: keys on the nodes, then their certificates (all in parallel)
certs() {
   local n
   for n in "$@"; do keys "$n" & pids+=($!); done
   waitall
   for n in "$@"; do issue "$n" server & pids+=($!); issue "$n" peer & pids+=($!); done
   waitall
}

stage() {
   local n=$1 ic=$2 d="$STAGE/$1" a=${addr[$1]} k
   rm -rf "$d"
   mkdir -p "$d/opt/etcd/bin" "$d/etc/etcd/ssl" "$d/etc/systemd/system" "$d/etc/profile.d"
   ln "$REL/etcd" "$REL/etcdctl" "$d/opt/etcd/bin/"
   cp "$PKI/ca.crt" "$d/etc/etcd/ssl/ca.crt"
   for k in server peer; do
      cp "$PKI/$n-$k.crt" "$d/etc/etcd/ssl/$k.crt"
   done
   sed -e "s|^name: .*|name: $n|" -e "s|^data-dir: .*|data-dir: /var/lib/etcd/$n.etcd|" \
      -e "s|//${TPL_ADDR//./\\.}:|//$a:|g" -e "s|^initial-cluster: .*|initial-cluster: $ic|" \
      "$TPL/etcd.conf.yaml" >"$d/etc/etcd/etcd.conf.yaml"
   cp "$TPL/etcd.service" "$d/etc/systemd/system/etcd.service"
   cp "$TPL/etcd.sh" "$d/etc/profile.d/etcd.sh"
   chmod 0750 "$d/etc/etcd/ssl"
   chmod 0644 "$d/etc/etcd/ssl/"*.crt "$d/etc/systemd/system/etcd.service" "$d/etc/profile.d/etcd.sh"
   chmod 0640 "$d/etc/etcd/etcd.conf.yaml"
}

push() {
   local n=$1
   tar -C "$STAGE/$n" -cf - etc opt | s "$n" "set -e
      getent group etcd >/dev/null || groupadd --system etcd
      id -u etcd >/dev/null 2>&1 || useradd --system --gid etcd --home-dir /var/lib/etcd \
         --shell /usr/sbin/nologin --no-create-home etcd
      install -d -m 0755 /var/lib/etcd
      install -d -m 0700 -o etcd -g etcd /var/lib/etcd/$n.etcd
      tar -xf - -C / --no-same-owner --no-overwrite-dir
      chgrp etcd /etc/etcd/ssl /etc/etcd/ssl/ca.crt /etc/etcd/ssl/server.crt /etc/etcd/ssl/peer.crt \
         /etc/etcd/etcd.conf.yaml
      chown etcd:etcd /etc/etcd/ssl/server.key /etc/etcd/ssl/peer.key
      systemctl daemon-reload
      systemctl enable --quiet etcd"
}

health() {
   local out
   out=$(ctl "$EP" endpoint health --cluster 2>&1) || { echo "$out" >&2; exit 1; }
   [ "$(grep -c 'is healthy' <<<"$out")" -eq "$1" ] || { echo "$out" >&2; exit 1; }
}

join() {
   local n=$1 out id
   step "member add $n --learner"
   out=$(retry "unhealthy cluster" 0.5 ctl "$EP" member add "$n" --learner --peer-urls="https://${addr[$n]}:2380")
   id=$(sed -n 's/^Member *\([0-9a-f]*\) added.*/\1/p' <<<"$out")
   [ -n "$id" ] || { echo "floor: no member id in: $out" >&2; exit 1; }
   step "start $n"
   s "$n" systemctl start --no-block etcd
   step "promote $n"
   retry "in sync with leader" 0.2 ctl "$EP" member promote "$id" >/dev/null
   EP="$EP,https://${addr[$n]}:2379"
}

op=$1
shift
case $op in
add)
   new=()
   for m in "$@"; do addr[${m%%=*}]=${m#*=}; new+=("${m%%=*}"); done
   old=("${names[@]}")
   all=("${old[@]}" "${new[@]}")
   EP=$(urls "${old[@]}")
   snapshot "${old[0]}"
   step "keys and certificates"
   certs "${new[@]}"
   step "stage and push"
   cur=("${old[@]}")
   for n in "${new[@]}"; do cur+=("$n"); stage "$n" "$(initial_cluster "${cur[@]}")"; done
   ic=$(initial_cluster "${all[@]}")
   for n in "${new[@]}"; do push "$n" & pids+=($!); done
   for n in "${old[@]}"; do set_ic "$n" "$ic" & pids+=($!); done
   waitall
   count=${#old[@]}
   for n in "${new[@]}"; do
      join "$n"
      count=$((count + 1))
      step "health ($count)"
      health "$count"
   done
   for n in "${new[@]:0:${#new[@]}-1}"; do set_ic "$n" "$ic" & pids+=($!); done
   waitall
   etcdctl_env "${all[@]}"
   ;;
remove)
   keep=()
   for n in "${names[@]}"; do [[ " $* " == *" $n "* ]] || keep+=("$n"); done
   EP=$(urls "${keep[@]}")
   snapshot "${keep[0]}"
   ic=$(initial_cluster "${keep[@]}")
   for n in "${keep[@]}"; do set_ic "$n" "$ic" & pids+=($!); done
   waitall
   for n in "$@"; do
      step "remove $n"
      id=$(member_id "$n")
      st=$(ctl "$EP" endpoint status --cluster)
      if [ "$(awk -F', ' '$5 == "true" { print $2 }' <<<"$st")" = "$id" ]; then
         step "move the leader away from $n"
         ctl "$(awk -F', ' '$5 == "true" { print $1 }' <<<"$st")" move-leader "$(member_id "${keep[0]}")" >/dev/null
      fi
      retry "unhealthy cluster" 0.5 ctl "$EP" member remove "$id" >/dev/null
   done
   step "retire the nodes"
   stamp=$(date -u +%Y%m%dT%H%M%SZ)
   for n in "$@"; do
      s "$n" "systemctl disable --now --quiet etcd; d=/var/lib/etcd/$n.etcd
         if [ -e \$d ]; then mv -T \$d \$d.etcdrun-removed-$stamp; fi
         rm -f /etc/etcd/ssl/server.key /etc/etcd/ssl/peer.key" & pids+=($!)
   done
   waitall
   mkdir -p -m 0700 "$PKI/retired"
   for n in "$@"; do mv -- "$PKI/$n"-server.* "$PKI/$n"-peer.* "$PKI/retired/"; done
   etcdctl_env "${keep[@]}"
   health "${#keep[@]}"
   ;;
replace)
   n=$1
   keep=()
   for m in "${names[@]}"; do [ "$m" = "$n" ] || keep+=("$m"); done
   EP=$(urls "${keep[@]}")
   snapshot "${keep[0]}"
   step "remove the old $n"
   retry "unhealthy cluster" 0.5 ctl "$EP" member remove "$(member_id "$n")" >/dev/null
   step "keys and certificates"
   certs "$n"
   stage "$n" "$(initial_cluster "${names[@]}")"
   step "push"
   push "$n"
   join "$n"
   health "${#names[@]}"
   ;;
*)
   echo "floor: unknown operation $op" >&2
   exit 2
   ;;
esac
step done
]=]

local function names(list)
   local t = {}
   for i, n in ipairs(list) do
      t[i] = n.name
   end
   return t
end

local function urls(list)
   local t = {}
   for i, n in ipairs(list) do
      t[i] = ("https://%s:2379"):format(n.address)
   end
   return t
end

local function tls()
   return { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
end

-- group etcd = members, group retired = retired
local function inventory(members, retired)
   local lines = { "[etcd]" }
   for _, n in ipairs(members) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root"):format(n.name, n.address)
   end
   lines[#lines + 1] = "[retired]"
   for _, n in ipairs(retired or {}) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root"):format(n.name, n.address)
   end
   lines[#lines + 1] = "[all:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. ssh_config
   assert(fs.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n"))
end

-- Every member up at least SETTLE s before a timed operation.
local last_start = runtime.monotonic()
local function settle()
   local left = last_start + SETTLE - runtime.monotonic()
   if left > 0 then
      sched.sleep(left)
   end
end
local function touched()
   last_start = runtime.monotonic()
end

local logs = 0
local function log(label)
   logs = logs + 1
   return ("%s/%02d-%s.log"):format(tmp, logs, label)
end

-- Its own cache and state: the release and extracted tree kept between runs,
-- and a handler journal no other etcdrun on this machine reads or writes.
local function etcdrun(args, label)
   local path = log(label)
   local ok, dt = pcall(bench.timed, ("%s -i %s playbooks/tls-cluster.lua -e etcd_version=%s -e etcd_release_url=%s"
      .. " %s"):format(bench.etcdrun, q(ws .. "/hosts"), version, q(release), args or ""),
      { log = path, timeout = 300, env = ("XDG_CACHE_HOME=%s XDG_STATE_HOME=%s"):format(q(tmp .. "/cache"),
         q(tmp .. "/state")) })
   touched()
   if not ok then
      error(dt, 0)
   end
   return dt, path
end

local floor_env
local function floor(members, args, label)
   -- the floor's connections must be the open ones
   for _, n in ipairs(nodes) do
      if not bench.sh(("ssh -o ControlPath=%s -O check %s 2>/dev/null"):format(q(cm .. "/" .. n.name), n.name)) then
         error("the ControlMaster connection to " .. n.name .. " is gone", 0)
      end
   end
   local m = {}
   for i, n in ipairs(members) do
      m[i] = n.name .. "=" .. n.address
   end
   local ok, dt = pcall(bench.timed, "bash " .. q(tmp .. "/floor.sh") .. " " .. args,
      { log = log(label), timeout = 300, env = floor_env .. " MEMBERS=" .. q(table.concat(m, " ")) })
   touched()
   if not ok then
      error(dt, 0)
   end
   return dt
end

local function reset(list)
   bench.reset(list)
   touched()
end

-- The cluster is exactly `list`, no learner, every member healthy.
local function expect_cluster(list, what)
   local got, err = etcd.members(urls(list)[1], tls())
   if not got then
      error(what .. ": member list: " .. tostring(err), 0)
   end
   local want, have = table.concat(names(list), " "), {}
   for i, m in ipairs(got) do
      have[i] = m.name .. (m.is_learner and " (learner)" or "")
      local ok, herr = etcd.health(m.client_urls[1], tls())
      if not ok then
         error(("%s: %s unhealthy: %s"):format(what, m.name, tostring(herr)), 0)
      end
   end
   table.sort(have)
   if table.concat(have, " ") ~= want then
      error(("%s: members %s, want %s"):format(what, table.concat(have, " "), want), 0)
   end
end

-- fn timed under the writer (into the members `via`): seconds and the
-- writer's summary; raises on a failed write or an acknowledged one lost.
local function under_load(label, via, fn)
   settle()
   local prefix = ("bench/membership/%s/"):format(label)
   local w = load.start({ endpoints = urls(via), tls = tls(), prefix = prefix, dir = tmp, name = "writer-" .. label,
      max_seconds = 600 })
   local ok, dt = pcall(fn)
   local s = w:stop()
   if not ok then
      error(dt, 0)
   end
   if s.failed ~= 0 or s.written < 1 then
      error(("%s: the writer was not clean: %s"):format(label, load.describe(s)), 0)
   end
   local r = load.check(urls(via), tls(), prefix, (load.acked(s)))
   if r.missing + r.wrong ~= 0 then
      error(("%s: acknowledged writes lost: %s"):format(label, table.concat(r.examples, "; ")), 0)
   end
   return dt, s
end

-- After a floor operation: etcdrun, same inventory, must change nothing.
local function converged(members, retired, args, label)
   inventory(members, retired)
   local _, path = etcdrun(args, label .. "-etcdrun-after")
   local all = {}
   for _, n in ipairs(members) do
      all[#all + 1] = n
   end
   for _, n in ipairs(retired or {}) do
      all[#all + 1] = n
   end
   bench.expect_unchanged(path, all)
end

-- Back to A B C: D leaves through etcdrun, then its node is reset.
local function drop_d()
   inventory({ A, B, C }, { D })
   etcdrun("-e etcd_remove=" .. D.name, "remove-d")
   expect_cluster({ A, B, C }, "remove " .. D.name)
   reset({ D })
end

local OPS = { "add", "grow", "shrink", "replace" }
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

local function prepare()
   bench.stderr("membership: resetting %s, installing %s, %s, %s", table.concat(names(nodes), ","), A.name, B.name,
      C.name)
   reset(nodes)
   inventory({ A, B, C })
   etcdrun(nil, "install")
   expect_cluster({ A, B, C }, "install")
   -- the floor's material: the release's binaries, A's rendered files
   local rel, tpl = tmp .. "/release", tmp .. "/tpl"
   local arch = io.popen(("ssh -F %s %s uname -m"):format(q(ssh_config), A.name)):read("l")
   arch = ({ x86_64 = "amd64", aarch64 = "arm64" })[arch] or arch
   local tarball = ("etcd-v%s-linux-%s.tar.gz"):format(version, arch)
   assert(bench.sh(("set -e; mkdir -p %s %s; cd %s; curl -fsS -o %s %s/%s; curl -fsS -o SHA256SUMS %s/SHA256SUMS; "
      .. "grep ' %s$' SHA256SUMS | sha256sum -c --quiet; tar -xzf %s --strip-components=1 etcd-v%s-linux-%s/etcd "
      .. "etcd-v%s-linux-%s/etcdctl"):format(q(rel), q(tpl), q(rel), tarball, q(release), tarball, q(release),
      tarball, tarball, version, arch, version, arch)), "fetching the release for the floor")
   for file, path in pairs({ ["etcd.conf.yaml"] = "/etc/etcd/etcd.conf.yaml",
      ["etcd.service"] = "/etc/systemd/system/etcd.service", ["etcd.sh"] = "/etc/profile.d/etcd.sh" }) do
      assert(bench.sh(("ssh -F %s %s cat %s >%s"):format(q(ssh_config), A.name, path, q(tpl .. "/" .. file))))
   end
   floor_env = ("CFG=%s CM=%s PKI=%s REL=%s TPL=%s TPL_ADDR=%s SNAP=%s STAGE=%s"):format(q(ssh_config), q(cm),
      q(ws .. "/pki"), q(rel), q(tpl), A.address, q(ws .. "/floor-snapshots"), q(tmp .. "/stage"))
   assert(fs.write(tmp .. "/floor.sh", FLOOR))
   -- the open connections, before any timing
   for _, n in ipairs(nodes) do
      assert(bench.sh(("ssh -F %s -o ControlMaster=yes -o ControlPersist=yes -o ControlPath=%s -fN %s"):format(
         q(ssh_config), q(cm .. "/%n"), n.name)), "opening a ControlMaster connection to " .. n.name)
   end
end

local function round(i)
   -- add one member: etcdrun, then by hand
   inventory({ A, B, C, D })
   record("add", "etcdrun", i, under_load(("add-etcdrun-%d"):format(i), { A, B, C }, function()
      return etcdrun(nil, "add")
   end))
   expect_cluster({ A, B, C, D }, "add (etcdrun)")
   drop_d()
   record("add", "floor", i, under_load(("add-floor-%d"):format(i), { A, B, C }, function()
      return floor({ A, B, C }, ("add %s=%s"):format(D.name, D.address), "add-floor")
   end))
   expect_cluster({ A, B, C, D }, "add (by hand)")
   converged({ A, B, C, D }, nil, nil, "add-floor")
   drop_d()

   -- grow 3 -> 5 and shrink 5 -> 3 (E is bare): etcdrun
   inventory({ A, B, C, D, E })
   record("grow", "etcdrun", i, under_load(("grow-etcdrun-%d"):format(i), { A, B, C }, function()
      return etcdrun(nil, "grow")
   end))
   expect_cluster({ A, B, C, D, E }, "grow (etcdrun)")
   inventory({ A, B, C }, { D, E })
   record("shrink", "etcdrun", i, under_load(("shrink-etcdrun-%d"):format(i), { A, B, C }, function()
      return etcdrun(("-e etcd_remove=%s,%s"):format(D.name, E.name), "shrink")
   end))
   expect_cluster({ A, B, C }, "shrink (etcdrun)")
   -- the same by hand
   reset({ D, E })
   record("grow", "floor", i, under_load(("grow-floor-%d"):format(i), { A, B, C }, function()
      return floor({ A, B, C }, ("add %s=%s %s=%s"):format(D.name, D.address, E.name, E.address), "grow-floor")
   end))
   expect_cluster({ A, B, C, D, E }, "grow (by hand)")
   converged({ A, B, C, D, E }, nil, nil, "grow-floor")
   record("shrink", "floor", i, under_load(("shrink-floor-%d"):format(i), { A, B, C }, function()
      return floor({ A, B, C, D, E }, ("remove %s %s"):format(D.name, E.name), "shrink-floor")
   end))
   expect_cluster({ A, B, C }, "shrink (by hand)")
   converged({ A, B, C }, { D, E }, ("-e etcd_remove=%s,%s"):format(D.name, E.name), "shrink-floor")
   reset({ D, E })

   -- replace a dead, wiped member
   inventory({ A, B, C })
   reset({ C })
   record("replace", "etcdrun", i, under_load(("replace-etcdrun-%d"):format(i), { A, B }, function()
      return etcdrun("-e etcd_replace=" .. C.name, "replace")
   end))
   expect_cluster({ A, B, C }, "replace (etcdrun)")
   reset({ C })
   record("replace", "floor", i, under_load(("replace-floor-%d"):format(i), { A, B }, function()
      return floor({ A, B, C }, "replace " .. C.name, "replace-floor")
   end))
   expect_cluster({ A, B, C }, "replace (by hand)")
   converged({ A, B, C }, nil, nil, "replace-floor")
   local function f(op, tool)
      return ("%.2f"):format(t[op][tool][i])
   end
   -- the machine is shared: the load says how quiet the round was
   local loadavg = (fs.read("/proc/loadavg") or "?"):match("^%S+") or "?"
   bench.stderr("membership: round %d: add %s / %s s, grow %s / %s s, shrink %s / %s s, replace %s / %s s "
      .. "(etcdrun / by hand; load average %s)", i, f("add", "etcdrun"), f("add", "floor"), f("grow", "etcdrun"),
      f("grow", "floor"), f("shrink", "etcdrun"), f("shrink", "floor"), f("replace", "etcdrun"), f("replace", "floor"),
      loadavg)
end

local ok, err = pcall(function()
   prepare()
   for i = 1, runs do
      round(i)
   end
end)
bench.close_masters(cm)
-- leave the nodes bare, whatever happened
pcall(bench.reset, nodes)
if not ok then
   io.stderr:write("membership benchmark: ", tostring(err), "\n(logs kept in ", tmp, ")\n")
   os.exit(1)
end
if os.getenv("KEEP_LOGS") then
   bench.stderr("membership: logs kept in %s", tmp)
else
   fs.remove(tmp, { recursive = true })
end

local LABEL = {
   add = ("add one member (3 -> 4, %s bare)"):format(D.name),
   grow = ("grow 3 -> 5 in one run (%s, %s bare)"):format(D.name, E.name),
   shrink = ("shrink 5 -> 3 (etcd_remove=%s,%s)"):format(D.name, E.name),
   replace = ("replace a dead, wiped member (etcd_replace=%s)"):format(C.name),
}
print(("Membership changes on a TLS etcd %s cluster (%s; %s, %s join and leave), each timed as the whole process "
   .. "under a writer putting a key every 50 ms; medians of %d runs in seconds (range in brackets):"):format(version,
   table.concat(names({ A, B, C }), ","), D.name, E.name, runs))
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
print(("By hand: the bash steps of spec/bench/membership.lua's header over ControlMaster connections opened "
   .. "beforehand; after each, an etcdrun run with the same inventory reported changed=0 everywhere. "
   .. "The writer also ran during the by-hand runs (%d writes, none failed). Whole benchmark: %.0f s."):format(
   t.add.floor_writes + t.grow.floor_writes + t.shrink.floor_writes + t.replace.floor_writes,
   runtime.monotonic() - started))
