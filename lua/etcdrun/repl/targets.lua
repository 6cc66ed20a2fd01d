--- The REPL's remote side: one pool of host objects kept open for the whole
-- session (the second command on a host costs one round trip), and what runs
-- on the target set in parallel: a shell command (`!CMD`), a module call
-- (`file{...}`), etcdctl (`:etcd CMD`).
local runtime = require("etcdrun.core.runtime")
local fs = require("etcdrun.core.fs")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")
local context = require("etcdrun.context")
local sched = require("etcdrun.sched")
local shell = require("etcdrun.shell")

local M = {}

--- A pool: host objects by name, created on first use with the session's
-- connection options.
---@param conn table connection options (adhoc.connection_options)
function M.pool(conn)
   local objs = {}
   local pool = {}
   --- The host object for an inventory host (same object every time).
   function pool.get(spec)
      local h = objs[spec.name]
      if not h then
         h = spec.connection == "local" and localhost.new(spec.name, conn) or host.new(spec, conn)
         objs[spec.name] = h
      end
      return h
   end
   --- Whether a host has an open session, failed to connect, or neither yet.
   function pool.state(name)
      local h = objs[name]
      if not h then
         return "not connected"
      elseif h.local_ then
         return "local"
      elseif h:unreachable() then
         return "unreachable"
      end
      return rawget(h, "_session") and "connected" or "not connected"
   end
   --- After Ctrl-C, with the interrupt flag still set: wait until every open
   -- session's worker has finished its job (an interrupted command is killed
   -- on the node first), so that clearing the flag cannot let one run on.
   -- A "connect" job on a connected session does nothing: it is a barrier.
   function pool.settle(sleep, timeout)
      local jobs = {}
      for _, h in pairs(objs) do
         local s = rawget(h, "_session")
         if s then
            jobs[#jobs + 1] = s:submit("connect")
         end
      end
      local deadline = runtime.monotonic() + (timeout or 5)
      for _, j in ipairs(jobs) do
         while not j:done() and runtime.monotonic() < deadline do
            sleep(0.005)
         end
      end
   end
   function pool.close()
      for name, h in pairs(objs) do
         h:close()
         objs[name] = nil
      end
   end
   return pool
end

--- Run fn(spec, host_object) on every target in parallel; results in target order.
local function each(session, fn)
   local tasks = {}
   for i, spec in ipairs(session.targets) do
      tasks[i] = function()
         return fn(spec, session.pool.get(spec))
      end
   end
   local results = sched.run(tasks, { forks = session.forks })
   local out = {}
   for i, res in ipairs(results) do
      out[i] = res.ok and res.values[1] or { failed = true, msg = res.err }
   end
   return out
end

--- Run a shell command on every target: {name, stdout, stderr, status} or
-- {name, error, unreachable} per host, in target order.
---@param session table
---@param cmd string
function M.command(session, cmd)
   return each(session, function(spec, h)
      local r, err = h:exec(cmd)
      if not r then
         return { name = spec.name, error = err, unreachable = h:unreachable() }
      end
      return { name = spec.name, stdout = r.stdout, stderr = r.stderr, status = r.status }
   end)
end

-- "etcd1, etcd2 (2)" for a group of hosts with the same outcome.
local function names(group)
   local list = {}
   for i, r in ipairs(group) do
      list[i] = r.name
   end
   return table.concat(list, ", ") .. (#group > 1 and (" (%d)"):format(#group) or "")
end

-- A host's inventory variables as a module sees them in a playbook: secret()
-- values unwrapped (the session knows them already, so output hides them).
local function revealed(vars, out, depth)
   depth = depth or 0
   local playbook = require("etcdrun.playbook")
   if playbook.is_secret(vars) then
      out:secret(vars)
      return vars.value
   elseif type(vars) ~= "table" or depth > 8 or getmetatable(vars) ~= nil then
      return vars
   end
   local t = {}
   for k, v in pairs(vars) do
      t[k] = revealed(v, out, depth + 1)
   end
   return t
end

local function indent(text)
   return (text:gsub("\n$", ""):gsub("[^\n]*", "  %0", 1):gsub("\n", "\n  "))
end

--- Print command results, hosts with identical outcomes together, groups in
-- the order of their first host. Returns the number of hosts that failed.
---@param write fun(s: string)
---@param results table[] from M.command
function M.print_command(write, results)
   local groups, by_key = {}, {}
   for _, r in ipairs(results) do
      local key = r.error and ("E" .. r.error) or
         table.concat({ r.status, #r.stdout, r.stdout, r.stderr }, "\0")
      if not by_key[key] then
         by_key[key] = {}
         groups[#groups + 1] = by_key[key]
      end
      table.insert(by_key[key], r)
   end
   local failed = 0
   for _, g in ipairs(groups) do
      local r = g[1]
      local head = names(g)
      if r.error then
         failed = failed + #g
         write(("%s: %s: %s\n"):format(head, r.unreachable and "UNREACHABLE" or "FAILED", r.error))
      else
         if r.status ~= 0 then
            failed = failed + #g
            head = head .. (" [rc=%d]"):format(r.status)
         end
         local out = r.stdout
         if r.stderr ~= "" then
            out = out .. (out ~= "" and out:sub(-1) ~= "\n" and "\n" or "") .. r.stderr
         end
         local body = out:gsub("\n$", "")
         if body == "" then
            write(head .. ":\n")
         elseif not body:find("\n", 1, true) then
            write(head .. ": " .. body .. "\n")
         else
            write(head .. ":\n" .. indent(body) .. "\n")
         end
      end
   end
   return failed
end

--- Run a module (already validated args) on every target, the way the
-- playbook runner does: check, then apply unless in check mode.
---@param session table
---@param mod table loaded module
---@param vargs table validated arguments
---@return table[] {name, result, duration} in target order
function M.module(session, mod, vargs)
   local controller = session.controller
   return each(session, function(spec, h)
      local t0 = runtime.monotonic()
      local ok, err, code = h:connect()
      if not ok then
         return { name = spec.name, result = { unreachable = true, failed = true, msg = err, code = code },
            duration = runtime.monotonic() - t0 }
      end
      local ctx = context.new({
         host = h,
         controller = controller,
         check = session.check,
         diff = true,
         vars = revealed(spec.vars or {}, session.out),
         out = session.out,
         base = session.cwd,
         hosts = function(name)
            local other = session.inv:host(name)
            return other and session.pool.get(other)
         end,
      })
      local r = module.run(mod, ctx, vargs)
      return { name = spec.name, result = r, duration = runtime.monotonic() - t0 }
   end)
end

-- etcdctl.env as issue 6 leaves it: KEY=VALUE lines, maybe `export`ed or quoted.
local function parse_env(text)
   local env = {}
   for line in text:gmatch("[^\n]+") do
      local k, v = line:match("^%s*export%s+([%w_]+)=(.*)$")
      if not k then
         k, v = line:match("^%s*([%w_]+)=(.*)$")
      end
      if k then
         v = v:gsub("%s+$", "")
         local q = v:sub(1, 1)
         if (q == "'" or q == '"') and v:sub(-1) == q and #v >= 2 then
            v = v:sub(2, -2)
         end
         env[k] = v
      end
   end
   return env
end

local SPLIT = "--etcdrun-split--"

--- etcdctl with the cluster's TLS settings from <pki_dir>/etcdctl.env, run on
-- the first target. The admin certificate and key travel on stdin into a
-- private temporary directory that is removed when etcdctl exits: never on a
-- command line, never left behind by a normal exit.
---@param session table
---@param args string etcdctl's arguments, as a shell would split them
---@param pki_dir string
---@return table|nil result {name, stdout, stderr, status}, string? err
function M.etcdctl(session, args, pki_dir)
   local envfile = pki_dir .. "/etcdctl.env"
   local text = fs.read(envfile)
   if not text then
      return nil, ("no %s: the cluster playbook (playbooks/tls-cluster.lua) leaves it in the PKI"
         .. " directory; name another directory with :pki DIR"):format(envfile)
   end
   local env = parse_env(text)
   local files = {}
   for _, k in ipairs({ "ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY" }) do
      if not env[k] or env[k] == "" then
         return nil, ("%s does not set %s"):format(envfile, k)
      end
   end
   for _, k in ipairs({ "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY" }) do
      local path = env[k]:sub(1, 1) == "/" and env[k] or (pki_dir .. "/" .. env[k])
      local data, err = fs.read(path)
      if not data then
         return nil, ("%s (%s in %s)"):format(err, k, envfile)
      end
      files[#files + 1] = data:sub(-1) == "\n" and data or data .. "\n"
   end
   local spec = session.targets[1]
   local q = shell.quote
   local script = table.concat({
      'd=$(mktemp -d) || exit 1',
      'trap \'rm -rf "$d"\' EXIT INT TERM HUP',
      "(umask 077 && awk -v d=\"$d\" 'BEGIN {n = 0} $0 == \"" .. SPLIT .. "\" {n++; next}"
         .. " {print > (d \"/\" n)}') || exit 1",
      ("PATH=/opt/etcd/bin:$PATH ETCDCTL_API=3 ETCDCTL_ENDPOINTS=%s"):format(q(env.ETCDCTL_ENDPOINTS))
         .. ' ETCDCTL_CACERT="$d/0" ETCDCTL_CERT="$d/1" ETCDCTL_KEY="$d/2" etcdctl ' .. args,
   }, "\n")
   local stdin = table.concat(files, SPLIT .. "\n")
   local r = each({ targets = { spec }, pool = session.pool, forks = 1 }, function(_, h)
      local res, err = h:exec(script, { stdin = stdin })
      if not res then
         return { name = spec.name, error = err, unreachable = h:unreachable() }
      end
      return { name = spec.name, stdout = res.stdout, stderr = res.stderr, status = res.status }
   end)[1]
   if r.status == 127 and r.stderr:find("etcdctl", 1, true) then
      r.stderr = r.stderr .. ("(no etcdctl on %s: the cluster playbook installs it in /opt/etcd/bin)\n")
         :format(spec.name)
   end
   return r
end

return M
