--- examples/member.lua: one membership change on a cluster that
-- playbooks/tls-cluster.lua made, through the cluster's API from the
-- controller (admin certificate): add a node as a learner, promote it once it
-- has caught up, or remove a member (leadership moved away first).
--
--   ./etcdrun -i .lab/hosts examples/member.lua -e member=etcd4 -e state=learner|voter|absent
--       [-e peer_url=https://ADDRESS:2380] [-e pki=DIR] [-C]
--
-- pki (default: pki next to the inventory, as tls-cluster.lua's) holds ca.crt,
-- admin.crt and admin.key; the members named in the inventory group etcd are
-- asked, the first that answers takes the change.
local function pki(v, file)
   local dir = v("pki", nil) or ((v("inventory_dir", nil) or ".") .. "/pki")
   return dir .. "/" .. file
end

return {
   play "membership" {
      hosts = "etcd",
      tasks = {
         controller "member" {
            etcd_member = {
               name = function(v) return v.member end,
               state = function(v) return v("state", "voter") end,
               peer_url = function(v) return v("peer_url", nil) end,
               endpoints = function(v)
                  local urls = {}
                  for i, h in ipairs(v.play_hosts) do
                     local addr = v.hostvars[h]("ansible_host", h)
                     urls[i] = ("https://%s:%s"):format(addr, v("etcd_client_port", 2379))
                  end
                  return urls
               end,
               ca = function(v) return pki(v, "ca.crt") end,
               cert = function(v) return pki(v, "admin.crt") end,
               key = function(v) return pki(v, "admin.key") end,
            },
         },
      },
   },
}
