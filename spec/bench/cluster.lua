-- make bench: the cluster benchmark (issue 6). On the same 3 lab nodes,
-- each cold run starting from fresh nodes and a fresh controller (nodes
-- reset with spec/bench/reset-node.sh; PKI, artifacts and download cache
-- removed):
--   etcdrun playbooks/tls-cluster.lua (ECDSA P-256), cold, then an immediate
--      re-run (which must report changed=0 everywhere);
--   the same with RSA-4096 keys, like the seed;
--   Ansible running the first seed's final playbook (spec/bench/seed/, see
--      its README for the deviations), cold, then an immediate re-run (which
--      by the seed's design changes things again: new keys, wiped data).
-- After every run, untimed, the cluster must answer `endpoint health
-- --cluster` over mutual TLS on every member, or the benchmark fails.
-- Prints medians and ratios as a Markdown table.
--
-- Usage: ./etcdrun spec/bench/cluster.lua [runs=5] [ansible_runs=3] [nodes=1,2,3]
local fs = require("etcdrun.core.fs")
local bench = dofile("spec/bench/common.lua")

local runs = tonumber(arg[1]) or 5
local ansible_runs = tonumber(arg[2]) or 3
local nodes = bench.nodes(arg[3] or "1,2,3")

local version = ((fs.read(bench.lab .. "/etcd_version") or "3.4.23"):gsub("%s+", ""))
local release = assert(fs.read(bench.lab .. "/release_url"), "no release_url in the lab"):gsub("%s+", "")
   .. "/v" .. version

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-cluster-"))
local inv = bench.inventory(tmp, nodes)

-- Every member healthy over mutual TLS, asked from the first member with
-- the member certificate both tools install as server.crt.
local function healthy(what)
   local cmd = ("ssh -F %s %s %s"):format(bench.q(bench.ssh_config), nodes[1].name, bench.q(
      "ETCDCTL_API=3 timeout 20 /opt/etcd/bin/etcdctl --cacert /etc/etcd/ssl/ca.crt "
      .. "--cert /etc/etcd/ssl/server.crt --key /etc/etcd/ssl/server.key "
      .. "--dial-timeout 5s --command-timeout 10s endpoint health --cluster 2>&1"))
   local p = assert(io.popen(cmd))
   local out = p:read("a")
   p:close()
   local _, count = out:gsub("is healthy", "")
   if count ~= #nodes then
      error(("%s: %d of %d members healthy:\n%s"):format(what, count, #nodes, out), 0)
   end
end

local function etcdrun_pair(i, key_opts, tag)
   local pki, cache = ("%s/pki-%s-%d"):format(tmp, tag, i), ("%s/cache-%s-%d"):format(tmp, tag, i)
   bench.reset(nodes)
   local cmd = ("%s -i %s playbooks/tls-cluster.lua -e etcd_version=%s -e etcd_release_url=%s "
      .. "-e etcd_pki_dir=%s %s"):format(bench.etcdrun, bench.q(inv), version, bench.q(release), bench.q(pki),
      key_opts)
   local env = "XDG_CACHE_HOME=" .. bench.q(cache)
   local cold_log, rerun_log = ("%s/%s-cold-%d.log"):format(tmp, tag, i), ("%s/%s-rerun-%d.log"):format(tmp, tag, i)
   local cold = bench.timed(cmd, { log = cold_log, timeout = 180, env = env })
   healthy(cold_log)
   local rerun = bench.timed(cmd, { log = rerun_log, timeout = 120, env = env })
   bench.expect_unchanged(rerun_log, nodes)
   healthy(rerun_log)
   fs.remove(pki, { recursive = true })
   fs.remove(cache, { recursive = true })
   return cold, rerun
end

local function ansible_pair(i)
   -- the seed's project directory, fresh: ./artifacts is created in it
   local work = ("%s/seed-%d"):format(tmp, i)
   bench.reset(nodes)
   assert(bench.sh(("mkdir -p %s && cp -r spec/bench/seed/playbook.yaml spec/bench/seed/files "
      .. "spec/bench/seed/templates %s/ && cp %s %s/hosts"):format(work, work, bench.q(inv), work)))
   local cmd = ("sh -c 'cd %s && exec ansible-playbook -i hosts playbook.yaml -e etcd_tarball_url=%s/"
      .. "etcd-v%s-linux-amd64.tar.gz'"):format(work, release, version)
   local env = ("ANSIBLE_SSH_CONTROL_PATH_DIR=%s/cp ANSIBLE_NOCOWS=1 ANSIBLE_HOST_KEY_CHECKING=True ")
      :format(work)
   local cold_log, rerun_log = ("%s/ansible-cold-%d.log"):format(tmp, i), ("%s/ansible-rerun-%d.log"):format(tmp, i)
   local ok, a, b = pcall(function()
      local cold = bench.timed(cmd, { log = cold_log, timeout = 600, env = env })
      healthy(cold_log)
      local rerun = bench.timed(cmd, { log = rerun_log, timeout = 600, env = env })
      healthy(rerun_log)
      return cold, rerun
   end)
   bench.close_masters(work .. "/cp")
   if not ok then
      error(a, 0)
   end
   fs.remove(work, { recursive = true })
   return a, b, bench.changed(rerun_log)
end

local t = { ec = { cold = {}, rerun = {} }, rsa = { cold = {}, rerun = {} }, ansible = { cold = {}, rerun = {} } }
local ansible_changed
local ok, err = pcall(function()
   for i = 1, math.max(runs, ansible_runs) do
      if i <= runs then
         t.ec.cold[i], t.ec.rerun[i] = etcdrun_pair(i, "", "ec")
         t.rsa.cold[i], t.rsa.rerun[i] = etcdrun_pair(i, "-e etcd_key_type=rsa -e etcd_key_bits=4096", "rsa")
      end
      if i <= ansible_runs then
         t.ansible.cold[i], t.ansible.rerun[i], ansible_changed = ansible_pair(i)
      end
      local function f(x, fmt)
         return x and fmt:format(x) or "-"
      end
      bench.stderr("cluster: round %d: etcdrun %s/%s s, RSA %s/%s s, ansible %s/%s s (cold/re-run)", i,
         f(t.ec.cold[i], "%.2f"), f(t.ec.rerun[i], "%.2f"), f(t.rsa.cold[i], "%.2f"), f(t.rsa.rerun[i], "%.2f"),
         f(t.ansible.cold[i], "%.1f"), f(t.ansible.rerun[i], "%.1f"))
   end
end)
-- leave the nodes fresh, whatever happened
pcall(bench.reset, nodes)
if not ok then
   io.stderr:write("cluster benchmark: ", tostring(err), "\n(logs kept in ", tmp, ")\n")
   os.exit(1)
end
fs.remove(tmp, { recursive = true })

local m = {}
for k, v in pairs(t) do
   m[k] = { cold = bench.median(v.cold), rerun = bench.median(v.rerun) }
end
local names = {}
for i, n in ipairs(nodes) do
   names[i] = n.name
end
print(("A 3-member TLS etcd %s cluster on fresh nodes (%s): cold install, then an immediate re-run; "
   .. "medians in seconds (etcdrun %d runs, Ansible %d; range in brackets):"):format(version,
   table.concat(names, ","), runs, ansible_runs))
print()
print("| run | etcdrun, ECDSA P-256 | etcdrun, RSA 4096 | Ansible, first seed (RSA 4096) "
   .. "| Ansible / etcdrun | Ansible / etcdrun RSA |")
print("|---|---:|---:|---:|---:|---:|")
for _, r in ipairs({ { "cold install", "cold" }, { "immediate re-run", "rerun" } }) do
   local k = r[2]
   print(("| %s | %.2f (%s) | %.2f (%s) | %.1f (%s) | %s | %s |"):format(r[1], m.ec[k],
      bench.range(t.ec[k], 1, "%.2f"), m.rsa[k], bench.range(t.rsa[k], 1, "%.2f"), m.ansible[k],
      bench.range(t.ansible[k], 1, "%.1f"), bench.ratio(m.ansible[k], m.ec[k]), bench.ratio(m.ansible[k], m.rsa[k])))
end
print()
print(("etcdrun's re-runs reported changed=0 on every host; the seed's re-run reported %d changes "
   .. "(new keys and certificates, wiped data dirs, restarted members)."):format(ansible_changed or 0))
