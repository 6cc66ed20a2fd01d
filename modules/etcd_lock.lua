-- etcd_lock: one operator at a time. A run that may disrupt the cluster
-- takes a lock held in etcd itself (a key on a lease: it expires `ttl`
-- seconds after the run that holds it died) and a second run refuses to
-- start, naming the holder. A lock left by a killed etcdrun of this machine
-- is taken over at once (etcdrun.lock). state = "present" takes it (or renews
-- it, when this run holds it already), "absent" gives it back.
local lock = require("etcdrun.lock")

local M = {
   doc = "Take (or give back) the cluster's operator lock, a key on a lease in etcd; refuse while another run"
      .. " holds it.",
   args = {
      state = { type = "string", choices = { "present", "absent" }, default = "present", doc = "take or give back" },
      endpoints = { type = "list", elements = "string", required = true, doc = "client URLs (the first answering)" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "a client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      ttl = { type = "integer", default = 900, doc = "seconds the lock outlives a run that died" },
      name = { type = "string", default = lock.KEY, doc = "the key" },
      purpose = { type = "string", doc = "what the run does, shown to a run that is refused" },
   },
   examples = [[controller "lock" { etcd_lock = { endpoints = { "https://10.0.0.1:2379" }, ca = "pki/ca.crt",
   cert = "pki/admin.crt", key = "pki/admin.key", purpose = "tls-cluster.lua" } }]],
}

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local why = {}
   for _, url in ipairs(args.endpoints) do
      local cur, err = lock.read(url, tls, args.name)
      if cur ~= nil then
         local h = cur and cur.holder
         return { via = url, held = cur and true or false, holder = h and lock.describe(h),
            mine = h and lock.is_me(h) or false, stale = h and lock.is_stale(h) or false }
      end
      why[#why + 1] = tostring(err)
   end
   return nil, "etcd_lock: no member answers: " .. table.concat(why, "; "), "EUNAVAILABLE"
end

function M.plan(state, args)
   if args.state == "absent" then
      if state.mine then
         return { changed = true, via = state.via, msg = "would give the cluster's lock back" }
      end
      return { changed = false, msg = "this run does not hold the cluster's lock" }
   end
   if state.held and not state.mine and not state.stale then
      return { failed = true, msg = ("another run holds the cluster's lock (%s): %s. Wait for it to end; a run"
         .. " that died gives the lock up %d s after it took it"):format(args.name, state.holder, args.ttl) }
   end
   return { changed = true, via = state.via, msg = state.mine and "would renew the cluster's lock"
      or state.stale and ("would take over the lock of a run that is gone (%s)"):format(state.holder)
      or "would take the cluster's lock" }
end

function M.apply(ctx, args, plan)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   if args.state == "absent" then
      local ok, err, code = lock.release(plan.via, tls, args.name)
      if not ok then
         return nil, "etcd_lock: " .. tostring(err), code
      end
      return { msg = "gave the cluster's lock back" }
   end
   local renewed = lock.renew(plan.via, tls, args.name)
   if renewed and renewed > 0 then
      return { msg = ("renewed the cluster's lock (%d s)"):format(renewed) }
   end
   local ok, err, code = lock.acquire(plan.via, tls, lock.me(args.purpose), args.ttl, args.name)
   if not ok then
      return nil, "etcd_lock: " .. tostring(err), code
   end
   return { msg = ("took the cluster's lock (%s, %d s)"):format(args.name, args.ttl) }
end

return M
