--- Talking to an etcd cluster from the controller over mutual TLS (libcurl),
-- through etcd's HTTP gateway: health, status (leader, version, DB size),
-- the member list and its changes (add a learner, promote, remove, move the
-- leader), and a put/get for a canary. Used by the cluster
-- playbooks to decide (wait for health, restart the leader last) and to
-- verify, and by the REPL.
local cjson = require("cjson")
local codec = require("etcdrun.core.codec")
local http = require("etcdrun.core.http")
local sched = require("etcdrun.sched")
local runtime = require("etcdrun.core.runtime")

local M = {}

-- etcd's gateway speaks base64 for keys and values
local function b64(s)
   return codec.base64(s)
end

local function unb64(s)
   return (codec.unbase64(s))
end
M.b64, M.unb64 = b64, unb64

-- With authentication enabled etcd's gateway refuses a request whose client
-- certificate has a CommonName (it will not take the CN as the user, and
-- says so), and client-cert-auth makes a certificate mandatory: the calls
-- then go with the cluster's CN-less "gateway" client certificate and a
-- root token from /v3/auth/authenticate. Both sit beside the cluster's CA
-- certificate in its PKI directory (gateway.crt, gateway.key and
-- root.password, 0600: the controller holds the CA key there anyway;
-- tls-cluster.lua makes them when etcd_auth is on), so nothing is passed
-- around: a module or the REPL with the usual client certificate works on
-- either kind of cluster. The switch is cached per CA file; a token a
-- member forgot (a restart) is taken anew.
local authed = {} -- CA file -> { tls = gateway TLS, token = }
local CN_REFUSED = "CommonName of client sending a request against gateway will be ignored"

local function post(url, path, body, tls, timeout, token)
   return http.request({
      url = url .. path,
      method = "POST",
      body = cjson.encode(body or {}),
      headers = { ["Content-Type"] = "application/json", Authorization = token },
      ca = tls.ca,
      cert = tls.cert,
      key = tls.key,
      timeout = timeout or 5,
      connect_timeout = 2,
   })
end

-- A token for `user` (nil and why: etcd's reply names neither the password
-- nor a token).
local function authenticate(url, tls, user, password, timeout)
   local r, err, code = post(url, "/v3/auth/authenticate", { name = user, password = password }, tls, timeout)
   if not r then
      return nil, err, code
   end
   local ok, reply = pcall(cjson.decode, r.body or "")
   if r.status ~= 200 or not ok or type(reply) ~= "table" or not reply.token then
      return nil, ("%s/v3/auth/authenticate as %s: HTTP %d %s"):format(url, user, r.status,
         (r.body or ""):sub(1, 200)), "EAUTH"
   end
   return reply.token
end
M.authenticate = authenticate

-- The PKI directory of a CA file path ("" for a PEM given inline).
local function pki_dir(ca)
   if type(ca) ~= "string" or ca:find("\n", 1, true) then
      return nil
   end
   return (ca:gsub("[^/]*$", ""))
end

-- The gateway credentials of tls's cluster with a fresh token, or nil, why.
local function gateway_auth(url, tls, timeout)
   local dir = pki_dir(tls.ca)
   local f = dir and io.open(dir .. "root.password", "r")
   local pw = f and f:read("l")
   if f then
      f:close()
   end
   local gw = dir and { ca = tls.ca, cert = dir .. "gateway.crt", key = dir .. "gateway.key" }
   if not pw or pw == "" or not io.open(gw.cert, "r") then
      return nil, ("%s: authentication is enabled on this cluster: etcdrun needs root's password in %s and a"
         .. " CommonName-less client certificate %s (tls-cluster.lua with etcd_auth=true makes both)"):format(url,
         (dir or "") .. "root.password", (dir or "") .. "gateway.crt"), "EAUTH"
   end
   local token, err, code = authenticate(url, gw, "root", pw, timeout)
   if not token then
      return nil, err, code
   end
   return { tls = gw, token = token }
