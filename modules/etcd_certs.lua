-- etcd_certs: every certificate in use, checked where it is used, read-only.
-- For each member a TLS handshake on its client and its peer port shows the
-- certificate etcd actually serves: it must be the one the controller issued
-- last (etcd reads its files at every handshake, so a renewed certificate is
-- in use without a restart; a member that serves an older one is named),
-- chain to the CA, name the member's address and not expire within the
-- renew window. The controller's client certificates and the CA are read
-- too. The report gives the earliest expiry of each kind.
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.fs")
local x509 = require("etcdrun.x509")

local M = {
   examples = [[controller "certificates in use" { etcd_certs = { pki_dir = "{{ inventory_dir }}/pki",
   ca = "pki/ca.crt",
   cert = "pki/admin.crt", key = "pki/admin.key", renew_days = 30,
   members = { { name = "etcd1", client_url = "https://10.0.0.1:2379", peer_url = "https://10.0.0.1:2380",
                 address = "10.0.0.1" } } } }]],
   doc = "Check by handshake the certificates each etcd member serves (issuer, serial, SANs, expiry); read-only.",
   args = {
      members = { type = "list", required = true,
         doc = "{ name, address, client_url, peer_url } per member (tls-cluster's L.members)" },
      pki_dir = { type = "path", required = true, absolute = true,
         doc = "the controller's PKI: ca.crt, <name>-server.crt, <name>-peer.crt, the client certificates" },
      clients = { type = "list", elements = "string", default = { "admin", "healthcheck" },
         doc = "client certificates in the PKI directory (<name>.crt)" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "a client certificate for the handshakes (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      trust = { type = "path", doc = "verify the served certificates against this CA file instead of <pki_dir>/ca.crt"
         .. " (a CA rotation proves the new CA alone)" },
      renew_days = { type = "number", default = 30, doc = "a certificate expiring within this many days is due" },
   },
}

local function read_info(path)
   local pem = fs.try.read(path)
   local info = pem and x509.try.info(pem)
   return info and { pem = pem, serial = info.serial, not_after = info.not_after }
end

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local state = { now = os.time(), ca = read_info(args.trust and ctx.path(args.trust) or (args.pki_dir .. "/ca.crt")),
      members = {}, clients = {} }
   for _, name in ipairs(args.clients) do
      state.clients[name] = read_info(("%s/%s.crt"):format(args.pki_dir, name)) or false
   end
   for i, m in ipairs(args.members) do
      local entry = { name = m.name, address = m.address }
      for _, kind in ipairs({ "server", "peer" }) do
         local want = read_info(("%s/%s-%s.crt"):format(args.pki_dir, m.name, kind))
         local pem, err = etcd.served_cert(kind == "server" and m.client_url or m.peer_url, tls)
         local got = pem and x509.try.info(pem)
         local chain, why
         if pem and state.ca then
            chain, why = x509.try.verify({ cert = pem, ca = state.ca.pem, ip = m.address })
         end
         entry[kind] = { want = want and want.serial, serial = got and got.serial, not_after = got and got.not_after,
            err = not pem and tostring(err) or nil, chain = chain and true or false, why = why and tostring(why) }
      end
      state.members[i] = entry
   end
   return state
end

local function day(t)
   return os.date("!%Y-%m-%d", t)
end

function M.plan(state, args, opts)
   if opts.check and not state.ca then
      return { skipped = true, msg = "would check the certificates each member serves against a CA an earlier task"
         .. " would make" }
   end
   if opts.check then
      -- under --check the members an earlier task would start or change are
      -- not what a run would leave: report, never fail
      for _, m in ipairs(state.members) do
         if m.server.err or m.peer.err then
            return { skipped = true, msg = ("would check the certificates each member serves (%s does not answer"
               .. " now)"):format(m.name) }
         end
      end
   end
   local problems, earliest = {}, {}
   local due = state.now + args.renew_days * 86400
   local function note(kind, who, t)
      if t and (not earliest[kind] or t < earliest[kind].t) then
         earliest[kind] = { t = t, who = who }
      end
      if t and t < due then
         problems[#problems + 1] = ("%s's %s certificate expires %s, within etcd_renew_days (%d)"):format(who, kind,
            day(t), args.renew_days)
      end
   end
   if not state.ca then
      return { failed = true, msg = ("no CA certificate in %s"):format(args.pki_dir) }
   end
   note("CA", "the cluster", state.ca.not_after)
   for _, m in ipairs(state.members) do
      for _, kind in ipairs({ "server", "peer" }) do
         local c, port = m[kind], kind == "server" and "client" or "peer"
         if c.err then
            problems[#problems + 1] = ("%s: no handshake on its %s port: %s"):format(m.name, port, c.err)
         else
            if c.serial ~= c.want then
               problems[#problems + 1] = ("%s serves the %s certificate with serial %s on its %s port, not the one"
                  .. " issued last (%s)"):format(m.name, kind, tostring(c.serial), port, tostring(c.want))
            end
            if not c.chain then
               problems[#problems + 1] = ("%s's %s certificate does not verify against the CA for %s: %s"):format(
                  m.name, kind, tostring(m.address), tostring(c.why))
            end
            note(kind, m.name, c.not_after)
         end
      end
   end
   local names = {}
   for name in pairs(state.clients) do
      names[#names + 1] = name
   end
   table.sort(names)
   for _, name in ipairs(names) do
      local c = state.clients[name]
      if c then
         note("client", name, c.not_after)
      end
   end
   local parts = {}
   for _, kind in ipairs({ "CA", "server", "peer", "client" }) do
      local e = earliest[kind]
      if e then
         parts[#parts + 1] = ("%s %s (%s)"):format(kind, day(e.t), e.who)
      end
   end
   local summary = "certificates in use, earliest expiry: " .. table.concat(parts, ", ")
   if #problems > 0 then
      return { failed = true, msg = summary .. "\n  " .. table.concat(problems, "\n  ") }
   end
   return { changed = false, msg = summary, result = { report = summary } }
end

return M
