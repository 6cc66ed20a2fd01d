--- The policy behind playbooks/tls-cluster.lua that modules do not cover:
-- preflight, the release download, health barriers, the rolling restart,
-- verification and the operator's files. Each step is a function the
-- playbook uses as a task (`run = lib.preflight`) or as a computed argument.
local archive = require("etcdrun.core.archive")
local codec = require("etcdrun.core.codec")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local http = require("etcdrun.http")
local runtime = require("etcdrun.core.runtime")
local shell = require("etcdrun.shell")
local x509 = require("etcdrun.core.x509")

local M = {}

M.DEFAULTS = {
   etcd_version = "3.5.17",
   etcd_pki_dir = "pki",
   etcd_key_type = "ec",
   etcd_key_bits = 4096,
   etcd_cluster_token = "etcd-cluster-1",
   etcd_client_port = 2379,
   etcd_peer_port = 2380,
   etcd_heartbeat_interval = 100,
   etcd_election_timeout = 1000,
   etcd_snapshot_count = 10000,
   etcd_compaction_retention = "1",
   etcd_extra_config = {},
   etcd_health_timeout = 60,
   etcd_clock_skew = 60,
   etcd_cert_days = 825,
   etcd_renew_days = 30,
}

local SUPPORTED_ARCH = { amd64 = true, arm64 = true, ppc64le = true, s390x = true }

--- A variable with the playbook's default (defaults rank below the inventory).
function M.opt(v, name)
   local value = v(name, M.DEFAULTS[name])
   local default = M.DEFAULTS[name]
   if type(default) == "number" and type(value) == "string" then
      value = tonumber(value) or error(("%s must be a number, got '%s'"):format(name, value), 0)
   end
   return value
end

--- The PKI directory on the controller, absolute. A relative etcd_pki_dir
-- (the default `pki` included) is relative to the inventory file's directory,
-- not to the working directory: the same inventory always finds the same CA,
-- from wherever the operator runs. Without an inventory file, the working
-- directory.
function M.pki(v)
   local dir = M.opt(v, "etcd_pki_dir")
   if dir:sub(1, 1) ~= "/" then
      local base = v("inventory_dir", nil) or runtime.abspath(".")
      dir = base .. "/" .. dir
   end
   return (dir:gsub("/+$", ""))
end

function M.key_bits(v)
   if M.opt(v, "etcd_key_type") == "rsa" then
      return M.opt(v, "etcd_key_bits")
   end
   return nil
end

function M.data_dir(v)
   return ("/var/lib/etcd/%s.etcd"):format(v.inventory_hostname)
end

--- The members, in play order, with the addresses preflight found.
function M.members(v)
   local out = {}
   for i, name in ipairs(v.play_hosts) do
      out[i] = { name = name, address = v.hostvars[name].preflight.address }
   end
   return out
end

local function client_url(v, address)
   local a = address:find(":", 1, true) and ("[" .. address .. "]") or address
   return ("https://%s:%d"):format(a, M.opt(v, "etcd_client_port"))
end

local function peer_url(v, address)
   local a = address:find(":", 1, true) and ("[" .. address .. "]") or address
   return ("https://%s:%d"):format(a, M.opt(v, "etcd_peer_port"))
end

