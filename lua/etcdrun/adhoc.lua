--- Ad-hoc mode: `etcdrun -i hosts PATTERN -a COMMAND` runs one command on
-- every matched host in parallel, one SSH session per host, and prints each
-- host's output in inventory order (the counterpart of `ansible PATTERN -m
-- command -a COMMAND`).
local runtime = require("etcdrun.core.runtime")
local ssh = require("etcdrun.core.ssh")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local sched = require("etcdrun.sched")
local output = require("etcdrun.output")

local M = {}

--- Connection options shared by every host, from the parsed command line.
-- Asks once, before any connection, for what must be asked (a key's
-- passphrase, the sudo password): never in the middle of a parallel run.
---@param opts table parsed CLI options
---@param hosts table[] inventory hosts (for their key files)
---@return table|nil conn, string? err
function M.connection_options(opts, hosts)
   local conn = {
      identities = opts.keys,
      known_hosts = opts.known_hosts,
      host_key = opts.host_key,
      ssh_config = opts.ssh_config,
      timeout = opts.timeout,
      command_timeout = opts.command_timeout,
      become = opts.become or nil,
   }
   local seen, keys = {}, {}
   for _, k in ipairs(opts.keys or {}) do
      keys[#keys + 1] = k
   end
   for _, h in ipairs(hosts) do
      if h.key_file then
         keys[#keys + 1] = h.key_file
      end
   end
   for _, k in ipairs(keys) do
      if not seen[k] then
         seen[k] = true
         local needs, err = ssh.key_needs_passphrase(k)
         if needs == nil then
            return nil, err
         end
         if needs and not conn.passphrase then
            local pass, perr = runtime.getpass(("Passphrase for key %s: "):format(k))
            if not pass then
               return nil, perr
            end
            conn.passphrase = pass
         end
      end
   end
   if opts.ask_become_pass then
      local pass, err = runtime.getpass("BECOME password: ")
      if not pass then
         return nil, err
      end
      conn.become_pass = pass
   end
   return conn
end

--- Load the inventory and select hosts; returns the list or nil, err, code
-- (code "EPATTERN" when the pattern or --limit is malformed).
function M.select_hosts(opts, pattern)
   local inventory = require("etcdrun.inventory")
   local inv, err, code = inventory.load(opts.inventory or "hosts")
   if not inv then
      return nil, err, code
   end
   local hosts, warning
   hosts, warning, code = inv:hosts(pattern, opts.limit)
   if not hosts then
      return nil, warning, code
   end
   for _, w in ipairs(type(warning) == "table" and warning or { warning }) do
      io.stderr:write("etcdrun: warning: ", w, "\n")
   end
   return hosts
end

local function indent(text)
   return (text:gsub("\n$", ""):gsub("[^\n]+", "  %0"))
end

local function print_human(out, r)
   local head
   if r.status == "unreachable" then
      head = ("%s | UNREACHABLE | %s"):format(r.host, r.error)
   elseif r.status == "error" then
      head = ("%s | FAILED | %s"):format(r.host, r.error)
   else
      head = ("%s | %s | rc=%d | %.2f s%s"):format(r.host, r.status == "ok" and "ok" or "FAILED", r.rc,
         r.duration, r.truncated and " | output truncated" or "")
   end
   -- values are redacted before they are indented, the line again after
   out:write(head .. "\n")
   if r.stdout and r.stdout ~= "" then
      out:write(indent(out:redact(r.stdout)) .. "\n")
   end
   if r.stderr and r.stderr ~= "" then
      out:write((indent(out:redact(r.stderr)):gsub("^  ", "  stderr: ")) .. "\n")
   end
end

--- Run a command on hosts in parallel; returns per-host results in order.
---@param hosts table[] inventory hosts
---@param command string
---@param conn table connection options
---@param forks integer
function M.run(hosts, command, conn, forks)
   local tasks, objs, done = {}, {}, {}
   for i, h in ipairs(hosts) do
      -- ansible_connection=local: the controller runs it, as in a playbook
      objs[i] = h.connection == "local" and localhost.new(h.name, conn) or host.new(h, conn)
      tasks[i] = function()
         local t0 = runtime.monotonic()
         local r, err, code = objs[i]:exec(command)
         local dt = runtime.monotonic() - t0
         if not r then
            local unreachable = objs[i]:unreachable()
            done[i] = {
               host = h.name,
               status = unreachable and "unreachable" or "error",
               error = err,
               code = code,
               duration = dt,
            }
            return done[i]
         end
         done[i] = {
            host = h.name,
            status = r.status == 0 and "ok" or "failed",
            rc = r.status,
            stdout = r.stdout,
            stderr = r.stderr,
            truncated = r.truncated,
            duration = dt,
         }
         return done[i]
      end
   end
   -- Ctrl-C stops the scheduler (the message handler runs Lua, so a pending
   -- interrupt hook fires inside this call); the hosts that had finished keep
   -- their results, the others say they were interrupted
   local ok, results = xpcall(sched.run, function(e)
      return runtime.interrupted() and "interrupted" or debug.traceback(tostring(e), 2)
   end, tasks, { forks = forks })
   if not ok and not runtime.interrupted() then
      for i in ipairs(objs) do
         objs[i]:close()
      end
      error(results, 0)
   end
   local out = {}
   for i, h in ipairs(hosts) do
      local res = ok and results[i] or { ok = false }
      if res.ok then
         out[i] = res.values[1]
      elseif runtime.interrupted() then
         out[i] = done[i] or { host = h.name, status = "error", error = "interrupted (Ctrl-C)", code = "EINTR",
            duration = 0 }
      else
         out[i] = { host = h.name, status = "error", error = res.err, code = "EINTERNAL", duration = 0 }
      end
      -- closing a session finishes its job: a command still running is killed
      objs[i]:close()
   end
   return out, runtime.interrupted()
end

---@param opts table parsed CLI options (pattern, command, ...)
---@return integer exit code
function M.main(opts)
   local t0 = runtime.monotonic()
   local hosts, err, code = M.select_hosts(opts, opts.pattern)
   if not hosts then
      io.stderr:write("etcdrun: ", err, "\n")
      -- a malformed pattern or --limit is a usage error
      return code == "EPATTERN" and 2 or 1
   end
   if #hosts == 0 then
      io.stderr:write(("etcdrun: no hosts match '%s'\n"):format(opts.pattern))
      return 1
   end
   local conn
   conn, err = M.connection_options(opts, hosts)
   if not conn then
      io.stderr:write("etcdrun: ", err, "\n")
      return 1
   end
   -- the same redaction as a playbook run: the inventory's secret() values,
   -- the passwords asked for, private keys and URL credentials never print
   local out = output.new({ stream = io.stdout, color = false })
   for _, h in ipairs(hosts) do
      out:learn(h.vars)
   end
   out:secret(conn.become_pass)
   out:secret(conn.passphrase)
   local results, interrupted = M.run(hosts, opts.command, conn, opts.forks or 50)
   local counts = { ok = 0, failed = 0, unreachable = 0 }
   local cjson = opts.json and require("cjson")
   for _, r in ipairs(results) do
      if r.status == "ok" then
         counts.ok = counts.ok + 1
      elseif r.status == "unreachable" then
         counts.unreachable = counts.unreachable + 1
      else
         counts.failed = counts.failed + 1
      end
      if cjson then
         out:write(cjson.encode(out:redact_all(r)) .. "\n")
      else
         print_human(out, r)
      end
   end
   io.stderr:write(("%d hosts: %d ok, %d failed, %d unreachable (%.2f s)\n"):format(
      #results, counts.ok, counts.failed, counts.unreachable, runtime.monotonic() - t0))
   if interrupted then
      io.stderr:write("etcdrun: interrupted (Ctrl-C): commands still running were killed\n")
      return 130
   end
   if counts.unreachable > 0 then
      return 3
   end
   return counts.failed > 0 and 1 or 0
end

return M
