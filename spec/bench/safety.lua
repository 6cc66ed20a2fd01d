-- Benchmark: the safety net on a 3-member TLS etcd cluster holding 10,000
-- keys, etcdrun's playbooks against the same steps by hand over open SSH
-- connections (the floor), each timed as a whole process:
--   snapshot  playbooks/snapshot.lua
--   restore   playbooks/restore.lua -e snapshot=F -e confirm=yes (every member)
--   doctor    playbooks/doctor.lua on the healthy cluster
--   defrag    playbooks/defrag.lua -e force=yes (every member, leader last)
--
--   ./etcdrun spec/bench/safety.lua [RUNS=3] [NODES=7,8,9]
--
-- The floor (bash over ControlMaster connections opened beforehand; etcdctl
-- on the controller is the one tls-cluster.lua leaves in pki/bin):
--   snapshot: on the first member, `etcdctl snapshot save` + `snapshot status
--     -w json` + sha256sum (one ssh), the file read back over ssh, its sha256
--     compared, a .sha256 file written beside it;
--   restore: the snapshot's own hash checked (its last 32 bytes against the
--     sha256 of the rest); on every member at once (one ssh each, the
--     snapshot on stdin): etcd stopped, the file written, `etcdctl snapshot
--     restore` with the member's name, peer URL, the initial cluster and a
--     new token into a temporary dir, chown, the old data dir moved aside,
--     the new one renamed into place, etcd started (--no-block); then
--     `etcdctl endpoint health` until all three are healthy;
--   doctor: `endpoint health`, `endpoint status -w json`, `member list -w
--     json`, `alarm list` (one etcdctl each, in parallel), `endpoint hashkv`
--     on a member (one ssh), each member's client and peer certificate by
--     `openssl s_client` (6 in parallel), and per node (one ssh each, in
--     parallel) `date +%s`, `systemctl is-enabled etcd` and the
--     initial-cluster-state line;
--   defrag: `endpoint status` (the leader), `etcdctl defrag` on each follower
--     in name order, `move-leader` to the most caught-up follower, defrag the
--     old leader, `endpoint status` after each.
-- After each restore, the 10,000 keys are counted on the cluster.
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local sched = require("etcdrun.sched")
local etcd = require("etcdrun.etcd")
local bench = dofile("spec/bench/common.lua")

