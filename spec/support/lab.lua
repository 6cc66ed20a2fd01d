--- The lab for specs that need real nodes (spec/lab/lab.sh does the work).
--
-- Convention: a spec calls `lab.ensure(n)` in its setup. A lab that is
-- already up with at least n nodes is reused as it is (a developer's
-- `make lab-up`); otherwise ensure brings one up and marks it with
-- `<state dir>/started-by-tests`, so that spec/run-all.sh takes it down after
-- the run, even when specs failed, and a developer's own lab is never taken
-- down by the tests. Where a lab cannot exist (not root, no systemd-nspawn)
-- ensure returns nil and a reason for `pending(reason)`; where it could but
-- fails to come up, ensure raises: CI must not turn a broken lab into skips.
--
-- Plain Lua (io.popen, os.execute): it runs under the etcdrun binary and
-- under a system busted alike.
local M = {}

--- Quote a string for /bin/sh.
---@param s string
---@return string
local function q(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.q = q

--- Run a shell command; stdout and stderr together, and the exit code.
---@param cmd string
---@return string output, integer code
function M.sh(cmd)
   local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
   local out = p:read("a")
   local ok, how, code = p:close()
   if ok then
      return out, 0
   end
   -- Killed by a signal: report it the way a shell would.
   return out, how == "signal" and 128 + code or code
end

-- spec/support/lab.lua -> the checkout: lab.sh is found from here, so specs
-- work from any current directory.
local function checkout()
   local src = debug.getinfo(1, "S").source:gsub("^@", "")
   local dir = src:match("^(.*)/spec/support/[^/]*$") or "."
   local out = M.sh("cd " .. q(dir) .. " && pwd")
   return (out:gsub("\n$", ""))
end

M.root = checkout()
M.script = M.root .. "/spec/lab/lab.sh"
M.MARKER = "started-by-tests"

--- Why no lab can run here, or nil when it can.
---@return string|nil reason
function M.unavailable()
   if os.getenv("ETCDRUN_LAB") == "0" then
      return "lab disabled by ETCDRUN_LAB=0"
   end
   local uid = M.sh("id -u")
   if uid ~= "0\n" then
      return "lab needs root (network namespaces, mounts, systemd-nspawn): run the specs as root"
   end
   for _, tool in ipairs({ "systemd-nspawn", "debootstrap", "ip", "ssh" }) do
      local _, code = M.sh("command -v " .. tool)
      if code ~= 0 then
         return tool .. " not installed: run spec/lab/deps.sh (make deps)"
      end
   end
   return nil
end

--- The running lab as lab.sh status reports it.
---@return {up: boolean, nodes: integer, dir: string|nil}
function M.status()
   local out = M.sh(q(M.script) .. " status")
   local n, dir = out:match("^up nodes=(%d+) dir=([^\n]+)")
   if n then
      return { up = true, nodes = tonumber(n), dir = dir }
   end
   return { up = false, nodes = 0 }
end

local function exists(path)
   local f = io.open(path, "r")
   if f then
      f:close()
   end
   return f ~= nil
end

--- True when the running lab was brought up by the tests (so they may take
--- it down).
---@param dir string the lab state directory
function M.started_by_tests(dir)
   return exists(dir .. "/" .. M.MARKER)
end

--- A lab with at least n nodes: its state directory (hosts, ssh_config,
--- known_hosts, release_url), or nil and the reason there can be none here.
---@param n integer
---@return string|nil dir, string|nil reason
function M.ensure(n)
   local reason = M.unavailable()
   if reason then
      return nil, reason
   end
   local st = M.status()
   if st.up and st.nodes >= n then
      return st.dir
   end
   if st.up then
      if not M.started_by_tests(st.dir) then
         error(("a lab with %d nodes is up (not started by the tests) but %d are needed:"
            .. " run 'make lab-down'"):format(st.nodes, n))
      end
      M.teardown()
   end
   local out, code = M.sh(("%s up %d"):format(q(M.script), n))
   if code ~= 0 then
      error(("lab up %d failed (exit %d):\n%s"):format(n, code, out))
   end
   st = M.status()
   assert(st.up, "lab up returned 0 but status says down:\n" .. out)
   local f = assert(io.open(st.dir .. "/" .. M.MARKER, "w"))
   f:write("spec/support/lab.lua brought this lab up; spec/run-all.sh takes it down\n")
   f:close()
   return st.dir
end

--- A host object (etcdrun.host) for lab node etcdN, reached through the
--- lab's ssh_config; its session opens on first use.
---@param dir string lab state directory
---@param n integer node number
function M.host(dir, n)
   return require("etcdrun.host").new({ name = "etcd" .. n, address = ("198.18.0.%d"):format(10 + n), user = "root" },
      { ssh_config = dir .. "/ssh_config" })
end

--- Take the lab down. Returns lab.sh's output and exit code.
---@return string output, integer code
function M.teardown()
   return M.sh(q(M.script) .. " down")
end

--- Run a command on a node over SSH, bounded in time.
---@param dir string lab state directory
---@param node string "etcd2"
---@param cmd string shell command run on the node
---@param opts? {timeout: number, ssh: string} extra ssh options, time limit (s)
---@return string output, integer code
function M.ssh(dir, node, cmd, opts)
   opts = opts or {}
   return M.sh(("timeout %d ssh -F %s %s %s %s"):format(
      opts.timeout or 60, q(dir .. "/ssh_config"), opts.ssh or "", q(node), q(cmd)))
end

--- Run lab.sh with arguments (stop-node, start-node, cut, heal, ...).
---@return string output, integer code
function M.run(...)
   local args = {}
   for _, a in ipairs({ ... }) do
      args[#args + 1] = q(a)
   end
   return M.sh(q(M.script) .. " " .. table.concat(args, " "))
end

--- The whole content of a file, or nil.
---@param path string
---@return string|nil
function M.read(path)
   local f = io.open(path, "rb")
   if not f then
      return nil
   end
   local s = f:read("a")
   f:close()
   return s
end

return M
