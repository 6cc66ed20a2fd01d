--- What the playbook benchmarks (tasks.lua, cluster.lua) share: lab nodes
-- and inventories, running a command with a deadline and timing it, reading
-- a recap (etcdrun's and Ansible's have the same shape), medians.
-- Loaded with dofile() by the benchmark scripts, which run from the
-- repository's root (spec/bench/run.sh cds there).
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local shell = require("etcdrun.shell")

local M = {}

M.q = shell.quote
M.lab = os.getenv("LAB_DIR") or ".lab"
M.ssh_config = M.lab .. "/ssh_config"
M.etcdrun = arg[-1] or "./etcdrun"

--- `path` made absolute against the working directory (Ansible runs the
-- seed from a copy elsewhere).
function M.absolute(path)
   if path:sub(1, 1) == "/" then
      return path
   end
   return (os.getenv("PWD") or ".") .. "/" .. path
end

--- The nodes named in a spec such as "1,2,3" or "etcd4,etcd5,etcd6", with
-- the addresses the lab's inventory gives them.
---@param spec string
---@return {name: string, address: string}[]
function M.nodes(spec)
   local inv = fs.read(M.lab .. "/hosts")
   if not inv then
      error("no lab inventory at " .. M.lab .. "/hosts: is the lab up (make lab-up N=3)?", 0)
   end
   local address = {}
   for name, addr in inv:gmatch("\n(etcd%d+) ansible_host=(%S+)") do
      address[name] = addr
   end
   local nodes = {}
   for item in spec:gmatch("[^,%s]+") do
      local name = item:match("^%d+$") and "etcd" .. item or item
      if not address[name] then
         error(("node %s is not in the running lab (%s/hosts)"):format(name, M.lab), 0)
      end
      nodes[#nodes + 1] = { name = name, address = address[name] }
   end
   return nodes
end

--- An inventory of `nodes` in the first seed's shape (group [etcd]), usable
-- by both tools. The Python interpreter is named so that Ansible skips its
-- discovery round trip (in Ansible's favour).
---@return string path
function M.inventory(dir, nodes)
   local lines = { "[etcd]" }
   for _, n in ipairs(nodes) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root"):format(n.name, n.address)
   end
   lines[#lines + 1] = ""
   lines[#lines + 1] = "[etcd:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. M.absolute(M.ssh_config)
   lines[#lines + 1] = "ansible_python_interpreter=/usr/bin/python3"
   local path = dir .. "/hosts"
   assert(fs.write(path, table.concat(lines, "\n") .. "\n"))
   return path
end

--- Run a shell command; true when it exited 0.
function M.sh(cmd)
   local ok = os.execute(cmd)
   return ok == true
end

--- Run `cmd` (a shell command line) with a deadline, its output to `log`.
-- Returns the wall time in seconds, or raises with the log's tail.
---@param cmd string
---@param opts {log: string, timeout: number, env?: string}
function M.timed(cmd, opts)
   local line = ("%s timeout -k 5 %d %s >%s 2>&1"):format(opts.env or "", opts.timeout, cmd, M.q(opts.log))
   local t0 = runtime.monotonic()
   local ok = M.sh(line)
   local dt = runtime.monotonic() - t0
   if not ok then
      local out = fs.read(opts.log) or ""
      error(("benchmark command failed after %.1f s: %s\n--- last lines of %s:\n%s"):format(dt, cmd, opts.log,
         out:sub(-3000)), 0)
   end
   return dt
end

--- The recap of a run's output: host -> {ok, changed, unreachable, failed}.
function M.recap(log)
   local out = assert(fs.read(log))
   local r = {}
   for name, ok, changed, unreach, failed in
      out:gmatch("\n(%S+)%s*:%s*ok=(%d+)%s+changed=(%d+)%s+unreachable=(%d+)%s+failed=(%d+)") do
      r[name] = { ok = tonumber(ok), changed = tonumber(changed), unreachable = tonumber(unreach),
         failed = tonumber(failed) }
   end
   return r
end

--- Raise unless every node (and any other host in the recap) reports
-- changed=0: a timed re-run that changes something is not a re-run.
function M.expect_unchanged(log, nodes)
   local r = M.recap(log)
   for _, n in ipairs(nodes) do
      if not r[n.name] then
         error(("no recap line for %s in %s"):format(n.name, log), 0)
      end
   end
   for name, s in pairs(r) do
      if s.changed ~= 0 or s.failed ~= 0 or s.unreachable ~= 0 then
         error(("%s: %s reports changed=%d failed=%d unreachable=%d on a converged re-run"):format(log, name,
            s.changed, s.failed, s.unreachable), 0)
      end
   end
end

--- Total of changed= over the recap's hosts.
function M.changed(log)
   local total = 0
   for _, s in pairs(M.recap(log)) do
      total = total + s.changed
   end
   return total
end

function M.median(t)
   local s = {}
   for i, v in ipairs(t) do
      s[i] = v
   end
   table.sort(s)
   local n = #s
   return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

--- "min-max" of a sample, for the spread column.
function M.range(t, scale, fmt)
   local lo, hi = math.huge, -math.huge
   for _, v in ipairs(t) do
      lo, hi = math.min(lo, v), math.max(hi, v)
   end
   return (fmt .. "-" .. fmt):format(lo * scale, hi * scale)
end

--- A ratio for the tables: one decimal below 10x.
function M.ratio(a, b)
   local r = a / b
   return (r < 10 and "%.1fx" or "%.0fx"):format(r)
end

--- Return every node in `nodes` to a fresh state (spec/bench/reset-node.sh)
-- and remove the controller directories in `dirs`.
function M.reset(nodes, dirs)
   local cmd = { "bash spec/bench/reset-node.sh -F", M.q(M.ssh_config) }
   for _, d in ipairs(dirs or {}) do
      cmd[#cmd + 1] = "-d " .. M.q(d)
   end
   for _, n in ipairs(nodes) do
      cmd[#cmd + 1] = n.name
   end
   if not M.sh("timeout -k 5 120 " .. table.concat(cmd, " ")) then
      error("reset-node.sh failed", 0)
   end
end

--- Close the SSH master connections Ansible left in `dir` (ControlPersist):
-- they are ours, and would otherwise linger for a minute.
function M.close_masters(dir)
   for _, name in ipairs(fs.list(dir) or {}) do
      M.sh(("ssh -o ControlPath=%s -O exit dummy >/dev/null 2>&1"):format(M.q(dir .. "/" .. name)))
   end
end

M.stderr = function(fmt, ...)
   io.stderr:write(fmt:format(...), "\n")
   io.stderr:flush()
end

return M
