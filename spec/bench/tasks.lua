-- make bench: per-task overhead (issue 5). The 50-task playbook
-- spec/bench/tasks/site.lua and the same playbook for Ansible (site.yml) on
-- the same 3 lab nodes: each tool converges them once (not timed), then
-- each converged re-run is timed (every one must report changed=0), and so
-- is a 1-task baseline (one.lua / one.yml: start-up, connecting, recap).
-- Ansible runs with its defaults (ControlPersist, so its re-runs reuse the
-- SSH connections of the previous run; no pipelining) and no fact gathering.
-- Prints medians as a Markdown table.
--
-- Usage: ./etcdrun spec/bench/tasks.lua [runs=7] [ansible_runs=3] [nodes=1,2,3]
local fs = require("etcdrun.core.fs")
local bench = dofile("spec/bench/common.lua")

local runs = tonumber(arg[1]) or 7
local ansible_runs = tonumber(arg[2]) or 3
local nodes = bench.nodes(arg[3] or "1,2,3")
local TASKS = 50

local tmp = assert(fs.mkdtemp("/tmp/etcdrun-bench-tasks-"))
local inv = bench.inventory(tmp, nodes)
local cp = tmp .. "/cp"
local ansible_env = ("ANSIBLE_SSH_CONTROL_PATH_DIR=%s ANSIBLE_NOCOWS=1 ANSIBLE_HOST_KEY_CHECKING=True")
   :format(bench.q(cp))

local function etcdrun(playbook, log)
   return bench.timed(("%s -i %s spec/bench/tasks/%s"):format(bench.etcdrun, bench.q(inv), playbook),
      { log = log, timeout = 120 })
end

local function ansible(playbook, log)
   -- from the playbook's directory, as a user would run it
   return bench.timed(("sh -c 'cd spec/bench/tasks && exec ansible-playbook -i %s %s'"):format(inv, playbook),
      { log = log, timeout = 600, env = ansible_env })
end

local ok, err = pcall(function()
   bench.stderr("tasks: resetting %d nodes", #nodes)
   bench.reset(nodes)
   -- converge with each tool; the other's re-runs then prove both agree
   -- on every byte (a difference would show as changed>0)
   etcdrun("site.lua", tmp .. "/converge-etcdrun.log")
   ansible("site.yml", tmp .. "/converge-ansible.log")

   local t = { etcdrun = {}, etcdrun1 = {}, ansible = {}, ansible1 = {} }
   for i = 1, math.max(runs, ansible_runs) do
      if i <= runs then
         local log = ("%s/etcdrun-%d.log"):format(tmp, i)
         t.etcdrun[i] = etcdrun("site.lua", log)
         bench.expect_unchanged(log, nodes)
         log = ("%s/etcdrun1-%d.log"):format(tmp, i)
         t.etcdrun1[i] = etcdrun("one.lua", log)
         bench.expect_unchanged(log, nodes)
      end
      if i <= ansible_runs then
         local log = ("%s/ansible-%d.log"):format(tmp, i)
         t.ansible[i] = ansible("site.yml", log)
         bench.expect_unchanged(log, nodes)
         log = ("%s/ansible1-%d.log"):format(tmp, i)
         t.ansible1[i] = ansible("one.yml", log)
         bench.expect_unchanged(log, nodes)
      end
      bench.stderr("tasks: round %d: etcdrun %s s, ansible %s s", i,
         t.etcdrun[i] and ("%.3f"):format(t.etcdrun[i]) or "-", t.ansible[i] and ("%.1f"):format(t.ansible[i]) or "-")
   end
   return t
end)
bench.close_masters(cp)
-- leave the nodes as fresh as we found them
pcall(bench.reset, nodes)
if not ok then
   io.stderr:write("tasks benchmark: ", tostring(err), "\n(logs kept in ", tmp, ")\n")
   os.exit(1)
end
local t = err
fs.remove(tmp, { recursive = true })

local rows = {}
for _, tool in ipairs({ "etcdrun", "ansible" }) do
   local full, one = bench.median(t[tool]), bench.median(t[tool .. "1"])
   rows[tool] = { full = full, one = one, per = full / TASKS, marginal = (full - one) / (TASKS - 1),
      spread = bench.range(t[tool], 1, "%.3f"), n = #t[tool] }
end
local names = {}
for i, n in ipairs(nodes) do
   names[i] = n.name
end
print(("Per-task overhead: %d tasks that find their state already right (20 directories, 15 files, "
   .. "10 templates, 4 lines, 1 unit) on %d nodes (%s), converged re-runs, medians (etcdrun %d runs, "
   .. "Ansible %d):"):format(TASKS, #nodes, table.concat(names, ","), runs, ansible_runs))
print()
print("| tool | 50 tasks (s) | range (s) | 1 task (s) | per task: total / 50 (ms) "
   .. "| per added task: (50 - 1) / 49 (ms) |")
print("|---|---:|---:|---:|---:|---:|")
for _, tool in ipairs({ "etcdrun", "ansible" }) do
   local r = rows[tool]
   print(("| %s | %.3f | %s | %.3f | %.1f | %.1f |"):format(tool == "ansible" and "Ansible" or "etcdrun", r.full,
      r.spread, r.one, r.per * 1000, r.marginal * 1000))
end
print(("| Ansible / etcdrun | %s | | %s | %s | %s |"):format(bench.ratio(rows.ansible.full, rows.etcdrun.full),
   bench.ratio(rows.ansible.one, rows.etcdrun.one), bench.ratio(rows.ansible.per, rows.etcdrun.per),
   bench.ratio(rows.ansible.marginal, rows.etcdrun.marginal)))
