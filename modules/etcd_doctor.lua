-- etcd_doctor: what is wrong with a running cluster, at a glance, and what
-- to do about it. Read-only. gather asks every member of the inventory over
-- its client port (health, status, version, the certificate it serves on its
-- client and peer ports), one member for the member list and the alarms,
-- and, from the node the task runs on, `etcdctl endpoint hashkv` at one
-- revision every member has applied (the gateway has no HashKV); the nodes'
-- own facts (clock, unit, configuration) come from etcd_facts. plan turns
-- all of it into findings: each with what was seen, what it means and the
-- command that fixes it; a finding at level "attention" fails the task (the
-- run's exit status says something needs attention), "advice" does not.
local cjson = require("cjson")
local etcd = require("etcdrun.etcd")
local shell = require("etcdrun.shell")
local x509 = require("etcdrun.x509")

local q = shell.quote

local M = {
   doc = "Diagnose a running etcd cluster: findings with their meaning and the fixing command; read-only.",
   args = {
      members = { type = "list", elements = "table", required = true,
         doc = "the inventory's members: {name, client_url, peer_url, address}" },
      nodes = { type = "table", default = {},
         doc = "name -> etcd_facts result (running, enabled, initial_cluster_state, quota_backend_bytes, skew)" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller)" },
      key = { type = "path", required = true, doc = "its key (controller)" },
      node_tls = { type = "table", default = { ca = "/etc/etcd/ssl/ca.crt", cert = "/etc/etcd/ssl/server.crt",
         key = "/etc/etcd/ssl/server.key" }, doc = "the node's files for etcdctl (hashkv)" },
      etcdctl = { type = "path", absolute = true, default = "/opt/etcd/bin/etcdctl", doc = "on the node" },
      cert_days = { type = "integer", default = 30, doc = "a certificate expiring within this many days is a finding" },
      skew = { type = "number", default = 1, doc = "clock difference to the controller allowed (s, whole seconds)" },
      index_spread = { type = "integer", default = 1000, doc = "raft index entries a member may lag the others" },
      quota_share = { type = "number", default = 0.8, doc = "DB size against the quota that is a finding" },
      fragmentation = { type = "number", default = 0.5,
         doc = "advice when less than this share of a DB (over min_defrag_bytes) is in use" },
      min_defrag_bytes = { type = "integer", default = 64 * 1024 * 1024,
         doc = "DB size below which fragmentation is not worth a defrag" },
      fix = { type = "table", default = {},
         doc = "commands to name: install (tls-cluster.lua), defrag (defrag.lua), restore (restore.lua)" },
   },
   examples = [[task "doctor" { etcd_doctor = { members = { { name = "etcd1", client_url = "https://10.0.0.1:2379",
   peer_url = "https://10.0.0.1:2380", address = "10.0.0.1" } }, ca = "pki/ca.crt", cert = "pki/admin.crt",
   key = "pki/admin.key" }, run_once = true }]],
}

local DEFAULT_QUOTA = 2 * 1024 * 1024 * 1024 -- etcd's quota-backend-bytes default

local function tls_of(args)
   return { ca = args.ca, cert = args.cert, key = args.key }
end

function M.gather(ctx, args)
   local tls = tls_of(args)
   local state = { now = os.time(), members = {}, nodes = args.nodes }
   local first
   for _, m in ipairs(args.members) do
      local e = { name = m.name, url = m.client_url, address = m.address }
      e.healthy, e.health_err = etcd.health(m.client_url, tls, 3)
      e.status, e.status_err = etcd.status(m.client_url, tls)
      e.version = e.status and etcd.version(m.client_url, tls) or nil
      for port, url in pairs({ client = m.client_url, peer = m.peer_url }) do
         local pem = e.status and url and etcd.served_cert(url, tls)
         e[port .. "_cert"] = pem and x509.try.info(pem) or nil
      end
      state.members[#state.members + 1] = e
      first = first or (e.status and m.client_url)
   end
   if not first then
      return state
   end
   state.list, state.list_err = etcd.members(first, tls)
   state.alarms = etcd.alarms(first, tls)
   -- hashkv at one revision every answering member has applied
   local rev, urls = math.huge, {}
   for _, e in ipairs(state.members) do
      if e.status and e.status.revision then
         rev = math.min(rev, e.status.revision)
         urls[#urls + 1] = e.url
      end
   end
   if #urls > 1 and rev < math.huge then
      local t = args.node_tls
      local r = ctx.host:exec(("ETCDCTL_API=3 %s --endpoints=%s --cacert=%s --cert=%s --key=%s endpoint hashkv"
         .. " --rev=%d -w json 2>&1"):format(q(args.etcdctl), q(table.concat(urls, ",")), q(t.ca), q(t.cert),
         q(t.key), rev))
      local ok, list = pcall(cjson.decode, r and r.stdout or "")
      if ok and type(list) == "table" then
         state.hashkv = { revision = rev }
         for _, h in ipairs(list) do
            state.hashkv[#state.hashkv + 1] = { url = h.Endpoint, hash = h.HashKV and h.HashKV.hash }
         end
      else
         state.hashkv_err = r and r.stdout or "no answer"
      end
   end
   return state
end

-- etcdctl names members by hex ID; the gateway writes them as decimal
-- uint64 strings (wrapping arithmetic keeps all 64 bits)
local function hex_id(id)
   local n = 0
   for d in tostring(id):gmatch("%d") do
      n = n * 10 + tonumber(d)
   end
   return ("%x"):format(n)
end

local function days(t, now)
   return math.floor((t - now) / 86400)
end

local function human(n)
   return n >= 1048576 and ("%.1f MiB"):format(n / 1048576) or ("%.1f KiB"):format(n / 1024)
end

--- The findings from the state, in a fixed order; pure.
local function findings(state, args)
   local out = {}
   local fix = args.fix
   local install = fix.install or "etcdrun -i hosts playbooks/tls-cluster.lua"
   local function add(level, check, what, means, command)
      out[#out + 1] = { level = level, check = check, what = what, means = means, fix = command }
   end
   local answering, by_id, leaders, versions = {}, {}, {}, {}
   for _, e in ipairs(state.members) do
      if not e.status then
         add("attention", "health", ("%s does not answer on %s (%s)"):format(e.name, e.url, tostring(e.status_err)),
            "the member is down or cut off; the cluster keeps quorum only while a majority answers",
            ("journalctl -u etcd on %s, then %s"):format(e.name, install))
      else
         answering[#answering + 1] = e
         by_id[tostring(e.status.member_id)] = e.name
         -- with an alarm raised every member says unhealthy: the alarm's
         -- finding says why
         if not e.healthy and #(state.alarms or {}) == 0 then
            add("attention", "health", ("%s answers but is not healthy (%s)"):format(e.name, tostring(e.health_err)),
               "it cannot serve linearizable requests: no leader, or an alarm is raised",
               ("journalctl -u etcd on %s"):format(e.name))
         end
         leaders[tostring(e.status.leader or "none")] = (leaders[tostring(e.status.leader or "none")] or 0) + 1
         if e.version and e.version.server then
            versions[e.version.server] = (versions[e.version.server] or 0) + 1
         end
      end
   end
   -- leader: present, and the same for every member
   local names = {}
   for id in pairs(leaders) do
      names[#names + 1] = id
   end
   table.sort(names)
   if #answering > 0 and (leaders["none"] or leaders["0"]) then
      add("attention", "leader", "a member sees no leader", "no writes are possible until an election succeeds",
         "check that a majority of members runs and reaches each other (peer port)")
   elseif #names > 1 then
      add("attention", "leader", ("members disagree on the leader (%s)"):format(table.concat(names, ", ")),
         "a network partition, or an election in progress", "run the doctor again; if it stays, check the network")
   end
   -- raft index spread
   local lo, hi, lagging = math.huge, -1, nil
   for _, e in ipairs(answering) do
      local i = e.status.raft_index or 0
      if i < lo then
         lo, lagging = i, e.name
      end
      hi = math.max(hi, i)
   end
   if #answering > 1 and hi - lo > args.index_spread then
      add("attention", "raft index", ("%s is %d raft entries behind"):format(lagging, hi - lo),
         "it is slow (disk, CPU) or cut off from the leader", ("iostat and journalctl -u etcd on %s"):format(lagging))
   end
   -- membership: learners, and the cluster against the inventory
   local in_inventory, in_cluster = {}, {}
   for _, e in ipairs(state.members) do
      in_inventory[e.name] = true
   end
   for _, m in ipairs(state.list or {}) do
      local name = m.name ~= "" and m.name or ("(unstarted " .. tostring(m.peer_urls[1]) .. ")")
      in_cluster[m.name] = true
      if m.is_learner then
         add("attention", "learner", ("%s is a learner, not a voter"):format(name),
            "a join stopped half-way: it does not count for quorum",
            in_inventory[m.name] and install .. " (promotes it)" or m.name == "" and
            ("etcdctl member remove %s (on a member: it never started)"):format(hex_id(m.id)) or
            ("%s -e etcd_remove=%s (or add it to the inventory)"):format(install, m.name))
      elseif not in_inventory[m.name] then
         add("attention", "membership", ("%s is a member but not in the inventory"):format(name),
            "a member the playbooks do not manage; it counts for quorum",
            ("%s -e etcd_remove=%s, or add it to the group etcd"):format(install, m.name))
      end
   end
   if state.list then
      for _, e in ipairs(state.members) do
         if not in_cluster[e.name] then
            add("attention", "membership", ("%s is in the inventory but not a member"):format(e.name),
               "a host that never joined, or a member removed by hand", install .. " (joins it)")
         end
      end
   end
   -- alarms
   for _, a in ipairs(state.alarms or {}) do
      local who = by_id[a.member_id] or a.member_id
      if a.alarm == "NOSPACE" then
         add("attention", "alarm", ("NOSPACE raised by %s"):format(who),
            "the DB reached its quota: the cluster takes only reads and deletes",
            fix.defrag or "etcdrun -i hosts playbooks/defrag.lua (compacts, defragments, disarms)")
      elseif a.alarm == "CORRUPT" then
         add("attention", "alarm", ("CORRUPT raised by %s"):format(who),
            "members' data differ: the cluster refuses writes to stop it spreading",
            fix.restore or "etcdrun -i hosts playbooks/restore.lua -e snapshot=FILE (from a good snapshot)")
      end
   end
   -- DB size against the quota, and the share in use
   for _, e in ipairs(answering) do
      local node = state.nodes[e.name] or {}
      local quota = node.quota_backend_bytes or DEFAULT_QUOTA
      local size, used = e.status.db_size or 0, e.status.db_size_in_use or e.status.db_size or 0
      if size >= args.quota_share * quota then
         add("attention", "db size", ("%s: DB %s of a %s quota (%d%%)"):format(e.name, human(size), human(quota),
            math.floor(100 * size / quota)), "near the quota the cluster raises NOSPACE and refuses writes",
            fix.defrag or "etcdrun -i hosts playbooks/defrag.lua")
      elseif size >= args.min_defrag_bytes and used < args.fragmentation * size then
         add("advice", "fragmentation", ("%s: %s of its %s DB in use"):format(e.name, human(used), human(size)),
            "space freed by compaction is kept by the file until a defragmentation",
            fix.defrag or "etcdrun -i hosts playbooks/defrag.lua")
      end
   end
   -- hashkv agreement
   if state.hashkv then
      local hashes, first = {}, nil
      for _, h in ipairs(state.hashkv) do
         first = first or h.hash
         if h.hash ~= first then
            hashes[#hashes + 1] = h.url
         end
      end
      if #hashes > 0 then
         add("attention", "hashkv", ("members' key-value hashes differ at revision %d (%s differs)"):format(
            state.hashkv.revision, table.concat(hashes, ", ")), "the members' data diverged (corruption)",
            fix.restore or "etcdrun -i hosts playbooks/restore.lua -e snapshot=FILE (from a good snapshot)")
      end
   elseif state.hashkv_err then
      add("advice", "hashkv", "hashkv could not be compared: " .. tostring(state.hashkv_err):sub(1, 200),
         "the data's agreement is unknown", "run the doctor again")
   end
   -- versions
   local vlist = {}
   for ver in pairs(versions) do
      vlist[#vlist + 1] = ver
   end
   table.sort(vlist)
   if #vlist > 1 then
      add("advice", "versions", ("members run different versions (%s)"):format(table.concat(vlist, ", ")),
         "an upgrade stopped half-way", install .. " (finishes the upgrade)")
   end
   -- certificates served, by handshake
   for _, e in ipairs(answering) do
      for _, port in ipairs({ "client", "peer" }) do
         local c = e[port .. "_cert"]
         if c and c.not_after then
            local d = days(c.not_after, state.now)
            if d < args.cert_days then
               add("attention", "certificate", ("%s serves a %s certificate that expires in %d days"):format(e.name,
                  port, d), d < 0 and "it has expired: connections fail" or "it must be renewed before it expires",
                  install .. " (renews it, no restart)")
            end
            local ips = c.san and c.san.ip or {}
            local found = e.address == nil
            for _, ip in ipairs(ips) do
               found = found or ip == e.address
            end
            if not found then
               add("attention", "certificate", ("%s's %s certificate does not name %s"):format(e.name, port,
                  e.address), "clients and peers reaching it by that address refuse it",
                  install .. " (reissues it)")
            end
         end
      end
   end
   -- the nodes: clock, unit, configuration
   for _, e in ipairs(state.members) do
      local node = state.nodes[e.name]
      if node then
         if node.skew and math.abs(node.skew) > args.skew then
            add("attention", "clock", ("%s's clock is %d s off the controller's"):format(e.name, node.skew),
               "raft and leases depend on time; certificates may look not yet valid or expired",
               ("enable time sync on %s (systemd-timesyncd or chrony)"):format(e.name))
         end
         if node.enabled ~= nil and node.enabled ~= "enabled" then
            add("attention", "unit", ("%s: etcd.service is %s"):format(e.name,
               node.enabled ~= "" and node.enabled or "not installed"), "the member does not start at boot",
               install)
         end
         if node.initial_cluster_state == "new" and state.list then
            add("advice", "configuration", ("%s is still configured with initial-cluster-state: new"):format(e.name),
               "with its data dir lost it would bootstrap a cluster of its own", install .. " (sets existing)")
         end
      end
   end
   return out
end

function M.plan(state, args)
   local list = findings(state, args)
   local attention, lines = 0, {}
   for _, f in ipairs(list) do
      attention = attention + (f.level == "attention" and 1 or 0)
      lines[#lines + 1] = ("%s [%s] %s\n      means: %s\n      fix:   %s"):format(
         f.level == "attention" and "!!" or "--", f.check, f.what, f.means, f.fix)
   end
   local summary = #list == 0 and ("%d members: nothing needs attention"):format(#state.members)
      or ("%d members: %d %s attention, %d advice"):format(#state.members, attention,
         attention == 1 and "finding needs" or "findings need", #list - attention)
   return {
      changed = false,
      failed = attention > 0 or nil,
      msg = summary,
      result = { findings = list, attention = attention,
         report = summary .. (#lines > 0 and ("\n" .. table.concat(lines, "\n")) or "") },
   }
end

return M
