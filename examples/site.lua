--- examples/site.lua: every built-in module once (and a site module), all
-- idempotent: a second run reports 0 changed, and --check on fresh nodes
-- changes nothing on them.
--
--   ./etcdrun -i .lab/hosts examples/site.lua -e release_url=$(cat .lab/release_url)/v3.4.23
--
-- Controller-side files (a small CA, the release cache) go to
-- /tmp/etcdrun-example; node-side ones under /opt/example.
local CTL = "/tmp/etcdrun-example"
local APP = "/opt/example"
local TARBALL = "etcd-v3.4.23-linux-amd64.tar.gz"

local function release(v)
   return v("release_url", "http://198.18.0.1:8080/etcd-io/etcd/releases/download/v3.4.23")
end

return {
   play "every built-in module" {
      hosts = "etcd",
      vars = { app_name = "example", app_port = 8080 },
      tasks = {
         task "the node runs systemd" {
            assert = { that = function(v) return v.facts.systemd end, fail_msg = "systemd is not PID 1" },
         },
         task "group" { group = { name = "example", system = true } },
         task "user" { user = { name = "example", group = "example", system = true } },
         task "application directory" {
            file = { path = APP, state = "directory", mode = "0755", owner = "example", group = "example" },
         },
         task "static config" { copy = { dest = APP .. "/static.conf", content = "level = info\n", mode = "0644" } },
         task "templated config" {
            template = { src = "templates/app.conf.j2", dest = APP .. "/app.conf", mode = "0640", group = "example" },
         },
         task "PATH in /etc/profile" {
            lineinfile = { path = "/etc/profile", line = 'export PATH="$PATH:/opt/example/bin"' },
         },
         task "login banner (a site module)" { banner = { text = "Managed by etcdrun" } },

         -- artifacts: fetched once on the controller, pushed where the digest differs
         controller "a work directory on the controller" { file = { path = CTL, state = "directory", mode = "0700" } },
         task "release tarball on the node" {
            download = {
               url = function(v) return release(v) .. "/" .. TARBALL end,
               sums_url = function(v) return release(v) .. "/SHA256SUMS" end,
               dest = APP .. "/" .. TARBALL,
            },
         },
         controller "release tarball on the controller" {
            download = {
               url = function(v) return release(v) .. "/" .. TARBALL end,
               sums_url = function(v) return release(v) .. "/SHA256SUMS" end,
               dest = CTL .. "/" .. TARBALL,
            },
         },
         task "etcdctl from the tarball" {
            unarchive = {
               src = CTL .. "/" .. TARBALL, dest = APP .. "/bin", strip_components = 1, include = { "etcdctl" },
            },
         },

         -- a unit, enabled and running
         task "a service" {
            systemd = {
               name = "example-sleep",
               unit_file = "[Unit]\nDescription=etcdrun example\n\n[Service]\nExecStart=/bin/sleep infinity\n\n"
                  .. "[Install]\nWantedBy=multi-user.target\n",
               enabled = true,
               state = "started",
            },
         },
         task "sshd answers" { wait_for = { port = 22, timeout = 10 } },

         -- a small PKI: the CA stays on the controller
         controller "CA key" { x509_key = { path = CTL .. "/ca.key" } },
         controller "CA certificate" {
            x509_cert = { path = CTL .. "/ca.crt", provider = "selfsigned", privatekey_path = CTL .. "/ca.key",
               subject = { CN = "example CA" }, days = 365 },
         },
         task "node key" { x509_key = { path = APP .. "/node.key", owner = "example" } },
         task "node CSR" {
            x509_csr = {
               path = APP .. "/node.csr", privatekey_path = APP .. "/node.key",
               subject = { CN = "{{ inventory_hostname }}" },
               san = function(v) return { dns = { v.inventory_hostname }, ip = { v.facts.default_ipv4 } } end,
            },
         },
         task "node certificate" {
            x509_cert = {
               path = APP .. "/node.crt", provider = "ca", csr_path = APP .. "/node.csr",
               privatekey_path = APP .. "/node.key",
               ca_cert_path = CTL .. "/ca.crt", ca_key_path = CTL .. "/ca.key", ca_on_controller = true,
               days = 90, ext_key_usage = { "serverAuth" },
            },
         },

         -- commands: idempotent through creates, or reported unchanged
         task "who runs the tasks" {
            command = { cmd = "id -un" }, register = "whoami", changed_when = false, check_mode = false,
         },
         task "record the hostname once" {
            shell = { cmd = "hostname > " .. APP .. "/hostname", creates = APP .. "/hostname" },
         },
         task "show" { debug = { msg = "{{ inventory_hostname }} runs tasks as {{ whoami.stdout }}" } },
      },
   },
}
