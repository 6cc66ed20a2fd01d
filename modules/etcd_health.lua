-- etcd_health: wait, with a deadline, until every listed member answers
-- /health over mutual TLS from the controller. On a deadline missed, the
-- failure carries the tail of this host's etcd journal and what its usual
-- messages mean. Read-only; under --check one probe, no waiting (a cluster
-- that an earlier task would start is not expected to answer yet).
local clock = require("etcdrun.clock")
local etcd = require("etcdrun.etcd")

local M = {
   doc = "Wait until every etcd member is healthy (mutual TLS), with a deadline and journal hints on failure.",
   args = {
      endpoints = { type = "list", elements = "string", required = true, doc = "client URLs of the members" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      timeout = { type = "number", default = 60, doc = "seconds to wait at most" },
      caught_up = { type = "boolean", default = false,
         doc = "also wait until every member's raft index reaches the leader's (a restarted member caught up)" },
      journal = { type = "boolean", default = true, doc = "on failure, show this host's `journalctl -u etcd` tail" },
   },
   examples = [[task "cluster healthy" { etcd_health = { endpoints = { "https://10.0.0.1:2379" },
   ca = "pki/ca.crt", cert = "pki/healthcheck.crt", key = "pki/healthcheck.key" } }]],
}

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

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local ok, why
   if ctx.check then
      ok = true
      for _, u in ipairs(args.endpoints) do
         local h, err = etcd.health(u, tls, 2)
         if not h then
            ok, why = false, ("%s: %s"):format(u, tostring(err))
            break
         end
      end
   else
      local t0 = clock.monotonic()
      ok, why = etcd.wait_healthy(args.endpoints, tls, args.timeout)
      if ok and args.caught_up then
         ok, why = etcd.wait_caught_up(args.endpoints, tls, math.max(1, args.timeout - (clock.monotonic() - t0)))
         why = why and ("not caught up with the leader: " .. why)
      end
   end
   local state = { healthy = ok and true or false, why = why }
   if not ok and not ctx.check and args.journal and ctx.host.exec then
      local r = ctx.host:exec("journalctl -u etcd -n 15 --no-pager -o cat 2>&1; systemctl is-active etcd")
      state.journal = r and r.stdout or "(no journal)"
   end
   return state
end

function M.plan(state, args, opts)
   local n = #args.endpoints
   if state.healthy then
      return { changed = false, msg = ("%d members healthy%s"):format(n, args.caught_up and ", caught up" or "") }
   end
   if opts.check then
      return { skipped = true, msg = ("not healthy now (%s): a run would wait up to %g s"):format(tostring(state.why),
         args.timeout) }
   end
   local lines = { ("the cluster did not become healthy within %g s: %s"):format(args.timeout, tostring(state.why)) }
   if state.journal then
      lines[#lines + 1] = ("--- %s: journalctl -u etcd (last lines)\n%s"):format(opts.host, state.journal)
      for _, hint in ipairs(HINTS) do
         if state.journal:find(hint[1], 1, true) then
            lines[#lines + 1] = ("    => %s: %s"):format(opts.host, hint[2])
         end
      end
   end
   return { failed = true, msg = table.concat(lines, "\n") }
end

return M
