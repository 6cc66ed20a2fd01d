--- etcdrun playbooks/reset.lua: stop etcd on every member and WIPE its data
-- directory, so that tls-cluster.lua bootstraps a new cluster. Binaries,
-- configuration, certificates and the PKI stay. This is the only playbook
-- that deletes data, and it asks first (or takes -e confirm=yes).
--
--   etcdrun -i hosts playbooks/reset.lua [-e confirm=yes]
local term = require("etcdrun.term")

local function confirm(_, v)
   if v("confirm", nil) == "yes" then
      return { changed = false, msg = "confirmed with -e confirm=yes" }
   end
   if not term.isatty(0) then
      return nil, "refusing to wipe etcd data without confirmation: run with -e confirm=yes"
   end
   local answer = term.ask(("This stops etcd and DELETES the data of %d members (%s).\nType yes to go on: ")
      :format(#v.play_hosts, table.concat(v.play_hosts, ", ")))
   if answer ~= "yes" then
      return nil, "not confirmed: nothing was changed"
   end
   return { changed = false, msg = "confirmed" }
end

return {
   play "reset etcd (wipes data)" {
      hosts = "etcd",
      any_errors_fatal = true,
      tasks = {
         controller "confirm" { run = confirm },
         task "stop etcd" {
            run = function(ctx)
               if ctx.check then
                  return { changed = true, msg = "would stop etcd" }
               end
               local r, err = ctx.host:exec(
                  "if systemctl is-active -q etcd; then systemctl stop etcd && echo stopped; fi")
               if not r then
                  return nil, err
               end
               local stopped = r.stdout:find("stopped", 1, true) ~= nil
               return { changed = stopped, msg = stopped and "stopped" or "not running" }
            end,
         },
         task "wipe the data directory" {
            file = {
               path = function(v)
                  return ("/var/lib/etcd/%s.etcd"):format(v.inventory_hostname)
               end,
               state = "absent",
            },
         },
      },
   },
}
