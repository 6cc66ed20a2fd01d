-- make bench: ad-hoc `hostname` on 3, 10 and 30 lab nodes, side by side in
-- one run: etcdrun, Ansible's `ansible -m command -a hostname` (Debian's
-- ansible-core) and OpenSSH (a fresh `ssh node true` to every node in
-- parallel). Prints medians and ratios as a Markdown table.
--
-- Needs a running lab of at least max(SIZES) nodes (`make lab-up N=30`).
-- Usage: ./etcdrun spec/bench/adhoc.lua [runs=5] [sizes=3,10,30]
local runtime = require("etcdrun.core.runtime")
local fs = require("etcdrun.core.fs")

local runs = tonumber(arg[1]) or 5
local sizes = {}
for n in (arg[2] or "3,10,30"):gmatch("%d+") do
   sizes[#sizes + 1] = tonumber(n)
end
local lab = os.getenv("LAB_DIR") or ".lab"
local cfg = lab .. "/ssh_config"
assert(fs.stat(cfg), "no lab at " .. lab .. ": run make lab-up N=" .. sizes[#sizes])

local function sh(cmd)
   local ok, _, code = os.execute(cmd)
   return ok, code
end

local function median(t)
   table.sort(t)
   local n = #t
   return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function time(cmd)
   local samples = {}
   for _ = 1, runs do
      local t0 = runtime.monotonic()
      local ok, code = sh(cmd .. " >/dev/null 2>&1")
      local dt = runtime.monotonic() - t0
      if not ok then
         error(("bench command failed (exit %s): %s"):format(tostring(code), cmd))
      end
      samples[#samples + 1] = dt
   end
   return median(samples)
end

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-"))
local results = {}
for _, n in ipairs(sizes) do
   -- an inventory of the first n lab nodes, in the seed's shape
   local lines = { "[etcd]" }
   local names = {}
   for i = 1, n do
      names[i] = "etcd" .. i
      lines[#lines + 1] = ("etcd%d ansible_host=198.18.0.%d ansible_user=root"):format(i, 10 + i)
   end
   lines[#lines + 1] = "[etcd:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. cfg
   lines[#lines + 1] = "ansible_python_interpreter=/usr/bin/python3"
   local inv = ("%s/hosts%d"):format(tmp, n)
   assert(fs.write(inv, table.concat(lines, "\n") .. "\n"))
   local etcdrun = ("%s -i %s etcd -a hostname"):format(arg[-1] or "./etcdrun", inv)
   local ansible = ("ANSIBLE_HOST_KEY_CHECKING=True ansible etcd -i %s -f 50 -m command -a hostname"):format(inv)
   local ssh_cmds = {}
   for _, h in ipairs(names) do
      ssh_cmds[#ssh_cmds + 1] = ("ssh -F %s %s true &"):format(cfg, h)
   end
   local openssh = "(" .. table.concat(ssh_cmds, " ") .. " wait)"
   -- warm-up: page cache, Ansible's python imports; not measured
   sh(etcdrun .. " >/dev/null 2>&1")
   sh(ansible .. " >/dev/null 2>&1")
   local r = { n = n, etcdrun = time(etcdrun), openssh = time(openssh), ansible = time(ansible) }
   results[#results + 1] = r
   io.stderr:write(("n=%d etcdrun %.3f s, openssh %.3f s, ansible %.3f s\n"):format(n, r.etcdrun, r.openssh,
      r.ansible))
end
fs.remove(tmp, { recursive = true })

print(("Ad-hoc `hostname`, fresh connections, median of %d runs (seconds):"):format(runs))
print()
print("| nodes | etcdrun | OpenSSH (parallel `ssh true`) | Ansible (`-m command`, -f 50)"
   .. " | Ansible / etcdrun | OpenSSH / etcdrun |")
print("|---:|---:|---:|---:|---:|---:|")
for _, r in ipairs(results) do
   print(("| %d | %.3f | %.3f | %.3f | %.1fx | %.1fx |"):format(r.n, r.etcdrun, r.openssh, r.ansible,
      r.ansible / r.etcdrun, r.openssh / r.etcdrun))
end