end

--- A gateway call: POST url .. path with a JSON body; returns the decoded
-- reply or nil, err. On a cluster with authentication enabled it goes as
-- root (see gateway_auth above).
---@param tls {ca: string, cert?: string, key?: string} file paths or PEM
function M.call(url, path, body, tls, timeout)
   local a = authed[tls.ca]
   local r, err, code = post(url, path, body, a and a.tls or tls, timeout, a and a.token)
   local refused = r and (r.status == 400 and (r.body or ""):find(CN_REFUSED, 1, true)
      or r.status == 401 and (r.body or ""):find("invalid auth token", 1, true))
   if refused then
      local aerr, acode
      a, aerr, acode = gateway_auth(url, tls, timeout)
      if not a then
         return nil, aerr, acode
      end
      authed[tls.ca] = a
      r, err, code = post(url, path, body, a.tls, timeout, a.token)
   end
   if not r then
      return nil, err, code
   end
   if r.status ~= 200 then
      return nil, ("%s%s: HTTP %d %s"):format(url, path, r.status, (r.body or ""):sub(1, 200)), "EHTTP"
   end
   local ok, decoded = pcall(cjson.decode, r.body)
   if not ok then
      return nil, ("%s%s: not JSON: %s"):format(url, path, tostring(decoded)), "EPROTO"
   end
   return decoded
end

--- GET /health: true, or nil and why.
function M.health(url, tls, timeout)
   local r, err, code = http.request({
      url = url .. "/health", ca = tls.ca, cert = tls.cert, key = tls.key,
      timeout = timeout or 5, connect_timeout = 2,
   })
   if not r then
      return nil, err, code
   end
   local ok, body = pcall(cjson.decode, r.body or "")
   if r.status == 200 and ok and (body.health == "true" or body.health == true) then
      return true
   end
   return nil, ("%s/health: HTTP %d %s"):format(url, r.status, (r.body or ""):gsub("%s+$", "")), "EUNHEALTHY"
end

--- /v3/maintenance/status: {member_id, leader, version, db_size, raft_term}.
function M.status(url, tls)
   local s, err, code = M.call(url, "/v3/maintenance/status", {}, tls)
   if not s then
      return nil, err, code
   end
   return {
      member_id = s.header and s.header.member_id,
      leader = s.leader,
      version = s.version,
      db_size = tonumber(s.dbSize),
      db_size_in_use = tonumber(s.dbSizeInUse),
      revision = s.header and tonumber(s.header.revision),
      raft_term = tonumber(s.raftTerm),
      raft_index = tonumber(s.raftIndex),
      applied_index = tonumber(s.raftAppliedIndex),
      is_leader = s.header and s.leader ~= nil and s.header.member_id == s.leader,
   }
end

--- GET /version: { server = "3.5.16", cluster = "3.5.0" } (cluster: the
-- version the members agreed to run at; it moves up once all are upgraded).
function M.version(url, tls)
   local r, err, code = http.request({ url = url .. "/version", ca = tls.ca, cert = tls.cert, key = tls.key,
      timeout = 5, connect_timeout = 2 })
   if not r then
      return nil, err, code
   end
   local ok, body = pcall(cjson.decode, r.body or "")
   if r.status ~= 200 or not ok or type(body) ~= "table" then
      return nil, ("%s/version: HTTP %d"):format(url, r.status), "EHTTP"
   end
   return { server = body.etcdserver, cluster = body.etcdcluster }
end