local q = bench.q
local runs = tonumber(arg[1]) or 3
local nodes = bench.nodes(arg[2] or "7,8,9")
if #nodes ~= 3 then
   error("safety benchmark: 3 nodes (a 3-member cluster), got " .. #nodes, 0)
end
local KEYS = 10000
local started = runtime.monotonic()

local function lab_file(name)
   local text = fs.read(bench.lab .. "/" .. name)
   if not text then
      error(("no %s in the lab (%s)"):format(name, bench.lab), 0)
   end
   return (text:gsub("%s+", ""))
end
local version, base_url = lab_file("etcd_version"), lab_file("release_url")

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-safety-"))
local ws, cm = tmp .. "/ws", tmp .. "/cm"
assert(fs.mkdir(ws) and fs.mkdir(cm))
local ssh_config = bench.absolute(bench.ssh_config)

local FLOOR = [=[
set -euo pipefail
declare -A addr
names=()
for m in $MEMBERS; do n=${m%%=*}; names+=("$n"); addr[$n]=${m#*=}; done
s() { local h=$1; shift; ssh -F "$CFG" -o ControlMaster=no -o ControlPath="$CM/%n" -- "$h" "$@"; }
ctl() { local ep=$1; shift; ETCDCTL_API=3 "$PKI/bin/etcdctl" --endpoints="$ep" --cacert="$PKI/ca.crt" \
   --cert="$PKI/admin.crt" --key="$PKI/admin.key" --dial-timeout=5s --command-timeout=60s "$@"; }
NODECTL='ETCDCTL_API=3 /opt/etcd/bin/etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/etcd/ssl/ca.crt'
NODECTL+=' --cert=/etc/etcd/ssl/server.crt --key=/etc/etcd/ssl/server.key'
pids=()
waitall() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }
join_by() { local IFS=,; echo "$*"; }
urls() { local u=() n; for n in "$@"; do u+=("https://${addr[$n]}:2379"); done; join_by "${u[@]}"; }
EP=$(urls "${names[@]}")
A=${names[0]}
case $1 in
snapshot)
   tmp=/var/lib/etcd/.floor-snapshot.db
   out=$(s "$A" "umask 077 && $NODECTL snapshot save $tmp >/dev/null 2>&1 && $NODECTL snapshot status $tmp -w json &&
      sha256sum $tmp")
   rev=$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$out")
   sum=$(tail -n 1 <<<"$out"); sum=${sum%% *}
   mkdir -p -m 0700 "$SNAP"
   f="$SNAP/etcd-cluster-1-$(date -u +%Y%m%dT%H%M%SZ)-rev$rev.db"
   (umask 077 && s "$A" "cat $tmp && rm -f $tmp" >"$f.incoming")
   [ "$(sha256sum <"$f.incoming")" = "$sum  -" ] || { echo "floor: snapshot checksum differs" >&2; exit 1; }
   echo "$sum  ${f##*/}" >"$f.sha256"
   mv "$f.incoming" "$f"
   ;;
restore)
   f=$2
   size=$(stat -c %s "$f")
   body=$(head -c $((size - 32)) "$f" | sha256sum | cut -d' ' -f1)
   [ "$body" = "$(tail -c 32 "$f" | od -An -tx1 | tr -d ' \n')" ] ||
      { echo "floor: the snapshot's hash does not match" >&2; exit 1; }
   ic=""; for n in "${names[@]}"; do ic+="${ic:+,}$n=https://${addr[$n]}:2380"; done
   token="etcd-cluster-1-restored-$(date -u +%Y%m%dT%H%M%SZ)"
   for n in "${names[@]}"; do
      s "$n" "set -e; systemctl stop etcd; umask 077; cat > /var/lib/etcd/.floor-restore.db
         d=/var/lib/etcd/$n.etcd; t=\$d.floor-restoring; rm -rf \$t
         ETCDCTL_API=3 /opt/etcd/bin/etcdctl snapshot restore /var/lib/etcd/.floor-restore.db --name $n \
            --initial-cluster $ic --initial-cluster-token $token \
            --initial-advertise-peer-urls https://${addr[$n]}:2380 --data-dir \$t >/dev/null 2>&1
         chown -R etcd:etcd \$t; chmod 0700 \$t
         if [ -e \$d ]; then mv -T \$d \$d.floor-replaced-\$(date -u +%Y%m%dT%H%M%SZ)-\$\$; fi
         mv -T \$t \$d; rm -f /var/lib/etcd/.floor-restore.db; systemctl start --no-block etcd" <"$f" & pids+=($!)
   done
   waitall
   deadline=$((SECONDS + 60))
   until out=$(ctl "$EP" endpoint health 2>&1) && [ "$(grep -c 'is healthy' <<<"$out")" -eq 3 ]; do
      [ $SECONDS -lt $deadline ] || { echo "floor: not healthy: $out" >&2; exit 1; }
      sleep 0.1
   done
   ;;
doctor)
   d=$(mktemp -d)
   ctl "$EP" endpoint health >"$d/health" 2>&1 & pids+=($!)
   ctl "$EP" endpoint status -w json >"$d/status" & pids+=($!)
   ctl "$EP" member list -w json >"$d/members" & pids+=($!)
   ctl "$EP" alarm list >"$d/alarms" & pids+=($!)
   s "$A" "$NODECTL --endpoints=$EP endpoint hashkv -w json" >"$d/hashkv" & pids+=($!)
   for n in "${names[@]}"; do
      for p in 2379 2380; do
         openssl s_client -connect "${addr[$n]}:$p" -cert "$PKI/admin.crt" -key "$PKI/admin.key" \
            -CAfile "$PKI/ca.crt" </dev/null 2>/dev/null | openssl x509 -noout -enddate -ext subjectAltName \
            >"$d/cert-$n-$p" & pids+=($!)
      done
      s "$n" "date +%s; systemctl is-enabled etcd; grep '^initial-cluster-state' /etc/etcd/etcd.conf.yaml" \
         >"$d/node-$n" & pids+=($!)
   done
   waitall
   [ "$(grep -c 'is healthy' "$d/health")" -eq 3 ] || { cat "$d/health" >&2; exit 1; }
   [ "$(grep -o '"hash":[0-9]*' "$d/hashkv" | sort -u | wc -l)" -eq 1 ] || { cat "$d/hashkv" >&2; exit 1; }
   rm -rf "$d"
   ;;
defrag)
   st=$(ctl "$EP" endpoint status)
   leader=$(awk -F', ' '$5 == "true" { print $1 }' <<<"$st")
   for n in $(printf '%s\n' "${names[@]}" | sort); do
      u="https://${addr[$n]}:2379"
      [ "$u" = "$leader" ] && continue
      ctl "$u" defrag >/dev/null
      ctl "$u" endpoint status >/dev/null
   done
   id=$(awk -F', ' -v u="$leader" '$1 != u && $8 + 0 > best { best = $8 + 0; id = $2 } END { print id }' <<<"$st")
   ctl "$leader" move-leader "$id" >/dev/null
   ctl "$leader" defrag >/dev/null
   ctl "$leader" endpoint status >/dev/null
   ;;
