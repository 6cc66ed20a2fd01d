-- The lab (spec/lab/lab.sh) proves what the integration tests rely on: real
-- nodes with systemd as PID 1, sshd with strict host keys, the release
-- served like upstream's, fault helpers, and a `down` that leaves no trace.
-- Needs root and systemd-nspawn; elsewhere every case is pending with the
-- reason.
if not package.path:find("./spec/?.lua", 1, true) then
   package.path = "./spec/?.lua;" .. package.path
end
local lab = require("support.lab")

local NODES = 3

local dir, why -- lab state directory, or why there is none

local function need_lab()
   if not dir then
      pending(why)
   end
end

local function ssh_ok(node, cmd, opts)
   local out, code = lab.ssh(dir, node, cmd, opts)
   assert(code == 0, ("ssh %s %q exited %d:\n%s"):format(node, cmd, code, out))
   return out
end

describe("the lab", function()
   setup(function()
      dir, why = lab.ensure(NODES)
   end)

   it("writes an inventory in the seed's shape", function()
      need_lab()
      local hosts = assert(lab.read(dir .. "/hosts"))
      local group = hosts:match("%[etcd%]\n(.-)\n\n")
      assert.is_not_nil(group, hosts)
      local want = {}
      -- the lab may be larger than this spec needs (another spec asked for more)
      for i = 1, lab.status().nodes do
         want[#want + 1] = ("etcd%d ansible_host=198.18.0.%d ansible_user=root"):format(i, 10 + i)
      end
      assert.are.equal(table.concat(want, "\n"), group)
      assert.matches("ansible_ssh_private_key_file=/", hosts)
   end)

   it("boots real systemd to 'running' on every node", function()
      need_lab()
      for i = 1, NODES do
         local node = "etcd" .. i
         assert.are.equal("running\n", ssh_ok(node, "systemctl is-system-running --wait"))
         assert.are.equal(node .. "\n", ssh_ok(node, "hostname"))
      end
   end)

   it("gives each node its own address and no default route", function()
      need_lab()
      local out = ssh_ok("etcd2", "ip -4 -o addr show dev eth0; ip -4 route show default")
      assert.matches("inet 198%.18%.0%.12/24", out)
      assert.is_nil(out:match("default"))
      -- The nodes reach each other and the controller over the bridge.
      ssh_ok("etcd2", "ping -c1 -W2 198.18.0.13 && ping -c1 -W2 198.18.0.1")
   end)

   it("runs units under the node's systemd", function()
      need_lab()
      local unit = table.concat({
         "[Unit]", "Description=lab spec probe",
         "[Service]", "ExecStart=/bin/sleep infinity",
         "[Install]", "WantedBy=multi-user.target", "",
      }, "\n")
      local out = ssh_ok("etcd2", ("printf %%s %s >/etc/systemd/system/lab-probe.service"
         .. " && systemctl daemon-reload && systemctl enable --now lab-probe.service"
         .. " && systemctl is-active lab-probe.service"):format(lab.q(unit)))
      assert.matches("active\n$", out)
      -- A transient unit too (what etcdrun's ad-hoc runs may use).
      out = ssh_ok("etcd2", "systemd-run --quiet --unit=lab-transient sleep 600"
         .. " && systemctl is-active lab-transient.service")
      assert.are.equal("active\n", out)
      ssh_ok("etcd2", "systemctl stop lab-transient.service")
   end)

   it("brings enabled units back after systemctl reboot", function()
      need_lab()
      lab.ssh(dir, "etcd2", "systemctl reboot")
      -- The launcher boots the node again (nspawn exits 133 on reboot).
      local out, code
      for _ = 1, 100 do
         os.execute("sleep 0.2")
         out, code = lab.ssh(dir, "etcd2", "systemctl is-system-running --wait"
            .. " && systemctl is-active lab-probe.service && journalctl --list-boots --no-pager | wc -l",
            { ssh = "-o ConnectTimeout=2", timeout = 30 })
         if code == 0 and out:match("\n[2-9]%d*\n$") then
            break
         end
      end
      assert.are.equal(0, code, out)
      assert.matches("^running\nactive\n[2-9]", out)
      ssh_ok("etcd2", "systemctl disable --now lab-probe.service && rm /etc/systemd/system/lab-probe.service")
   end)

   it("serves the etcd release like upstream, checksum intact on a node", function()
      need_lab()
      local base = assert(lab.read(dir .. "/release_url")):gsub("\n$", "")
      local version = assert(lab.read(dir .. "/etcd_version")):gsub("\n$", "")
      assert.matches("^http://198%.18%.0%.1:%d+/etcd%-io/etcd/releases/download$", base)
      local name = ("etcd-v%s-linux-amd64"):format(version)
      local url = ("%s/v%s/"):format(base, version)

      -- Exactly upstream's layout: one directory holding etcd and etcdctl.
      local served = ("%s/www/etcd-io/etcd/releases/download/v%s/"):format(dir, version)
      local local_tgz = served .. name .. ".tar.gz"
      local listing = lab.sh("tar -tzf " .. lab.q(local_tgz))
      assert.are.equal(("%s/\n%s/etcd\n%s/etcdctl\n"):format(name, name, name), listing)

      local out = ssh_ok("etcd2", ("cd /tmp && curl -fsSO %s && curl -fsSO %s"
         .. " && sha256sum -c SHA256SUMS && tar -xzf %s.tar.gz && ./%s/etcd --version"):format(
         lab.q(url .. name .. ".tar.gz"), lab.q(url .. "SHA256SUMS"), name, name))
      assert.matches(name .. ".tar.gz: OK\n", out, 1, true)
      assert.matches("etcd Version: " .. version, out, 1, true)
      -- The node fetched the same sum the controller serves.
      local sums = assert(lab.read(served .. "SHA256SUMS"))
      local remote = ssh_ok("etcd2", "sha256sum /tmp/" .. name .. ".tar.gz")
      assert.are.equal(sums:match("^(%x+)"), remote:match("^(%x+)"))
      ssh_ok("etcd2", "rm -rf /tmp/" .. name .. " /tmp/" .. name .. ".tar.gz /tmp/SHA256SUMS")
   end)

   it("serves a second release for upgrades (Debian trixie's) next to it, with etcdutl", function()
      need_lab()
      local base = assert(lab.read(dir .. "/release_url")):gsub("\n$", "")
      local version = assert(lab.read(dir .. "/etcd_upgrade_version")):gsub("\n$", "")
      assert.matches("^3%.5%.%d+$", version)
      local name = ("etcd-v%s-linux-amd64"):format(version)
      local url = ("%s/v%s/"):format(base, version)
      local served = ("%s/www/etcd-io/etcd/releases/download/v%s/"):format(dir, version)
      assert.are.equal(("%s/\n%s/etcd\n%s/etcdctl\n%s/etcdutl\n"):format(name, name, name, name),
         (lab.sh("tar -tzf " .. lab.q(served .. name .. ".tar.gz"))))
      -- Fetched over HTTP like a node would, checked, and run on the
      -- controller (no node is touched: the same bookworm userland).
      local out, code = lab.sh(("t=$(mktemp -d) && cd \"$t\" && curl -fsSO %s && curl -fsSO %s"
         .. " && sha256sum -c SHA256SUMS && tar -xzf %s.tar.gz && ./%s/etcd --version && ./%s/etcdutl version;"
         .. " s=$?; rm -rf \"$t\"; exit $s"):format(lab.q(url .. name .. ".tar.gz"), lab.q(url .. "SHA256SUMS"),
         name, name, name))
      assert.are.equal(0, code, out)
      assert.matches(name .. ".tar.gz: OK\n", out, 1, true)
      assert.matches("etcd Version: " .. version, out, 1, true)
      assert.matches("etcdutl version: " .. version, out, 1, true)
   end)

   it("keeps host-key checking strict", function()
      need_lab()
      local tmp = os.tmpname()
      local known = assert(lab.read(dir .. "/known_hosts"))
      -- Every node has host keys of its own.
      local keys = {}
      for key in known:gmatch("ssh%-ed25519 (%S+)") do
         assert.is_nil(keys[key], "two nodes share a host key")
         keys[key] = true
      end
      -- etcd1's keys filed under etcd2's name and address: a changed key.
      local wrong = known:gsub("etcd2,198%.18%.0%.12", "x"):gsub("etcd1,198%.18%.0%.11", "etcd2,198.18.0.12")
      local f = assert(io.open(tmp, "w"))
      f:write(wrong)
      f:close()
      local out, code = lab.ssh(dir, "etcd2", "true", { ssh = "-o UserKnownHostsFile=" .. lab.q(tmp) })
      assert.are.equal(255, code, out)
      assert.matches("Host key verification failed", out, 1, true)
      -- An unknown host is refused too, never added.
      f = assert(io.open(tmp, "w"))
      f:close()
      out, code = lab.ssh(dir, "etcd2", "true", { ssh = "-o UserKnownHostsFile=" .. lab.q(tmp) })
      assert.are.equal(255, code, out)
      assert.matches("Host key verification failed", out, 1, true)
      assert.are.equal("", lab.read(tmp))
      os.remove(tmp)
   end)

   it("refuses to build a second lab over the running one", function()
      need_lab()
      local out, code = lab.run("up", "2")
      assert.are_not.equal(0, code)
      assert.matches("a lab already exists", out, 1, true)
      assert.are.equal("running\n", ssh_ok("etcd1", "systemctl is-system-running"))
   end)

   it("stops and starts a node", function()
      need_lab()
      local out, code = lab.run("stop-node", "etcd3")
      assert.are.equal(0, code, out)
      out, code = lab.ssh(dir, "etcd3", "true", { ssh = "-o ConnectTimeout=2", timeout = 10 })
      assert.are.equal(255, code, out)
      assert.matches("etcd3%s+198%.18%.0%.13%s+stopped", (lab.run("status")))
      out, code = lab.run("start-node", "etcd3")
      assert.are.equal(0, code, out)
      assert.are.equal("running\n", ssh_ok("etcd3", "systemctl is-system-running --wait"))
      -- A crash (kill -9) instead of a poweroff, and back.
      out, code = lab.run("stop-node", "etcd3", "--hard")
      assert.are.equal(0, code, out)
      out, code = lab.run("start-node", "etcd3")
      assert.are.equal(0, code, out)
      assert.are.equal("running\n", ssh_ok("etcd3", "systemctl is-system-running --wait"))
   end)

   it("cuts a node off the bridge and heals it", function()
      need_lab()
      local out, code = lab.run("cut", "etcd3")
      assert.are.equal(0, code, out)
      out, code = lab.ssh(dir, "etcd3", "true", { ssh = "-o ConnectTimeout=1", timeout = 10 })
      assert.are.equal(255, code, out)
      -- The other nodes lose it too, not only the controller.
      out, code = lab.ssh(dir, "etcd1", "timeout 1 bash -c 'exec 3<>/dev/tcp/198.18.0.13/22'")
      assert.are_not.equal(0, code, out)
      assert.matches("etcd3%s+198%.18%.0%.13%s+running%s+link=cut", (lab.run("status")))
      out, code = lab.run("heal", "etcd3")
      assert.are.equal(0, code, out)
      ssh_ok("etcd3", "true")
      ssh_ok("etcd1", "timeout 2 bash -c 'exec 3<>/dev/tcp/198.18.0.13/22'")
   end)
end)

describe("lab down", function()
   -- Last: it removes the lab the cases above used. A lab someone brought up
   -- by hand is left alone.
   it("leaves no link, namespace, mount, cgroup or process, and is safe twice", function()
      if lab.unavailable() then
         pending(lab.unavailable())
      end
      local st = lab.status()
      if st.up and not lab.started_by_tests(st.dir) then
         pending("the running lab was brought up outside the tests; not taking it down")
      end
      local out, code = lab.teardown()
      assert.are.equal(0, code, out)
      out, code = lab.teardown()
      assert.are.equal(0, code, out)
      assert.are.equal("", (lab.sh("ip -o link show | grep etcdlab")))
      assert.are.equal("", (lab.sh("ip netns list | grep etcdlab")))
      assert.are.equal("", (lab.sh("grep etcdrun-lab /proc/self/mountinfo")))
      assert.are.equal("", (lab.sh("ls -d /sys/fs/cgroup/*/etcdrun-lab 2>/dev/null")))
      -- Killed processes may stay zombies for a moment until init reaps them;
      -- only live ones count.
      assert.are.equal("", (lab.sh("ps -eo stat=,args= | awk '$1 !~ /^Z/'"
         .. " | grep -E 'spec/lab/node\\.sh|--machine=etcd[0-9]|http\\.server .*198\\.18\\.0\\.1'")))
      local st2 = lab.status()
      assert.is_false(st2.up)
   end)
end)
