-- etcd_facts: what a node says about itself as an etcd member, read-only,
-- in one round trip (plus the host's facts): who commands run as, whether
-- systemd runs, the architecture, the clock, whether etcd runs or has data,
-- who holds the client and peer ports, the CA the member trusts, and the
-- member's address (given, else an interface's IPv4, else the address it is
-- reached at, else the default route's). Problems are listed, not raised:
-- etcd_preflight reports every member's at once, before anything changes.
local shell = require("etcdrun.shell")
local x509 = require("etcdrun.x509")

local M = {
   doc = "Read a node's etcd-relevant facts (address, running, data, ports, trusted CA, clock); changes nothing.",
   args = {
      data_dir = { type = "path", required = true, absolute = true, doc = "the member's data directory" },
      client_port = { type = "integer", default = 2379, doc = "etcd's client port" },
      peer_port = { type = "integer", default = 2380, doc = "etcd's peer port" },
      address = { type = "string", doc = "the member's address, if pinned (must be one of the node's)" },
      interface = { type = "string", doc = "take the member's address from this interface's IPv4" },
      clock_skew = { type = "number", default = 60, doc = "largest clock difference to the controller (s)" },
      ca_path = { type = "path", default = "/etc/etcd/ssl/ca.crt", absolute = true,
         doc = "the CA certificate the member trusts" },
      config_path = { type = "path", default = "/etc/etcd/etcd.conf.yaml", absolute = true,
         doc = "etcd's configuration file (initial-cluster-state and quota-backend-bytes are read from it)" },
   },
   examples = [[task "preflight" { etcd_facts = { data_dir = "/var/lib/etcd/etcd1.etcd" }, register = "preflight" }]],
}

local SUPPORTED_ARCH = { amd64 = true, arm64 = true, ppc64le = true, s390x = true }
local CA_MARK = "@@etcdrun-ca@@" -- found with a plain find: no pattern

function M.gather(ctx, args)
   local script = table.concat({
      "echo uid=$(id -u)",
      "if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi",
      -- a start or stop in flight (left by a run that was killed) settles
      -- first, up to 30 s: a restart must never overlap another (a unit
      -- waiting to be restarted after a crash, "auto-restart", is no job)
      "for i in $(seq 300); do case $(systemctl show -p SubState --value etcd 2>/dev/null) in"
         .. " start|start-pre|start-post|stop|stop-sigterm|stop-sigkill|stop-post|reload) sleep 0.1;; *) break;; esac;"
         .. " done",
      "echo now=$(date +%s)",
      "echo active=$(systemctl is-active etcd 2>/dev/null)",
      "echo enabled=$(systemctl is-enabled etcd 2>/dev/null)",
      ("sed -n -e 's/^initial-cluster-state: *\\([a-z]*\\).*/cluster_state=\\1/p'"
         .. " -e 's/^quota-backend-bytes: *\\([0-9]*\\).*/quota=\\1/p' %s 2>/dev/null"):format(
         shell.quote(args.config_path)),
      ("if [ -d %s/member ]; then echo has_data=yes; else echo has_data=no; fi"):format(shell.quote(args.data_dir)),
      ("ss -Hltnp 2>/dev/null | grep -E ':(%d|%d)[[:space:]]' | sed 's/^/port=/'"):format(args.client_port,
         args.peer_port),
      "echo " .. CA_MARK,
      "cat " .. shell.quote(args.ca_path) .. " 2>/dev/null",
   }, "\n")
   local r, err, code = ctx.host:exec(script)
   if not r then
      return nil, err, code
   end
   local at = r.stdout:find(CA_MARK .. "\n", 1, true)
   local head = at and r.stdout:sub(1, at - 1) or r.stdout
   local ca = at and r.stdout:sub(at + #CA_MARK + 1) or nil
   local state = { kv = {}, ports = {}, controller_now = os.time(), facts = ctx.vars.facts,
      reached_at = ctx.host.address }
   for line in head:gmatch("[^\n]+") do
      local k, val = line:match("^([%w_]+)=(.*)$")
      if k == "port" then
         state.ports[#state.ports + 1] = val
      elseif k then
         state.kv[k] = val
      end
   end
   local info = ca and ca ~= "" and x509.try.info(ca)
   state.ca_fingerprint = info and info.fingerprint_sha256 or nil
   return state
end

local function is_ipv4(s)
   return type(s) == "string" and s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- The member's address, and a problem when it cannot be had.
local function address_of(facts, args, reached_at)
   local addrs, have = {}, {}
   for _, i in pairs(facts.interfaces or {}) do
      for _, a in ipairs(i.ipv4 or {}) do
         addrs[a] = true
         if a ~= "127.0.0.1" then
            have[#have + 1] = a
         end
      end
   end
   table.sort(have)
   if args.address then
      if not addrs[args.address] then
         return args.address, ("etcd_address %s is not an address of this node (it has %s)"):format(args.address,
            table.concat(have, ", "))
      end
      return args.address
   elseif args.interface then
      local i = facts.interfaces and facts.interfaces[args.interface]
      local a = i and i.ipv4 and i.ipv4[1]
      return a, not a and ("etcd_interface %s has no IPv4 address"):format(args.interface) or nil
   elseif is_ipv4(reached_at) and addrs[reached_at] then
      return reached_at
   end
   local a = facts.default_ipv4
   return a, not a and "no member address: set etcd_address or etcd_interface" or nil
end

function M.plan(state, args)
   local kv, facts = state.kv, state.facts or {}
   local problems = {}
   if kv.uid ~= "0" then
      problems[#problems + 1] = ("commands run as uid %s: root (or become) is needed"):format(tostring(kv.uid))
   end
   if kv.systemd ~= "yes" then
      problems[#problems + 1] = "systemd is not running (PID 1 must be systemd)"
   end
   if not SUPPORTED_ARCH[facts.arch_go] then
      problems[#problems + 1] = ("architecture %s (%s) has no etcd release"):format(tostring(facts.arch),
         tostring(facts.arch_go))
   end
   local skew = tonumber(kv.now) and (tonumber(kv.now) - state.controller_now) or 0
   if math.abs(skew) > args.clock_skew then
      problems[#problems + 1] = ("clock is %d s off the controller's (certificates depend on time; limit %d s)")
         :format(skew, args.clock_skew)
   end
   for _, p in ipairs(state.ports) do
      if not p:find('"etcd"', 1, true) then
         problems[#problems + 1] = ("port in use by another program: %s"):format((p:gsub("%s+", " ")))
      end
   end
   local address, problem = address_of(facts, args, state.reached_at)
   problems[#problems + 1] = problem
   local active = kv.active or ""
   return {
      changed = false,
      msg = ("address %s, %s, etcd %s"):format(tostring(address), tostring(facts.arch_go),
         active ~= "" and active or "absent"),
      result = {
         address = address or "",
         hostname = facts.hostname,
         arch = facts.arch_go,
         running = active == "active" or active == "activating",
         has_data = kv.has_data == "yes",
         ca_fingerprint = state.ca_fingerprint,
         problems = problems,
         -- for the doctor: the clock against the controller's (whole
         -- seconds), the unit enabled at boot, and from the configuration
         skew = skew,
         enabled = kv.enabled or "",
         initial_cluster_state = kv.cluster_state,
         quota_backend_bytes = tonumber(kv.quota),
      },
   }
end

return M