esac
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

local logs = 0
local function log(label)
   logs = logs + 1
   return ("%s/%02d-%s.log"):format(tmp, logs, label)
end

local function etcdrun(playbook, args, label)
   return bench.timed(("%s -i %s playbooks/%s -e etcd_version=%s -e etcd_release_url=%s %s"):format(bench.etcdrun,
      q(ws .. "/hosts"), playbook, version, q(base_url .. "/v" .. version), args or ""),
      { log = log(label), timeout = 300, env = ("XDG_CACHE_HOME=%s XDG_STATE_HOME=%s"):format(q(tmp .. "/cache"),
         q(tmp .. "/state")) })
end

local floor_env
local function floor(args, label)
   return bench.timed("bash " .. q(tmp .. "/floor.sh") .. " " .. args, { log = log(label), timeout = 300,
      env = floor_env })
end

-- 10,000 keys of 100 bytes, 100 to a transaction
local function seed()
   local url = urls()[1]
   local value = etcd.b64(("v"):rep(100))
   for b = 0, KEYS // 100 - 1 do
      local ops = {}
      for i = 1, 100 do
         ops[i] = { request_put = { key = etcd.b64(("bench/%05d"):format(b * 100 + i)), value = value } }
      end
      assert(etcd.call(url, "/v3/kv/txn", { success = ops }, tls(), 30))
   end
end

-- the keys under bench/ on the cluster (each member must answer)
local function count()
   local n
   for _, u in ipairs(urls()) do
      local r = assert(etcd.call(u, "/v3/kv/range", { key = etcd.b64("bench/"), range_end = etcd.b64("bench0"),
         count_only = true, serializable = true }, tls()))
      n = tonumber(r.count or 0)
      if n ~= KEYS then
         error(("%s holds %d keys under bench/, want %d"):format(u, n, KEYS), 0)
      end
   end
   return n
end

local function settle()
   sched.sleep(3) -- the members' first seconds after a start (etcd refuses some requests within 5 s)
end

local t = { snapshot = { etcdrun = {}, floor = {} }, restore = { etcdrun = {}, floor = {} },
   doctor = { etcdrun = {}, floor = {} }, defrag = { etcdrun = {}, floor = {} } }
local OPS = { "snapshot", "restore", "doctor", "defrag" }

local function newest_snapshot()
   local best
   for _, name in ipairs(fs.list(ws .. "/snapshots") or {}) do
      if name:match("%.db$") and (not best or name > best) then
         best = name
      end
   end
   return ws .. "/snapshots/" .. assert(best, "no snapshot")
end

