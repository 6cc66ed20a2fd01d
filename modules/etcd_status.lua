-- etcd_status: on the controller, the table an operator wants to see after a
-- run: each member's client URL, whether it leads, its version, its database
-- size, its health and when its server certificate expires. Read-only.
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.fs")
local x509 = require("etcdrun.x509")

local M = {
   examples = [[controller "members" { etcd_status = { ca = "pki/ca.crt", cert = "pki/admin.crt",
   key = "pki/admin.key", members = { { name = "etcd1", client_url = "https://10.0.0.1:2379" } } } }]],
   doc = "Show the members of an etcd cluster: leader, version, DB size, health, certificate expiry.",
   args = {
      members = { type = "list", required = true,
         doc = "{ name =, client_url =, cert_file = (its server certificate, optional) }, in order" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      note = { type = "string", doc = "lines for the operator, shown under the table" },
   },
}

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local rows = {}
   for i, m in ipairs(args.members) do
      local s = etcd.status(m.client_url, tls)
      local pem = m.cert_file and fs.try.read(ctx.path(m.cert_file))
      local info = pem and x509.try.info(pem)
      rows[i] = { status = s or false, healthy = etcd.health(m.client_url, tls) and true or false,
         not_after = info and info.not_after or false }
   end
   return { rows = rows }
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

function M.plan(state, args)
   local rows = { { "member", "client URL", "leader", "version", "DB size", "health", "cert expires" } }
   local healthy = 0
   for i, m in ipairs(args.members) do
      local r = state.rows[i]
      local s = r.status or nil
      healthy = healthy + (r.healthy and 1 or 0)
      rows[#rows + 1] = {
         m.name, m.client_url, s and (s.is_leader and "yes" or "no") or "?", s and s.version or "?",
         human_bytes(s and s.db_size), r.healthy and "healthy" or "UNHEALTHY",
         r.not_after and os.date("!%Y-%m-%d", r.not_after) or "?",
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
   return { changed = false, msg = ("%d members, %d healthy"):format(#args.members, healthy),
      result = { report = table.concat(lines, "\n") .. (args.note and ("\n\n" .. args.note) or "") } }
end

return M
