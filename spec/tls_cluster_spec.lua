-- playbooks/tls-cluster.lua against the lab's real nodes: a fresh 3-member
-- install, verified; an idempotent re-run that keeps data; a rolling change
-- that keeps quorum (writes succeed throughout); an interrupted bootstrap
-- that converges on the next run; a 5-member cluster (a member that changed
-- address moves: spec/membership_spec.lua); a bad release checksum stopping before any
-- node is touched.
local helper = require("support.helper")
local lab = require("support.lab")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")

local q = helper.q
local NODES = 10
local dir, why_not

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

local function release_args()
   local version = helper.read(dir .. "/etcd_version"):gsub("%s+", "")
   local url = helper.read(dir .. "/release_url"):gsub("%s+", "")
   return ("-e etcd_version=%s -e etcd_release_url=%s/v%s"):format(version, url, version)
end

-- An inventory of lab nodes `from`..`to` in a fresh work directory.
local function workspace(from, to, extra_host_vars)
   local ws = helper.tmpdir()
   local lines = { "[etcd]" }
   for i = from, to do
      lines[#lines + 1] = ("etcd%d ansible_host=198.18.0.%d ansible_user=root%s"):format(i, 10 + i,
         extra_host_vars and extra_host_vars[i] and (" " .. extra_host_vars[i]) or "")
   end
   lines[#lines + 1] = "[etcd:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. dir .. "/ssh_config"
   helper.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n")
   return ws
end

local function playbook(ws, args, name)
   return helper.run(("cd %s && %s -i hosts %s/playbooks/%s %s %s"):format(q(ws), q(helper.etcdrun),
      q(lab.root), name or "tls-cluster.lua", release_args(), args or ""))
end

local function json_run(ws, args, name)
   local out, err, code = playbook(ws, "--json " .. (args or ""), name)
   local events = {}
   for line in out:gmatch("[^\n]+") do
      local ok, e = pcall(cjson.decode, line)
      assert(ok, "not JSON: " .. line)
      events[#events + 1] = e
   end
   return events, code, err
end

local function recap(events)
   local r = events[#events]
   assert.are.equal("recap", r and r.event, "no recap event")
   return r
end

local function changed_total(events)
   local n = 0
   for _, s in pairs(recap(events).hosts) do
      n = n + s.changed
   end
   return n
end

local function tls(ws)
   return { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
end

local function node(i, cmd)
   return lab.ssh(dir, "etcd" .. i, cmd)
end

local function reset_nodes(from, to)
   for i = from, to do
      node(i, "systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null; rm -rf /var/lib/etcd /etc/etcd "
         .. "/opt/etcd /etc/systemd/system/etcd.service /etc/profile.d/etcd.sh; systemctl daemon-reload; "
         .. "userdel etcd 2>/dev/null; groupdel etcd 2>/dev/null; true")
   end
end

describe("tls-cluster.lua on the lab", function()
   local ws -- the 3-member cluster's workspace, shared by the tests that follow

   -- a case that needs the cluster the install case made is skipped (never
   -- passed) when that case did not run, as under --filter
   local function no_cluster()
      if not ws then
         pending("needs the 3-member cluster of the install case, which did not run")
         return true
      end
      return false
   end

   setup(function()
      dir, why_not = lab.ensure(NODES)
      if dir then
         reset_nodes(1, 3)
      end
   end)

   it("answers --check on bare nodes, writing nothing on the controller or the nodes", function()
      if no_lab() then return end
      local fresh = workspace(1, 3)
      local home = fresh .. "/home"
      helper.run("mkdir -p " .. q(home))
      for i = 1, 3 do
         node(i, "touch /tmp/etcdrun-check-marker")
      end
      helper.write(fresh .. "/.marker", "")
      helper.run("sleep 1.1")
      local out, err, code = helper.run(("cd %s && HOME=%s XDG_CACHE_HOME=%s/cache XDG_STATE_HOME=%s/state %s -C "
         .. "-i hosts %s/playbooks/tls-cluster.lua %s"):format(q(fresh), q(home), q(home), q(home),
         q(helper.etcdrun), q(lab.root), release_args()))
      assert.are.equal(0, code, out .. err)
      assert.matches("changed%s+etcd1%s+start etcd", out)
      assert.matches("changed%s+etcd2%s+etcd binaries", out)
      assert.matches("changed%s+controller%s+CA key", out)
      assert.matches("skipped%s+controller%s+verify", out)
      local written = helper.run(("find %s -newer %s ! -path %s"):format(q(fresh), q(fresh .. "/.marker"), q(fresh)))
      assert.are.equal("", written, "--check wrote on the controller")
      for i = 1, 3 do
         assert.are.equal("", node(i, "find / -xdev -newer /tmp/etcdrun-check-marker ! -path '/proc/*' "
            .. "! -path '/sys/*' ! -path '/run' ! -path '/run/*' ! -path '/var/log/journal/*' 2>/dev/null"),
            "--check wrote on etcd" .. i)
      end
   end)

   it("installs a 3-member TLS cluster from bare nodes and verifies it", function()
      if no_lab() then return end
      ws = workspace(1, 3)
      local out, err, code = playbook(ws)
      assert.are.equal(0, code, out .. err)
      assert.matches("ok%s+controller%s+verify", out)
      assert.matches("set %-a; %. " .. (ws .. "/pki/etcdctl.env"):gsub("%p", "%%%0"), out)
      assert.matches("etcd1%s+https://198%.18%.0%.11:2379%s+%a+%s+3%.%d+%.%d+", out)
      -- our own client, independent of the playbook's verification
      local t = tls(ws)
      for i = 1, 3 do
         assert.is_true(etcd.health(("https://198.18.0.%d:2379"):format(10 + i), t))
      end
      local members = assert(etcd.members("https://198.18.0.12:2379", t))
      assert.are.equal(3, #members)
      -- the etcdctl line works as printed
      local ectl, eerr, ecode = helper.run(("cd %s && set -a && . pki/etcdctl.env && etcdctl endpoint health 2>&1")
         :format(q(ws)))
      assert.are.equal(0, ecode, ectl .. eerr)
      assert.matches("https://198%.18%.0%.13:2379 is healthy", ectl)
      -- mutual TLS is enforced on the node itself, too
      local plain = node(1, "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/etcd/ssl/ca.crt "
         .. "https://127.0.0.1:2379/health || true")
      assert.is_not.equal("200", plain)
      local keymode = node(2, "stat -c '%a %U' /etc/etcd/ssl/peer.key /var/lib/etcd/etcd2.etcd")
      assert.are.equal("600 etcd\n700 etcd\n", keymode)
      assert.are.equal("enabled\n", node(3, "systemctl is-enabled etcd"))
      -- keys are made where they live: none on the controller, and each
      -- member's certificate is for the key it made
      for _, f in ipairs(fs.list(ws .. "/pki")) do
         assert.is_nil(f:match("^etcd%d+%-%a+%.key$"), "a member key on the controller: " .. f)
      end
      for _, kind in ipairs({ "server", "peer" }) do
         local crt_pub = helper.run("openssl x509 -noout -pubkey -in " .. q(ws .. "/pki/etcd2-" .. kind .. ".crt"))
         assert.are.equal(crt_pub, node(2, "openssl pkey -pubout -in /etc/etcd/ssl/" .. kind .. ".key"))
      end
   end)

   it("re-runs with nothing changed, nothing restarted and the data kept", function()
      if no_lab() or no_cluster() then return end
      local t = tls(ws)
      assert(etcd.put("https://198.18.0.11:2379", t, "spec/kept", "before the re-run"))
      local pids = node(1, "systemctl show -p MainPID --value etcd")
      local ca = fs.read(ws .. "/pki/ca.crt")
      local key = node(2, "sha256sum /etc/etcd/ssl/peer.key")
      local events, code = json_run(ws)
      assert.are.equal(0, code)
      assert.are.equal(0, changed_total(events))
      assert.are.equal(pids, node(1, "systemctl show -p MainPID --value etcd"))
      assert.are.equal(ca, fs.read(ws .. "/pki/ca.crt"))
      assert.are.equal(key, node(2, "sha256sum /etc/etcd/ssl/peer.key"))
      assert.are.equal("before the re-run", etcd.get("https://198.18.0.13:2379", t, "spec/kept"))
      -- --check on a converged cluster reports nothing to change
      events, code = json_run(ws, "--check")
      assert.are.equal(0, code)
      assert.are.equal(0, changed_total(events))
   end)

   it("moves a cluster whose member keys sit on the controller to keys on the members, with no restart", function()
      if no_lab() or no_cluster() then return end
      -- as an older etcdrun left it: the member's key pushed from the
      -- controller's PKI, no CSRs anywhere
      local pki = ws .. "/pki"
      helper.write(pki .. "/etcd2-server.key", node(2, "cat /etc/etcd/ssl/server.key"))
      helper.write(pki .. "/etcd2-peer.key", node(2, "cat /etc/etcd/ssl/peer.key"))
      os.remove(pki .. "/etcd2-server.csr")
      node(2, "rm /etc/etcd/ssl/server.csr /etc/etcd/ssl/peer.csr")
      local pid = node(2, "systemctl show -p MainPID --value etcd")
      local key, serial = node(2, "sha256sum /etc/etcd/ssl/server.key"), node(2,
         "openssl x509 -noout -serial -in /etc/etcd/ssl/server.crt")
      local out, err, code = playbook(ws)
      assert.are.equal(0, code, out .. err)
      assert.matches("changed%s+etcd2%s+server key", out)
      assert.matches("changed%s+etcd2%s+server key off the controller", out)
      assert.is_nil(out:match("changed%s+etcd2%s+server certificate"), out)
      assert.is_nil(fs.stat(pki .. "/etcd2-server.key"), "the controller's copy was kept")
      assert.is_nil(fs.stat(pki .. "/etcd2-peer.key"), "the controller's copy was kept")
      assert.is_not_nil(fs.stat(pki .. "/etcd2-server.csr"))
      assert.are.equal(key, node(2, "sha256sum /etc/etcd/ssl/server.key"))
      assert.are.equal(serial, node(2, "openssl x509 -noout -serial -in /etc/etcd/ssl/server.crt"))
      assert.are.equal(pid, node(2, "systemctl show -p MainPID --value etcd"))
   end)

   it("reset.lua under --check stops nothing and wipes nothing", function()
      if no_lab() or no_cluster() then return end
      local pid = node(1, "systemctl show -p MainPID --value etcd")
      local out, err, code = helper.run(("cd %s && %s -C -i hosts %s/playbooks/reset.lua -e confirm=yes"):format(q(ws),
         q(helper.etcdrun), q(lab.root)))
      assert.are.equal(0, code, out .. err)
      assert.matches("changed%s+etcd1%s+wipe the data directory", out)
      assert.are.equal(pid, node(1, "systemctl show -p MainPID --value etcd"))
      assert.are.equal("yes\n", node(1, "test -d /var/lib/etcd/etcd1.etcd/member && echo yes"))
   end)

   it("finds the PKI next to the inventory, from any working directory", function()
      if no_lab() or no_cluster() then return end
      -- run from elsewhere, naming the inventory by path: the default
      -- etcd_pki_dir (pki) is the inventory's, so nothing changes
      local elsewhere = helper.tmpdir()
      local out, err, code = helper.run(("cd %s && %s -i %s/hosts %s/playbooks/tls-cluster.lua %s"):format(
         q(elsewhere), q(helper.etcdrun), q(ws), q(lab.root), release_args()))
      assert.are.equal(0, code, out .. err)
      assert.matches("PKI %(etcd_pki_dir%): " .. (ws .. "/pki"):gsub("%p", "%%%0") .. "\n", out)
      assert.is_nil(out:match("changed%s+etcd"), out)
      assert.is_nil(fs.stat(elsewhere .. "/pki"), "a PKI was made in the working directory")
   end)

   it("refuses to replace the CA of a running cluster: no CA, or another one, on the controller", function()
      if no_lab() or no_cluster() then return end
      local ca_on_nodes = node(1, "sha256sum /etc/etcd/ssl/ca.crt /etc/etcd/ssl/peer.crt")
      local pid = node(2, "systemctl show -p MainPID --value etcd")
      -- the same inventory in another directory: its pki/ is empty
      local other = workspace(1, 3)
      local out, err, code = playbook(other)
      assert.are.equal(1, code, out .. err)
      assert.matches("preflight found problems; nothing was changed", out)
      assert.matches("etcd1, etcd2, etcd3: etcd runs %(or has data%) trusting the CA in /etc/etcd/ssl/ca.crt", out)
      assert.matches((other .. "/pki"):gsub("%p", "%%%0") .. " has no ca%.crt", out)
      assert.matches("etcd_pki_dir", out)
      assert.is_nil(fs.stat(other .. "/pki/ca.key"), "a new CA key was made")
      -- a PKI with another CA: both fingerprints named
      assert(fs.mkdir(other .. "/pki", { mode = 448 }))
      local _, oerr, ocode = helper.run(("cd %s/pki && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
         .. "-nodes -keyout ca.key -out ca.crt -subj /CN=another -days 2 2>&1"):format(q(other)))
      assert.are.equal(0, ocode, oerr)
      out, err, code = playbook(other)
      assert.are.equal(1, code, out .. err)
      assert.matches("holds another CA, SHA%-256 %x%x:", out)
      -- nothing changed on the members: same CA, same certificates, same process
      assert.are.equal(ca_on_nodes, node(1, "sha256sum /etc/etcd/ssl/ca.crt /etc/etcd/ssl/peer.crt"))
      assert.are.equal(pid, node(2, "systemctl show -p MainPID --value etcd"))
      assert.is_nil(fs.stat(other .. "/pki/etcd1-peer.crt"))
      for i = 1, 3 do
         assert.is_true(etcd.health(("https://198.18.0.%d:2379"):format(10 + i), tls(ws)))
      end
   end)

   it("rolls a configuration change one member at a time, leader last, keeping quorum", function()
      if no_lab() or no_cluster() then return end
      local t = tls(ws)
      local before = {}
      local leader
      for i = 1, 3 do
         local url = ("https://198.18.0.%d:2379"):format(10 + i)
         before[i] = node(i, "systemctl show -p InvocationID --value etcd")
         local s = assert(etcd.status(url, t))
         if s.is_leader then
            leader = "etcd" .. i
         end
      end
      -- a writer that tries each member in turn, during the whole change
      local log = ws .. "/writer.log"
      local writer = ([[
         stop=$(( $(date +%%s) + 40 )); ok=0; bad=0
         while [ ! -e %s/stop ] && [ $(date +%%s) -lt $stop ]; do
            done_one=0
            for m in 11 12 13; do
               if curl -sf --max-time 2 --cacert %s/pki/ca.crt --cert %s/pki/admin.crt --key %s/pki/admin.key \
                  -X POST -d '{"key":"c3BlYy9yb2xs","value":"eA=="}' https://198.18.0.$m:2379/v3/kv/put >/dev/null
               then done_one=1; break; fi
            done
            if [ $done_one = 1 ]; then ok=$((ok+1)); else bad=$((bad+1)); fi
            echo "$ok $bad" > %s
            sleep 0.05
         done]]):format(q(ws), q(ws), q(ws), q(ws), q(log))
      local pid = helper.run(("(%s) >/dev/null 2>&1 & echo $!"):format(writer)):match("%d+")
      finally(function()
         helper.write(ws .. "/stop", "")
         helper.run("wait " .. pid .. " 2>/dev/null; kill " .. pid .. " 2>/dev/null || true")
      end)
      helper.run("sleep 1")
      local events, code, err = json_run(ws, "-e etcd_heartbeat_interval=150 -e etcd_election_timeout=1500")
      assert.are.equal(0, code, err)
      helper.run("sleep 1")
      helper.write(ws .. "/stop", "")
      helper.run("sleep 0.3")
      local ok, bad = helper.read(log):match("(%d+) (%d+)")
      assert.are.equal("0", bad, "writes failed during the rolling change")
      assert.is_true(tonumber(ok) > 10, "the writer made too few writes: " .. tostring(ok))
      -- the rolling handler: one member at a time, each between two health
      -- gates, the leader last
      local seq = {}
      for _, e in ipairs(events) do
         if e.event == "handler_result" and (e.task == "restart etcd" or e.task == "cluster healthy") then
            seq[#seq + 1] = ("%s %s %s"):format(e.task == "restart etcd" and "restart" or "gate", e.host, e.status)
         end
      end
      assert.are.equal(9, #seq, table.concat(seq, "\n"))
      for i = 1, 3 do
         local host = seq[3 * i - 1]:match("^restart (%S+) changed$")
         assert.is_truthy(host, table.concat(seq, "\n"))
         assert.are.equal(("gate %s ok"):format(host), seq[3 * i - 2])
         assert.are.equal(("gate %s ok"):format(host), seq[3 * i])
         if i == 3 then
            assert.are.equal(leader, host, table.concat(seq, "\n"))
         end
      end
      for i = 1, 3 do
         assert.are_not.equal(before[i], node(i, "systemctl show -p InvocationID --value etcd"))
         assert.matches("heartbeat%-interval: 150", node(i, "cat /etc/etcd/etcd.conf.yaml"))
      end
   end)

   -- (after the rolling change: a member cut off and healed makes etcd 3.4,
   -- which has no pre-vote, hold an election when it rejoins, which would move
   -- the leader under the rolling test's feet)
   it("names an unreachable member in preflight and changes nothing", function()
      if no_lab() or no_cluster() then return end
      local conf = node(1, "sha256sum /etc/etcd/etcd.conf.yaml")
      lab.run("cut", "etcd3")
      finally(function()
         lab.run("heal", "etcd3")
      end)
      local out, err, code = playbook(ws, "-e etcd_heartbeat_interval=120")
      assert.are.equal(3, code, out .. err)
      assert.matches("etcd3: unreachable %(ssh%.connect: [^\n]*%): every member must be up and reachable", out)
      assert.is_nil((out .. err):find("attempt to index", 1, true))
      assert.is_nil(out:match("changed%s+etcd"), out)
      assert.are.equal(conf, node(1, "sha256sum /etc/etcd/etcd.conf.yaml"))
   end)

   it("converges after a bootstrap interrupted mid-way", function()
      if no_lab() or no_cluster() then return end
      local wiped = helper.run(("cd %s && %s -i hosts %s/playbooks/reset.lua -e confirm=yes"):format(q(ws),
         q(helper.etcdrun), q(lab.root)))
      assert.matches("etcd1%s+: ok=%d+%s+changed=%d", wiped)
      assert.are.equal("inactive\n", node(1, "systemctl is-active etcd || true"))
      -- start a fresh bootstrap; as the members are about to start, cut etcd3
      -- off the network (etcd1 and etcd2 start, etcd3 cannot), then kill etcdrun
      local log = ws .. "/interrupted.log"
      local run = helper.run(([[
         cd %s && %s -i hosts %s/playbooks/tls-cluster.lua %s -e etcd_health_timeout=30 > %s 2>&1 & pid=$!
         for i in $(seq 300); do grep -q 'etcd unit' %s && break; sleep 0.02; done
         bash %s cut etcd3 >/dev/null; sleep 2; kill -9 $pid; wait $pid; echo rc=$?]]):format(q(ws),
         q(helper.etcdrun), q(lab.root), release_args(), q(log), q(log), q(lab.script)))
      lab.run("heal", "etcd3")
      assert.matches("rc=137", run, helper.read(log))
      assert.is_nil(helper.read(log):find("verify", 1, true), "the interrupted run got as far as verify")
      -- the next run brings everything to a healthy, verified cluster
      local out, err, rc = playbook(ws)
      assert.are.equal(0, rc, out .. err)
      assert.matches("ok%s+controller%s+verify", out)
      local t = tls(ws)
      for i = 1, 3 do
         assert.is_true(etcd.health(("https://198.18.0.%d:2379"):format(10 + i), t))
      end
   end)

   it("stops on a bad release checksum before touching any node", function()
      if no_lab() then return end
      reset_nodes(6, 10)
      local bad = workspace(6, 10)
      local version = helper.read(dir .. "/etcd_version"):gsub("%s+", "")
      local rel = bad .. "/release"
      assert(fs.mkdir(rel))
      local file = ("etcd-v%s-linux-amd64.tar.gz"):format(version)
      local url = helper.read(dir .. "/release_url"):gsub("%s+", "") .. "/v" .. version .. "/" .. file
      local _, err, code = helper.run(("curl -sf -o %s %s"):format(q(rel .. "/" .. file), q(url)))
      assert.are.equal(0, code, err)
      helper.write(rel .. "/SHA256SUMS", string.rep("0", 64) .. "  " .. file .. "\n")
      local out
      out, err, code = helper.run(("cd %s && XDG_CACHE_HOME=%s %s -i hosts %s/playbooks/tls-cluster.lua "
         .. "-e etcd_version=%s -e etcd_release_url=file://%s"):format(q(bad), q(bad .. "/cache"), q(helper.etcdrun),
         q(lab.root), version, rel))
      assert.are.equal(1, code)
      assert.matches("failed%s+controller%s+etcd release", out)
      assert.matches("sha256 mismatch: expected 0000000000000000", out .. err)
      for i = 6, 10 do
         assert.are.equal("absent\n", node(i, "test -e /opt/etcd || test -e /etc/etcd || test -e /var/lib/etcd "
            .. "&& echo present || echo absent"))
      end
   end)

   it("installs a 5-member cluster", function()
      if no_lab() then return end
      reset_nodes(6, 10)
      local five = workspace(6, 10)
      local out, err, code = playbook(five)
      assert.are.equal(0, code, out .. err)
      local members = assert(etcd.members("https://198.18.0.20:2379", tls(five)))
      assert.are.equal(5, #members)
      assert.matches("ok%s+controller%s+verify", out)
      assert.matches("etcd10%s+https://198%.18%.0%.20:2379", out)
      reset_nodes(6, 10)
   end)
end)