--- A member certificate's SANs: its address, its name, localhost, loopbacks.
function M.sans(v)
   local ips = { v.preflight.address, "127.0.0.1", "::1" }
   local dns = { v.inventory_hostname, "localhost" }
   if v.preflight.hostname and v.preflight.hostname ~= v.inventory_hostname then
      dns[#dns + 1] = v.preflight.hostname
   end
   return { ip = ips, dns = dns }
end

function M.tls(v)
   local pki = M.pki(v)
   return { ca = pki .. "/ca.crt", cert = pki .. "/healthcheck.crt", key = pki .. "/healthcheck.key" }
end

function M.profile()
   return table.concat({
      "# Managed by etcdrun (playbooks/tls-cluster.lua).",
      'export PATH="$PATH:/opt/etcd/bin"',
      "export ETCDCTL_API=3",
      "export ETCDCTL_ENDPOINTS=https://127.0.0.1:2379",
      "export ETCDCTL_CACERT=/etc/etcd/ssl/ca.crt",
      "export ETCDCTL_CERT=/etc/etcd/ssl/server.crt",
      "export ETCDCTL_KEY=/etc/etcd/ssl/server.key",
      "",
   }, "\n")
end

local unit_text
function M.unit_file()
   if not unit_text then
      local here = debug.getinfo(1, "S").source:match("^@(.*)/lua/etcdrun/[^/]*$") or "."
      unit_text = assert(fs.read(here .. "/playbooks/templates/etcd.service"))
   end
   return unit_text
end

--- Variables for templates/etcd.conf.yaml.j2.
function M.config_vars(v, state)
   return {
      name = v.inventory_hostname,
      data_dir = M.data_dir(v),
      address = v.preflight.address,
      client_port = M.opt(v, "etcd_client_port"),
      peer_port = M.opt(v, "etcd_peer_port"),
      members = M.members(v),
      cluster_token = M.opt(v, "etcd_cluster_token"),
      cluster_state = state or (v.preflight.has_data and "existing" or "new"),
      heartbeat_interval = M.opt(v, "etcd_heartbeat_interval"),
      election_timeout = M.opt(v, "etcd_election_timeout"),
      snapshot_count = M.opt(v, "etcd_snapshot_count"),
      compaction_retention = M.opt(v, "etcd_compaction_retention"),
      extra_config = M.opt(v, "etcd_extra_config"),
   }
end

M.MEMBER_CA = "/etc/etcd/ssl/ca.crt"

-- SHA-256 fingerprint of the first certificate of a PEM (base64-wrapped as
-- preflight reads it), or nil when there is none or it does not parse.
local function ca_fingerprint(b64)
   if not b64 or b64 == "" then
      return nil
   end
   local pem = codec.unbase64(b64)
   local info = pem and x509.info(pem)
   return info and info.fingerprint_sha256 or nil
end

local function is_ipv4(s)
   return type(s) == "string" and s:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

--- Preflight on one member: read-only; returns what later steps need and the
-- problems found (reported for all members at once by preflight_report).
function M.preflight(ctx, v)
   local h = ctx.host
   local data = M.data_dir(v)
   local script = table.concat({
      "echo uid=$(id -u)",
      "if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi",
      "echo now=$(date +%s)",
      "echo active=$(systemctl is-active etcd 2>/dev/null)",
      ("if [ -d %s/member ]; then echo has_data=yes; else echo has_data=no; fi"):format(shell.quote(data)),
      -- the CA this member trusts: a running cluster's CA is never replaced
      -- as a side effect (preflight_report compares it with the controller's)
      ("echo ca=$(base64 -w0 %s 2>/dev/null)"):format(shell.quote(M.MEMBER_CA)),
      ("ss -Hltnp 2>/dev/null | grep -E ':(%d|%d)[[:space:]]' | sed 's/^/port=/'"):format(
         M.opt(v, "etcd_client_port"), M.opt(v, "etcd_peer_port")),
   }, "\n")
   local r, err = h:exec(script)
   if not r then
      return nil, err
   end
   local kv, ports = {}, {}
   for line in r.stdout:gmatch("[^\n]+") do
      local k, val = line:match("^([%w_]+)=(.*)$")
      if k == "port" then
         ports[#ports + 1] = val
      elseif k then
         kv[k] = val
      end
   end
   local facts = v.facts
   local problems = {}
   if kv.uid ~= "0" then
      problems[#problems + 1] = ("commands run as uid %s: root (or become) is needed"):format(tostring(kv.uid))
   end
   if kv.systemd ~= "yes" then
      problems[#problems + 1] = "systemd is not running (PID 1 must be systemd)"
   end
   if not SUPPORTED_ARCH[facts.arch_go] then
      problems[#problems + 1] = ("architecture %s (%s) has no etcd release"):format(facts.arch, facts.arch_go)
   end
   local skew = tonumber(kv.now) and (tonumber(kv.now) - os.time()) or 0
   if math.abs(skew) > M.opt(v, "etcd_clock_skew") then
      problems[#problems + 1] = ("clock is %d s off the controller's (certificates depend on time; limit %d s)")
         :format(skew, M.opt(v, "etcd_clock_skew"))
   end
   for _, p in ipairs(ports) do
      if not p:find('"etcd"', 1, true) then
         problems[#problems + 1] = ("port in use by another program: %s"):format(p:gsub("%s+", " "))
      end
   end
   -- the member address: inventory, else an interface, else how we reach it
   local addrs, address = {}, nil -- luacheck: ignore 311
   for _, i in pairs(facts.interfaces or {}) do
      for _, a in ipairs(i.ipv4 or {}) do
         addrs[a] = true
      end
   end
   local pinned = v("etcd_address", nil)
   local ifname = v("etcd_interface", nil)
   if pinned then
      address = pinned
      if not addrs[address] then
         local have = {}
         for a in pairs(addrs) do
            if a ~= "127.0.0.1" then
               have[#have + 1] = a
            end
         end
         table.sort(have)
         problems[#problems + 1] = ("etcd_address %s is not an address of this node (it has %s)"):format(address,
            table.concat(have, ", "))
      end
   elseif ifname then
      local i = facts.interfaces and facts.interfaces[ifname]
      address = i and i.ipv4 and i.ipv4[1]
      if not address then
         problems[#problems + 1] = ("etcd_interface %s has no IPv4 address"):format(ifname)
      end
   elseif h.address and is_ipv4(h.address) and addrs[h.address] then
      address = h.address
   else
      address = facts.default_ipv4
   end
   if not address then
      problems[#problems + 1] = "no member address: set etcd_address or etcd_interface"
   end
   return {
      changed = false,
      msg = ("address %s, %s, etcd %s"):format(tostring(address), facts.arch_go,
         kv.active ~= "" and kv.active or "absent"),
      address = address or "",
      hostname = facts.hostname,
      arch = facts.arch_go,
      running = kv.active == "active" or kv.active == "activating",
      has_data = kv.has_data == "yes",
      ca_fingerprint = ca_fingerprint(kv.ca),
      problems = problems,
   }
end

--- The CA guard: a member that runs (or holds data) trusts a CA; the
-- controller's PKI must hold that same CA, or this run would issue
-- certificates from another CA, push them, and cut every member off from the
-- others at their next handshake. Replacing the CA of a running cluster is a
-- CA rotation, never a side effect of a run from another directory.
---@param lines string[] problems so far (appended to)
---@param pki string the controller's PKI directory, absolute
---@param reports table<string, table|nil> member name -> preflight result
function M.ca_problems(lines, pki, reports)
   local pem = fs.read(pki .. "/ca.crt")
   local info = pem and x509.info(pem)
   local mine = info and info.fingerprint_sha256 or nil
   local by_ca, order = {}, {}
   for name, p in pairs(reports) do
      if p and p.ca_fingerprint and (p.running or p.has_data) and p.ca_fingerprint ~= mine then
         if not by_ca[p.ca_fingerprint] then
            by_ca[p.ca_fingerprint] = {}
            order[#order + 1] = p.ca_fingerprint
         end
         table.insert(by_ca[p.ca_fingerprint], name)
      end
   end
   table.sort(order)
   for _, fp in ipairs(order) do
      table.sort(by_ca[fp])
      lines[#lines + 1] = ("  %s: etcd runs (or has data) trusting the CA in %s, SHA-256 %s; the PKI directory %s"
         .. " %s. Issuing certificates from another CA would cut the members off from each other. Point"
         .. " etcd_pki_dir at the directory that holds this cluster's ca.crt and ca.key (-e etcd_pki_dir=/path;"
         .. " a relative path is relative to the inventory file's directory). Replacing a running cluster's CA"
         .. " is a CA rotation, never a side effect of this playbook."):format(table.concat(by_ca[fp], ", "),
         M.MEMBER_CA, fp, pki, mine and ("holds another CA, SHA-256 " .. mine) or "has no ca.crt")
   end
   return lines
end

--- On the controller: every member's problems at once, before any change.
function M.preflight_report(_, v)
   local lines = {}
   if #v.play_hosts ~= #(v.groups.etcd or {}) then
      lines[#lines + 1] = ("  the play covers %d of the %d hosts of group etcd: tls-cluster.lua works on the whole"
         .. " cluster (a --limit would change its membership)"):format(#v.play_hosts, #(v.groups.etcd or {}))
   end
   local pki = M.pki(v)
   local reports = {}
   for _, name in ipairs(v.play_hosts) do
      local p = v.hostvars[name]("preflight", nil)
      -- a host that was unreachable or failed registered its failure instead
      if type(p) == "table" and type(p.problems) == "table" and not p.failed then
         reports[name] = p
      else
         local why = type(p) == "table" and p.msg and tostring(p.msg) or "no preflight result"
         lines[#lines + 1] = ("  %s: %s: every member must be up and reachable before anything changes"):format(
            name, (type(p) == "table" and p.unreachable) and ("unreachable (" .. why .. ")") or why)
      end
   end
   lines = M.ca_problems(lines, pki, reports)
   local seen = {}
   for _, name in ipairs(v.play_hosts) do
      local p = reports[name] or { problems = {}, address = "" }
      for _, problem in ipairs(p.problems) do
         lines[#lines + 1] = ("  %s: %s"):format(name, problem)
      end
      if p.address ~= "" and seen[p.address] then
         lines[#lines + 1] = ("  %s: address %s is also %s's"):format(name, p.address, seen[p.address])
      end
      seen[p.address] = name
      -- a certificate issued for another address means the member moved: on a
      -- running cluster that needs `etcdctl member update`, not a new config
      local crt = ("%s/%s-peer.crt"):format(M.pki(v), name)
      local pem = fs.read(crt)
      local info = pem and x509.info(pem)
      if info and p.address ~= "" then
         local has = false
         for _, ip in ipairs(info.san and info.san.ip or {}) do
            has = has or ip == p.address
         end
         if not has and p.has_data then
            lines[#lines + 1] = ("  %s: its address is now %s but its certificate (%s) names %s: a member of a"
               .. " running cluster cannot change address by reconfiguration (use etcdctl member update)")
               :format(name, p.address, crt, table.concat(info.san.ip or {}, ", "))
         end
      end
   end
   if #lines > 0 then
      return nil, "preflight found problems; nothing was changed:\n" .. table.concat(lines, "\n")
   end
   return { changed = false, msg = ("%d members ready; PKI %s"):format(#v.play_hosts, pki),
      report = "PKI (etcd_pki_dir): " .. pki }
end

local function release_url(v)
   local url = v("etcd_release_url", nil)
   if url then
      return (url:gsub("/+$", ""))
   end
   return "https://github.com/etcd-io/etcd/releases/download/v" .. M.opt(v, "etcd_version")
end

--- On the controller: the release tarball for every architecture in the
-- cluster, through the download cache, verified against SHA256SUMS. A bad
-- checksum stops the run here, before any node is touched.
function M.fetch_release(_, v)
   local version = M.opt(v, "etcd_version")
   local base = release_url(v)
   local cache = (os.getenv("XDG_CACHE_HOME") or ((os.getenv("HOME") or "/tmp") .. "/.cache")) .. "/etcdrun/releases"
   if not v.ansible_check_mode then
      fs.mkdir(cache, { mode = 448 })
   end
   local tarballs = {}
   local fetched = {}
   for _, name in ipairs(v.play_hosts) do
      local arch = v.hostvars[name].preflight.arch
      if not tarballs[arch] then
         local file = ("etcd-v%s-linux-%s.tar.gz"):format(version, arch)
         -- a read-only step under --check: report, fetch nothing (the real run
         -- verifies the cached copy against SHA256SUMS)
         if v.ansible_check_mode then
            tarballs[arch] = cache .. "/" .. file
            fetched[#fetched + 1] = ("%s (%s)"):format(file, fs.stat(tarballs[arch]) and "cached" or "would download")
            goto next_host
         end
         local r, err = http.try_download({
            url = base .. "/" .. file,
            sums_url = base .. "/SHA256SUMS",
            dest = cache .. "/" .. file,
            cache = true,
         })
         if not r then
            return nil, err
         end
         tarballs[arch] = r.path
         fetched[#fetched + 1] = ("%s (%s)"):format(file, r.cached and "cached" or "downloaded")
      end
      ::next_host::
   end
   return { changed = false, msg = table.concat(fetched, ", "), tarballs = tarballs }
end

local function urls_of(v)
   local urls = {}
   for i, m in ipairs(M.members(v)) do
      urls[i] = client_url(v, m.address)
   end
   return urls
end

-- What etcd's journal says, with what it usually means.
local HINTS = {
   { "incompatible key usage", "a peer certificate lacks clientAuth (peers authenticate as clients too)" },
   { "couldn't find local name", "the member's name is missing from initial-cluster" },
   { "address already in use", "another program holds the client or peer port" },
   { "certificate is valid for", "a certificate's SANs do not include the address used" },
   { "member count is unequal", "initial-cluster differs between members" },
   { "request sent was ignored by remote peer due to cluster ID mismatch",
      "a member has data from another cluster (same name, different token)" },
}

local function journal_report(ctx, v)
   local out = {}
   for _, name in ipairs(v.play_hosts) do
      local h = ctx.hosts(name)
      local r = h and h:exec("journalctl -u etcd -n 15 --no-pager -o cat 2>&1; systemctl is-active etcd")
      local text = r and r.stdout or "(no journal)"
      out[#out + 1] = ("--- %s: journalctl -u etcd (last lines)\n%s"):format(name, text)
      for _, hint in ipairs(HINTS) do
         if text:find(hint[1], 1, true) then
            out[#out + 1] = ("    => %s: %s"):format(name, hint[2])
         end
      end
   end
   return table.concat(out, "\n")
end

--- On the controller: wait (with a deadline) until every member is healthy.
function M.wait_healthy(ctx, v)
   local urls = urls_of(v)
   local t0 = runtime.monotonic()
   local ok, why = etcd.wait_healthy(urls, M.tls(v), M.opt(v, "etcd_health_timeout"))
   if not ok then
      return nil, ("the cluster did not become healthy within %d s: %s\n%s"):format(M.opt(v, "etcd_health_timeout"),
         why, journal_report(ctx, v))
   end
   return { changed = false, msg = ("%d members healthy after %.1f s"):format(#urls, runtime.monotonic() - t0) }
end

local RESTART_CAUSES = { "config", "unit", "binaries", "ca_pushed", "server_crt_pushed", "server_key_pushed",
   "peer_crt_pushed", "peer_key_pushed" }

--- On the controller: members that were running and whose config, unit,
--- binary or certificates changed restart one at a time, each after the
--- cluster is healthy again, the leader last, so quorum is never lost.
local function restart_todo(v)
   local todo = {}
   for _, m in ipairs(M.members(v)) do
      local hv = v.hostvars[m.name]
      if hv.preflight.running then
         local why = {}
         for _, cause in ipairs(RESTART_CAUSES) do
            local r = hv(cause, nil)
            if type(r) == "table" and r.changed then
               why[#why + 1] = cause
            end
         end
         if #why > 0 then
            todo[#todo + 1] = { name = m.name, url = client_url(v, m.address), why = why }
         end
      end
   end
   return todo
end

--- Read-only, for --check: which members the rolling restart would restart.
function M.restart_plan(_, v)
   local todo = restart_todo(v)
   if #todo == 0 then
      return { changed = false, msg = "no member needs a restart" }
   end
   local names = {}
   for i, t in ipairs(todo) do
      names[i] = ("%s (%s)"):format(t.name, table.concat(t.why, ", "))
   end
   return { changed = true, msg = "would restart one at a time: " .. table.concat(names, ", ") }
end

function M.rolling_restart(ctx, v)
   local todo = restart_todo(v)
   if #todo == 0 then
      return { changed = false, msg = "no member needs a restart" }
   end
   local tls = M.tls(v)
   -- the leader goes last: restarting it first would force an extra election
   for _, t in ipairs(todo) do
      local s = etcd.status(t.url, tls)
      t.leader = s and s.is_leader or false
   end
   table.sort(todo, function(a, b)
      if a.leader ~= b.leader then
         return not a.leader
      end
      return a.name < b.name
   end)
   local urls = urls_of(v)
   local done = {}
   for _, t in ipairs(todo) do
      local ok, why = etcd.wait_healthy(urls, tls, M.opt(v, "etcd_health_timeout"))
      if not ok then
         return nil, ("not restarting %s: the cluster is not healthy (%s)"):format(t.name, why)
      end
      local r, err = ctx.hosts(t.name):exec("systemctl restart etcd", { timeout = 120 })
      if not r or r.status ~= 0 then
         return nil, ("restart of etcd on %s failed: %s\n%s"):format(t.name, err or r.stderr, journal_report(ctx, v))
      end
      ok, why = etcd.wait_healthy(urls, tls, M.opt(v, "etcd_health_timeout"))
      if not ok then
         return nil, ("after restarting %s the cluster did not recover: %s\n%s"):format(t.name, why,
            journal_report(ctx, v))
      end
      done[#done + 1] = ("%s%s (%s)"):format(t.name, t.leader and " [leader]" or "", table.concat(t.why, ", "))
   end
   return { changed = true, msg = "restarted one at a time: " .. table.concat(done, "; ") }
end

--- On the controller: health, membership as planned, a canary written on
--- one member and read on another, and a client without a certificate refused.
function M.verify(_, v)
   local tls = M.tls(v)
   local members = M.members(v)
   local urls = urls_of(v)
   for _, u in ipairs(urls) do
      local ok, err = etcd.health(u, tls)
      if not ok then
         return nil, "unhealthy: " .. tostring(err)
      end
   end
   local list, err = etcd.members(urls[1], tls)
   if not list then
      return nil, err
   end
   local want = {}
   for _, m in ipairs(members) do
      want[m.name] = peer_url(v, m.address)
   end
   if #list ~= #members then
      return nil, ("member list has %d members, the inventory %d"):format(#list, #members)
   end
   for _, m in ipairs(list) do
      if want[m.name] == nil then
         return nil, ("member '%s' is in the cluster but not in the inventory"):format(m.name)
      end
      if m.peer_urls[1] ~= want[m.name] then
         return nil, ("member %s advertises %s, planned %s"):format(m.name, tostring(m.peer_urls[1]), want[m.name])
      end
   end
   local value = ("written %d by etcdrun"):format(os.time())
   local ok
   ok, err = etcd.put(urls[1], tls, "etcdrun/canary", value)
   if not ok then
      return nil, "canary put failed: " .. tostring(err)
   end
   local reader = urls[#urls > 1 and 2 or 1]
   local got
   got, err = etcd.get(reader, tls, "etcdrun/canary")
   if got ~= value then
      return nil, ("canary written on %s read back as %s from %s %s"):format(urls[1], tostring(got), reader, err or "")
   end
   local anon = require("etcdrun.core.http").request({ url = urls[1] .. "/health", ca = tls.ca, timeout = 5,
      connect_timeout = 2 })
   if anon and anon.status == 200 then
      return nil, "a client without a certificate was accepted: client-cert-auth is not in force"
   end
   return {
      changed = false,
      msg = ("%d members healthy and as planned; canary written on %s, read on %s; a client without a"
         .. " certificate is refused"):format(#members, members[1].name, members[#urls > 1 and 2 or 1].name),
   }
end

--- On the controller: pki/etcdctl.env (and pki/bin/etcdctl) so that
--- `set -a; . pki/etcdctl.env; etcdctl endpoint status -w table` works at once.
function M.operator_files(ctx, v)
   local pki = M.pki(v)
   local env = table.concat({
      "# etcdctl settings for this cluster, written by etcdrun (playbooks/tls-cluster.lua)",
      "ETCDCTL_API=3",
      "ETCDCTL_ENDPOINTS=" .. table.concat(urls_of(v), ","),
      "ETCDCTL_CACERT=" .. pki .. "/ca.crt",
      "ETCDCTL_CERT=" .. pki .. "/admin.crt",
      "ETCDCTL_KEY=" .. pki .. "/admin.key",
      "PATH=" .. pki .. "/bin:$PATH",
      "",
   }, "\n")
   local changed = false
   if fs.read(pki .. "/etcdctl.env") ~= env then
      assert(fs.write(pki .. "/etcdctl.env", env, { mode = 384 }))
      changed = true
   end
   -- etcdctl for the controller, from the release already in the cache
   local arch = ({ x86_64 = "amd64", aarch64 = "arm64" })[(ctx.controller:exec("uname -m").stdout or ""):match("%S+")]
   local tarball = arch and v.release.tarballs[arch]
   if tarball and not fs.stat(pki .. "/bin/etcdctl") then
      local ok, err = archive.extract(tarball, pki .. "/bin", { strip_components = 1, include = { "etcdctl" } })
      if not ok then
         return nil, err
      end
      changed = true
   end
   local line = ("set -a; . %s/etcdctl.env; etcdctl endpoint status -w table"):format(pki)
   return { changed = changed, msg = line, report = "etcdctl on this machine:\n  " .. line }
end

local function human_bytes(n)
   if not n then
      return "?"
   end
   local units = { "B", "KiB", "MiB", "GiB" }
   local i = 1
   while n >= 1024 and i < #units do
      n, i = n / 1024, i + 1
   end
   return ("%.1f %s"):format(n, units[i])
end

--- On the controller: the table an operator wants to see.
function M.report(_, v)
   local tls = M.tls(v)
   local rows = { { "member", "client URL", "leader", "version", "DB size", "health", "cert expires" } }
   for _, m in ipairs(M.members(v)) do
      local url = client_url(v, m.address)
      local s = etcd.status(url, tls)
      local healthy = etcd.health(url, tls)
      local pem = fs.read(("%s/%s-server.crt"):format(M.pki(v), m.name))
      local info = pem and x509.info(pem)
      rows[#rows + 1] = {
         m.name, url, s and (s.is_leader and "yes" or "no") or "?", s and s.version or "?",
         human_bytes(s and s.db_size), healthy and "healthy" or "UNHEALTHY",
         info and os.date("!%Y-%m-%d", info.not_after) or "?",
      }
   end
   local widths = {}
   for _, r in ipairs(rows) do
      for i, c in ipairs(r) do
         widths[i] = math.max(widths[i] or 0, #c)
      end
   end
   local lines = {}
   for _, r in ipairs(rows) do
      local cells = {}
      for i, c in ipairs(r) do
         cells[i] = c .. string.rep(" ", widths[i] - #c)
      end
      lines[#lines + 1] = table.concat(cells, "  ")
   end
   return { changed = false, msg = ("%d members"):format(#rows - 1), report = table.concat(lines, "\n") }
end

return M
