-- etcd_preflight: on the controller, every member's problems at once, before
-- anything changes: what etcd_facts found on each member, a member that is
-- unreachable or failed, two members with one address (a member whose
-- address changed is etcd_membership's: it moves), and the CA guard: where etcd runs or has data, the CA it trusts
-- must be the controller's, or issuing certificates from another CA would cut
-- the members off from each other. Replacing a running cluster's CA is a CA
-- rotation, never a side effect of a run from another directory.
local fs = require("etcdrun.fs")
local x509 = require("etcdrun.x509")

local M = {
   examples = [[controller "preflight" { etcd_preflight = { pki_dir = "{{ inventory_dir }}/pki",
   order = { "etcd1", "etcd2" },
   members = function(v) return { etcd1 = v.hostvars.etcd1.facts_etcd, etcd2 = v.hostvars.etcd2.facts_etcd } end } }]],
   doc = "Stop before any change when a member has a problem, is unreachable, or trusts another CA than the PKI's.",
   args = {
      members = { type = "table", required = true,
         doc = "member name -> its etcd_facts result (a failed or missing one is a problem), in play order" },
      order = { type = "list", elements = "string", required = true, doc = "the member names, in play order" },
      group_size = { type = "integer", doc = "the size of the inventory group: fewer members means a --limit" },
      pki_dir = { type = "path", required = true, absolute = true, doc = "the controller's PKI directory" },
      member_ca = { type = "path", default = "/etc/etcd/ssl/ca.crt", doc = "where members keep the CA (for messages)" },
      rotation = { type = "boolean", default = false,
         doc = "the caller is the CA rotation: members may trust the next CA (ca-next.crt) too" },
   },
}

-- The SHA-256 fingerprints of every certificate in a PEM file (a trust
-- bundle holds two during a CA rotation), first one first.
local function fingerprints(path)
   local pem, out = fs.try.read(path), {}
   for block in (pem or ""):gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-%-%-%-%-%-END CERTIFICATE%-%-%-%-%-") do
      local info = x509.try.info(block)
      out[#out + 1] = info and info.fingerprint_sha256 or nil
   end
   return out
end

function M.gather(_, args)
   local fps = fingerprints(args.pki_dir .. "/ca.crt")
   local state = { ca = fps[1], cas = {}, rotating = fs.try.stat(args.pki_dir .. "/ca-next.crt") ~= nil }
   if args.rotation then
      for _, fp in ipairs(fingerprints(args.pki_dir .. "/ca-next.crt")) do
         fps[#fps + 1] = fp
      end
   end
   for _, fp in ipairs(fps) do
      state.cas[fp] = true
   end
   return state
end

local function ca_lines(lines, state, args, facts)
   local by_ca, order = {}, {}
   for _, name in ipairs(args.order) do
      local p = facts[name]
      if p and p.ca_fingerprint and (p.running or p.has_data) and not (state.cas or {})[p.ca_fingerprint] then
         if not by_ca[p.ca_fingerprint] then
            by_ca[p.ca_fingerprint] = {}
            order[#order + 1] = p.ca_fingerprint
         end
         table.insert(by_ca[p.ca_fingerprint], name)
      end
   end
   for _, fp in ipairs(order) do
      lines[#lines + 1] = ("  %s: etcd runs (or has data) trusting the CA in %s, SHA-256 %s; the PKI directory %s"
         .. " %s. Issuing certificates from another CA would cut the members off from each other. Point"
         .. " etcd_pki_dir at the directory that holds this cluster's ca.crt and ca.key (-e etcd_pki_dir=/path;"
         .. " a relative path is relative to the inventory file's directory). Replacing a running cluster's CA"
         .. " is a CA rotation, never a side effect of this playbook."):format(table.concat(by_ca[fp], ", "),
         args.member_ca, fp, args.pki_dir, state.ca and ("holds another CA, SHA-256 " .. state.ca) or "has no ca.crt")
   end
end

function M.plan(state, args)
   local lines = {}
   if args.group_size and #args.order ~= args.group_size then
      lines[#lines + 1] = ("  the play covers %d of the %d hosts of the group: the playbook works on the whole"
         .. " cluster (a --limit would change its membership)"):format(#args.order, args.group_size)
   end
   local facts = {}
   for _, name in ipairs(args.order) do
      local p = args.members[name]
      -- a host that was unreachable or failed registered its failure instead
      if type(p) == "table" and type(p.problems) == "table" and not p.failed then
         facts[name] = p
      else
         local why = type(p) == "table" and p.msg and tostring(p.msg) or "no preflight result"
         lines[#lines + 1] = ("  %s: %s: every member must be up and reachable before anything changes"):format(
            name, (type(p) == "table" and p.unreachable) and ("unreachable (" .. why .. ")") or why)
      end
   end
   if state.rotating and not args.rotation then
      lines[#lines + 1] = ("  a CA rotation is in progress (%s/ca-next.crt): finish it with playbooks/rotate-ca.lua"
         .. " (it resumes where it stopped); this playbook changes nothing meanwhile"):format(args.pki_dir)
   end
   ca_lines(lines, state, args, facts)
   local seen = {}
   for _, name in ipairs(args.order) do
      local p = facts[name]
      for _, problem in ipairs(p and p.problems or {}) do
         lines[#lines + 1] = ("  %s: %s"):format(name, problem)
      end
      if p and p.address ~= "" then
         if seen[p.address] then
            lines[#lines + 1] = ("  %s: address %s is also %s's"):format(name, p.address, seen[p.address])
         end
         seen[p.address] = name
      end
   end
   if #lines > 0 then
      return { failed = true, msg = "preflight found problems; nothing was changed:\n" .. table.concat(lines, "\n") }
   end
   return { changed = false, msg = ("%d members ready; PKI %s"):format(#args.order, args.pki_dir),
      result = { report = "PKI (etcd_pki_dir): " .. args.pki_dir } }
end

return M