local function round(i)
   bench.reset(nodes, { ws .. "/pki", ws .. "/snapshots", ws .. "/floor-snapshots" })
   bench.inventory(ws, nodes)
   etcdrun("tls-cluster.lua", nil, "install")
   seed()
   settle()
   for _, tool in ipairs({ "etcdrun", "floor" }) do
      local dt = tool == "etcdrun" and etcdrun("snapshot.lua", nil, "snapshot") or floor("snapshot", "snapshot-floor")
      t.snapshot[tool][i] = dt
   end
   local snap = newest_snapshot()
   for _, tool in ipairs({ "etcdrun", "floor" }) do
      settle()
      t.restore[tool][i] = tool == "etcdrun"
         and etcdrun("restore.lua", "-e snapshot=" .. q(snap) .. " -e confirm=yes", "restore")
         or floor("restore " .. q(snap), "restore-floor")
      count()
   end
   settle()
   for _, tool in ipairs({ "etcdrun", "floor" }) do
      t.doctor[tool][i] = tool == "etcdrun" and etcdrun("doctor.lua", nil, "doctor") or floor("doctor", "doctor-floor")
   end
   for _, tool in ipairs({ "etcdrun", "floor" }) do
      t.defrag[tool][i] = tool == "etcdrun" and etcdrun("defrag.lua", "-e force=yes", "defrag")
         or floor("defrag", "defrag-floor")
   end
   count()
   bench.stderr("safety: round %d: snapshot %.2f / %.2f s, restore %.2f / %.2f s, doctor %.2f / %.2f s, defrag %.2f"
      .. " / %.2f s (etcdrun / by hand)", i, t.snapshot.etcdrun[i], t.snapshot.floor[i], t.restore.etcdrun[i],
      t.restore.floor[i], t.doctor.etcdrun[i], t.doctor.floor[i], t.defrag.etcdrun[i], t.defrag.floor[i])
end

local ok, err = pcall(function()
   for _, n in ipairs(nodes) do
      assert(bench.sh(("ssh -F %s -o ControlMaster=yes -o ControlPersist=yes -o ControlPath=%s -fN %s"):format(
         q(ssh_config), q(cm .. "/%n"), n.name)), "opening a ControlMaster connection to " .. n.name)
   end
   local m = {}
   for i, n in ipairs(nodes) do
      m[i] = n.name .. "=" .. n.address
   end
   floor_env = ("CFG=%s CM=%s PKI=%s SNAP=%s MEMBERS=%s"):format(q(ssh_config), q(cm), q(ws .. "/pki"),
      q(ws .. "/floor-snapshots"), q(table.concat(m, " ")))
   assert(fs.write(tmp .. "/floor.sh", FLOOR))
   for i = 1, runs do
      round(i)
   end
end)
local reset_ok, reset_err = pcall(bench.reset, nodes)
bench.close_masters(cm)
if not ok or not reset_ok then
   io.stderr:write("safety benchmark: ", tostring(ok and reset_err or err), "\n(logs kept in ", tmp, ")\n")
   os.exit(1)
end
fs.remove(tmp, { recursive = true })

local LABEL = {
   snapshot = "snapshot (snapshot.lua), verified, onto the controller",
   restore = "restore (restore.lua) on every member, healthy again",
   doctor = "doctor (doctor.lua), every check",
   defrag = "defragment 3 members (defrag.lua -e force=yes), leader last",
}
print(("Backups, doctor and maintenance on a 3-member TLS etcd %s cluster holding %d keys, each timed as the whole"
   .. " process; medians of %d runs in seconds (range in brackets):"):format(version, KEYS, runs))
print()
print("| operation | etcdrun median (range) | by hand over open SSH (range) | etcdrun / by hand |")
print("|---|---:|---:|---:|")
for _, op in ipairs(OPS) do
   local r = t[op]
   local me, mf = bench.median(r.etcdrun), bench.median(r.floor)
   print(("| %s | %.2f (%s) | %.2f (%s) | %s |"):format(LABEL[op], me, bench.range(r.etcdrun, 1, "%.2f"), mf,
      bench.range(r.floor, 1, "%.2f"), bench.ratio(me, mf)))
end
print()
print(("By hand: the bash steps of spec/bench/safety.lua's header over ControlMaster connections opened beforehand."
   .. " After each restore every member held the %d keys. Whole benchmark: %.0f s."):format(KEYS,
   runtime.monotonic() - started))
