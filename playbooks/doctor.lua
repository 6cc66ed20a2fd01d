--- etcdrun playbooks/doctor.lua: what is wrong with the cluster of the
-- inventory group `etcd`, and the command that fixes each thing. Read-only
-- (also under --check); the exit status is non-zero when something needs
-- attention; --json gives the findings (the doctor task's result).
--
-- It looks at: every member's health; the leader (present, the same for
-- all); the raft index spread; learners; alarms (NOSPACE, CORRUPT); the DB
-- size against the quota and the share in use; hashkv agreement at one
-- revision; versions; the certificates each member serves on its client and
-- peer ports (expiry within etcd_renew_days, its address in the SANs); each
-- node's clock against the controller's; members still configured with
-- initial-cluster-state: new; members not in the inventory and hosts that
-- are not members; the unit enabled at boot.
--
--   etcdrun -i hosts playbooks/doctor.lua [--json]
local L = include "lib/tls_cluster.lua"
local T = include "lib/tls_tasks.lua" (L)

local facts = T.preflight() -- its first task: every node's facts

-- the node the doctor runs from (for etcdctl hashkv): the first whose etcd
-- runs, else the first
local function source(v)
   for _, name in ipairs(v.play_hosts) do
      if v.hostvars[name].preflight.running then
         return name
      end
   end
   return v.play_hosts[1]
end

local function nodes(v)
   local t = {}
   for _, name in ipairs(v.play_hosts) do
      t[name] = v.hostvars[name].preflight
   end
   return t
end

-- the members as the inventory has them, with their addresses
local function members(v)
   local out = {}
   for i, m in ipairs(L.members(v)) do
      out[i] = { name = m.name, client_url = m.client_url, peer_url = m.peer_url, address = m.address }
   end
   return out
end

-- the commands the findings name, as this run was given its inventory
local function fixes(v)
   local i, dir = v.inventory_file or "hosts", v.playbook_dir
   return {
      install = ("etcdrun -i %s %s/tls-cluster.lua"):format(i, dir),
      defrag = ("etcdrun -i %s %s/defrag.lua (compacts, defragments, disarms)"):format(i, dir),
      restore = ("etcdrun -i %s %s/restore.lua -e snapshot=FILE (from a good snapshot)"):format(i, dir),
   }
end

return {
   play "etcd doctor" {
      hosts = "etcd",
      defaults = L.DEFAULTS,
      tasks = {
         facts,
         barrier "every node's facts",
         task "doctor" {
            etcd_doctor = L.admin({ members = members, nodes = nodes, cert_days = T.num("etcd_renew_days"),
               fix = fixes }),
            when = function(v)
               return v.inventory_hostname == source(v)
            end,
         },
      },
   },
}