--- Whether authentication is enabled: an authenticate call with no real
-- user says "authentication is not enabled" exactly when it is not. (Not
-- /v3/auth/status: in 3.5 that is a raft request, and a 3.5 member in a
-- cluster half-way through an upgrade hands it to 3.4 members, which panic
-- "not implemented" on it: etcd-io/etcd#12987's family.)
function M.auth_enabled(url, tls)
   local _, err, code = M.call(url, "/v3/auth/authenticate", { name = "etcdrun-probe", password = "" }, tls)
   if code ~= "EHTTP" then
      return nil, err, code
   end
   return not tostring(err):find("authentication is not enabled", 1, true)
end

--- The certificate a member serves at `url` (its client or its peer port),
-- as PEM, from a TLS handshake with a client certificate.
function M.served_cert(url, tls)
   local r, err, code = http.request({ url = url .. "/version", ca = tls.ca, cert = tls.cert, key = tls.key,
      timeout = 5, connect_timeout = 2, certinfo = true })
   if not r then
      return nil, err, code
   end
   if not r.peer_certs[1] then
      return nil, url .. ": no certificate in the handshake", "EPROTO"
   end
   return r.peer_certs[1]
end

--- The cluster's alarms: { {member_id = "…", alarm = "NOSPACE"|"CORRUPT"}, ... }
-- (empty when none is raised).
function M.alarms(url, tls)
   local r, err, code = M.call(url, "/v3/maintenance/alarm", { action = "GET" }, tls)
   if not r then
      return nil, err, code
   end
   local out = {}
   for _, a in ipairs(r.alarms or {}) do
      out[#out + 1] = { member_id = tostring(a.memberID), alarm = a.alarm or "NONE" }
   end
   return out
end

--- /v3/cluster/member/list: { {id, name, peer_urls, client_urls}, ... }
function M.members(url, tls)
   local r, err, code = M.call(url, "/v3/cluster/member/list", {}, tls)
   if not r then
      return nil, err, code
   end
   local out = {}
   for i, m in ipairs(r.members or {}) do
      out[i] = { id = m.ID, name = m.name or "", peer_urls = m.peerURLs or {}, client_urls = m.clientURLs or {},
         is_learner = m.isLearner == true }
   end
   table.sort(out, function(a, b)
      return a.name < b.name
   end)
   return out
end

--- Add a member (a learner unless learner == false): the new member's ID
-- (a string: the gateway writes uint64 as strings).
function M.member_add(url, tls, peer_url, learner)
   local r, err, code = M.call(url, "/v3/cluster/member/add", { peerURLs = { peer_url }, isLearner = learner ~= false },
      tls, 15)
   if not r then
      return nil, err, code
   end
   return r.member and r.member.ID
end

--- Promote a learner to a voter. etcd refuses while the learner is behind
-- ("can only promote a learner member which is in sync with leader"): the
-- caller retries.
function M.member_promote(url, tls, id)
   local r, err, code = M.call(url, "/v3/cluster/member/promote", { ID = id }, tls, 15)
   return r and true, err, code
end

--- Change a member's peer URLs (its address moved).
function M.member_update(url, tls, id, peer_urls)
   local r, err, code = M.call(url, "/v3/cluster/member/update", { ID = id, peerURLs = peer_urls }, tls, 15)
   return r and true, err, code
end

function M.member_remove(url, tls, id)
   local r, err, code = M.call(url, "/v3/cluster/member/remove", { ID = id }, tls, 15)
   return r and true, err, code
end

--- Hand leadership to member `id`; `url` must be the leader's.
function M.move_leader(url, tls, id)
   local r, err, code = M.call(url, "/v3/maintenance/transfer-leadership", { targetID = id }, tls, 15)
   return r and true, err, code
end

--- A lease of `ttl` seconds: its ID (a string), or nil, err, code.
function M.lease_grant(url, tls, ttl)
   local r, err, code = M.call(url, "/v3/lease/grant", { TTL = ttl }, tls)
   if not r then
      return nil, err, code
   end
   return r.ID
end

--- Revoke a lease: the keys attached to it are deleted.
function M.lease_revoke(url, tls, id)
   local r, err, code = M.call(url, "/v3/lease/revoke", { ID = id }, tls)
   return r and true, err, code
end

--- Renew a lease once: its new TTL (0 or nil: the lease is gone).
function M.lease_keepalive(url, tls, id)
   local r, err, code = M.call(url, "/v3/lease/keepalive", { ID = id }, tls)
   if not r then
      return nil, err, code
   end
   local res = r.result or r
   return tonumber(res.TTL) or 0
end

--- A key's value with its lease and creation revision, or false when the
-- key does not exist; nil, err, code when the cluster does not answer.
function M.get_kv(url, tls, key)
   local r, err, code = M.call(url, "/v3/kv/range", { key = b64(key) }, tls)
   if not r then
      return nil, err, code
   end
   local kv = r.kvs and r.kvs[1]
   if not kv then
      return false
   end
   return { value = unb64(kv.value or ""), lease = kv.lease, create_revision = tonumber(kv.create_revision) }
end

--- Put key = value (attached to `lease` when given) only if the key does not
-- exist, in one transaction: true, or false and the key as it is.
function M.create(url, tls, key, value, lease)
   local k = b64(key)
   local r, err, code = M.call(url, "/v3/kv/txn", {
      compare = { { key = k, target = "CREATE", result = "EQUAL", create_revision = "0" } },
      success = { { request_put = { key = k, value = b64(value), lease = lease } } },
      failure = { { request_range = { key = k } } },
   }, tls)
   if not r then
      return nil, err, code
   end
   if r.succeeded then
      return true
   end
   local rr = r.responses and r.responses[1] and r.responses[1].response_range
   local kv = rr and rr.kvs and rr.kvs[1]
   return false, kv and { value = unb64(kv.value or ""), lease = kv.lease } or nil
end

function M.put(url, tls, key, value)
   local r, err, code = M.call(url, "/v3/kv/put", { key = b64(key), value = b64(value) }, tls)
   return r and true, err, code
end

function M.get(url, tls, key)
   local r, err, code = M.call(url, "/v3/kv/range", { key = b64(key) }, tls)
   if not r then
      return nil, err, code
   end
   local kv = r.kvs and r.kvs[1]
   return kv and unb64(kv.value or "") or nil
end

--- Wait until every URL answers /health, up to `deadline` seconds; returns
-- true or nil and the last reason per URL.
function M.wait_healthy(urls, tls, deadline)
   local stop = runtime.monotonic() + deadline
   local last = {}
   while true do
      local all = true
      for _, u in ipairs(urls) do
         local ok, err = M.health(u, tls, 2)
         if not ok then
            all = false
            last[u] = err
         else
            last[u] = nil
         end
      end
      if all then
         return true
      end
      if runtime.monotonic() >= stop then
         local why = {}
         for _, u in ipairs(urls) do
            if last[u] then
               why[#why + 1] = last[u]
            end
         end
         return nil, table.concat(why, "; ")
      end
      sched.sleep(0.1) -- a member usually becomes healthy within a few hundred ms
   end
end

--- Wait until every URL's member has the raft log the leader had when this
-- was called (its raft index at least the leader's then): a member that was
-- just restarted has caught up. True, or nil and who lags.
function M.wait_caught_up(urls, tls, deadline)
   local stop = runtime.monotonic() + deadline
   local target
   while not target do
      for _, u in ipairs(urls) do
         local st = M.status(u, tls)
         if st and st.is_leader then
            target = st.raft_index
         end
      end
      if not target then
         if runtime.monotonic() >= stop then
            return nil, "no member leads"
         end
         sched.sleep(0.1)
      end
   end
   while true do
      local behind = {}
      for _, u in ipairs(urls) do
         local st = M.status(u, tls)
         if not st or (st.raft_index or 0) < target then
            behind[#behind + 1] = ("%s at raft index %s of %d"):format(u, tostring(st and st.raft_index), target)
         end
      end
      if #behind == 0 then
         return true
      end
      if runtime.monotonic() >= stop then
         return nil, table.concat(behind, "; ")
      end
      sched.sleep(0.05)
   end
end

return M
