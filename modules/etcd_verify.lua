-- etcd_verify: on the controller, that the cluster is what the playbook
-- planned: every member healthy over mutual TLS, the member list equal to
-- the planned names and peer URLs, a canary written on one member and read
-- on another, and a client without a certificate refused. Nothing on the
-- cluster's state changes but the canary key; under --check the canary is not
-- written and a cluster that does not answer yet is not a failure.
local etcd = require("etcdrun.etcd")
local http = require("etcdrun.http")

local M = {
   examples = [[controller "verify" { etcd_verify = { ca = "pki/ca.crt", cert = "pki/admin.crt",
   key = "pki/admin.key", members = { { name = "etcd1", client_url = "https://10.0.0.1:2379",
   peer_url = "https://10.0.0.1:2380" } } } }]],
   doc = "Verify an etcd cluster: health, membership as planned, a canary round trip, client-cert auth enforced.",
   args = {
      members = { type = "list", required = true,
         doc = "the planned members: { name =, client_url =, peer_url = }, in order" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      canary = { type = "string", default = "etcdrun/canary", doc = "the key written and read back" },
   },
}

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local state = { health = {} }
   for i, m in ipairs(args.members) do
      local ok, err = etcd.health(m.client_url, tls)
      state.health[i] = ok and true or tostring(err)
   end
   local first = args.members[1].client_url
   state.list, state.list_err = etcd.members(first, tls)
   if not ctx.check and state.list then
      state.canary_value = ("written %d by etcdrun"):format(os.time())
      local ok, err = etcd.put(first, tls, args.canary, state.canary_value)
      state.put_err = not ok and tostring(err) or nil
      local reader = args.members[#args.members > 1 and 2 or 1].client_url
      state.read_back, state.read_err = etcd.get(reader, tls, args.canary)
   end
   local anon = http.try.request({ url = first .. "/health", ca = tls.ca, timeout = 5, connect_timeout = 2 })
   state.anonymous_status = anon and anon.status or nil
   return state
end

function M.plan(state, args, opts)
   local function fail(msg)
      if opts.check then
         return { skipped = true, msg = "not verifiable now (" .. msg .. "): a run would verify after starting" }
      end
      return { failed = true, msg = msg }
   end
   for i, h in ipairs(state.health) do
      if h ~= true then
         return fail(("%s unhealthy: %s"):format(args.members[i].name, h))
      end
   end
   if not state.list then
      return fail("member list: " .. tostring(state.list_err))
   end
   local want = {}
   for _, m in ipairs(args.members) do
      want[m.name] = m.peer_url
   end
   if #state.list ~= #args.members then
      return fail(("member list has %d members, the inventory %d"):format(#state.list, #args.members))
   end
   for _, m in ipairs(state.list) do
      if want[m.name] == nil then
         return fail(("member '%s' is in the cluster but not in the inventory"):format(m.name))
      end
      if m.peer_urls[1] ~= want[m.name] then
         return fail(("member %s advertises %s, planned %s"):format(m.name, tostring(m.peer_urls[1]), want[m.name]))
      end
   end
   local reader = args.members[#args.members > 1 and 2 or 1]
   if not opts.check then
      if state.put_err then
         return fail("canary put failed: " .. state.put_err)
      end
      if state.read_back ~= state.canary_value then
         return fail(("canary written on %s read back as %s from %s %s"):format(args.members[1].name,
            tostring(state.read_back), reader.name, state.read_err or ""))
      end
   end
   if state.anonymous_status == 200 then
      return fail("a client without a certificate was accepted: client-cert-auth is not in force")
   end
   return { changed = false, msg = ("%d members healthy and as planned; %sa client without a certificate is refused")
      :format(#args.members, opts.check and "" or ("canary written on %s, read on %s; "):format(args.members[1].name,
         reader.name)) }
end

return M
