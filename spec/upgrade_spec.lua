-- Upgrades and certificates with playbooks/tls-cluster.lua on the lab's real
-- nodes etcd7..etcd9, under load (a writer putting a key every 50 ms: no
-- failed write, every acknowledged and seeded key read back): the refusals of
-- etcd's upgrade rules (nothing changes, no release is fetched), the plan
-- under --check, Debian bookworm's 3.4.23 -> trixie's 3.5.16 one member at a
-- time with the leader last and the cluster version checked, and every
-- member certificate renewed with no restart, the new serials served.
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local etcd = require("etcdrun.etcd")
local x509 = require("etcdrun.x509")

local NODES = 10
local VIA = { 7, 8, 9 }
local dir, why_not, c, target

local function versions()
   local out = {}
   for i, url in ipairs(labcluster.urls(VIA)) do
      local v = assert(etcd.version(url, c:tls()))
      out[i] = v.server
      out.cluster = v.cluster
   end
   return out
end

local function pids()
   local t = {}
   for _, i in ipairs(VIA) do
      t[#t + 1] = c:node(i, "systemctl show -p ExecMainPID --value etcd")
   end
   return table.concat(t, " ")
end

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   if not c.seeded then
      pending("needs the 3-member cluster of the setup, which did not come up")
      return true
   end
   return false
end

describe("upgrades and certificates on the lab, under load", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      target = (helper.read(dir .. "/etcd_upgrade_version") or ""):gsub("%s+", "")
      c = labcluster.new(dir)
      c:reset(7, 9)
      c:inventory(labcluster.nodes(7, 9))
      -- certificates that live 20 days: the default renew window (30) renews them
      local out, code = c:playbook("-e etcd_cert_days=20 -e etcd_renew_days=10")
      assert(code == 0, out)
      c:seed(VIA, 50)
   end)

   teardown(function()
      if c then
         c:reset(7, 9)
      end
   end)

   it("refuses a renew window as long as the certificates' life, before anything changes", function()
      if no_lab() then return end
      local out, code = c:playbook("-e etcd_renew_days=900")
      assert.are_not.equal(0, code)
      assert.matches("etcd_renew_days (900) must be less than etcd_cert_days (825)", out, 1, true)
      assert.is_nil(out:find("preflight", 1, true))
   end)

   it("refuses what etcd's upgrade rules forbid, before anything changes", function()
      if no_lab() then return end
      local cases = {
         { "3.6.5", "etcd upgrades one minor at a time; upgrade to the newest 3.5 patch first, then to 3.6.5" },
         { "3.5.1", "etcd 3.5.1 is a known-bad release" },
         { "3.3.27", "newer than 3.3.27: etcd does not support downgrading a minor" },
      }
      for _, case in ipairs(cases) do
         local out, code = c:playbook(nil, case[1])
         assert.are_not.equal(0, code, out)
         assert.matches("etcd_version " .. case[1]:gsub("%.", "%%.") .. ": refused, nothing was changed", out)
         assert.matches(case[2], out, 1, true)
         -- refused before the release is even fetched
         assert.is_nil(out:find("etcd release", 1, true), out)
      end
      -- (the cluster version itself settles a few seconds after a bootstrap)
      local v = versions()
      assert.are.same({ "3.4.23", "3.4.23", "3.4.23" }, { v[1], v[2], v[3] })
   end)

   it("renews every member certificate with no restart; the members serve the new serials", function()
      if no_lab() then return end
      local before = pids()
      local old = helper.read(c.ws .. "/pki/etcd8-peer.crt")
      c:under_load("renew every certificate", VIA, function()
         -- the setup's certificates expire within the default window (30 days)
         local out, code = c:playbook()
         assert.are.equal(0, code, out)
         assert.matches("changed%s+etcd8%s+peer certificate", out)
         assert.matches("certificates in use, earliest expiry: CA %d+%-%d+%-%d+", out)
      end)
      assert.are.equal(before, pids())
      local new = helper.read(c.ws .. "/pki/etcd8-peer.crt")
      assert.are_not.equal(x509.info(old).serial, x509.info(new).serial)
      local served = assert(etcd.served_cert("https://198.18.0.18:2380", c:tls()))
      assert.are.equal(x509.info(new).serial, x509.info(served).serial)
   end)

   it("shows the upgrade plan under --check and changes nothing", function()
      if no_lab() then return end
      assert.are.equal("3.5.16", target)
      local out, code = c:playbook("-C", target)
      assert.are.equal(0, code, out)
      assert.matches("upgrade plan: etcd7 3.4.23, etcd8 3.4.23, etcd9 3.4.23 -> 3.5.16 (a minor upgrade)", out, 1, true)
      local v = versions()
      assert.are.same({ "3.4.23", "3.4.23", "3.4.23" }, { v[1], v[2], v[3] })
   end)

   it("upgrades 3.4.23 -> 3.5.16 one member at a time, the leader last, with no failed write", function()
      if no_lab() then return end
      local leader
      for _, i in ipairs(VIA) do
         local s = assert(etcd.status(labcluster.urls({ i })[1], c:tls()))
         leader = s.is_leader and ("etcd" .. i) or leader
      end
      local out
      c:under_load("upgrade 3.4.23 -> 3.5.16", VIA, function()
         local code
         out, code = c:playbook(nil, target)
         assert.are.equal(0, code, out)
      end)
      assert.matches("snapshot from etcd7 %(before the upgrade to etcd 3%.5%.16%)", out)
      local order = {}
      for host in out:gmatch("changed%s+(etcd%d)%s+handler: restart etcd") do
         order[#order + 1] = host
      end
      assert.are.equal(3, #order, out)
      assert.are.equal(leader, order[3], out)
      assert.matches("changed%s+" .. leader .. "%s+handler: leadership elsewhere", out)
      assert.are.same({ "3.5.16", "3.5.16", "3.5.16", cluster = "3.5.0" }, versions())
      assert.matches("ok%s+controller%s+cluster version", out)
      local again, code = c:playbook(nil, target)
      assert.are.equal(0, code, again)
      assert.matches("etcd7%s+: ok=%d+%s+changed=0 ", again)
   end)

   it("converges when an upgrade is killed after its first restart", function()
      if no_lab() then return end
      -- the same cluster from scratch at 3.4.23
      c:reset(7, 9)
      local out, code = c:playbook()
      assert.are.equal(0, code, out)
      c:seed(VIA, 20)
      c:under_load("upgrade killed after the first restart, run again", VIA, function()
         local log = c.ws .. "/killed.log"
         local r = helper.run(([[
            %s > %s 2>&1 & pid=$!
            for i in $(seq 2000); do grep -Eq 'changed +etcd[0-9]+ +handler: restart etcd' %s && break; sleep 0.01
            done
            kill -9 $pid; wait $pid; echo rc=$?]]):format(c:command(nil, target), helper.q(log), helper.q(log)))
         assert.matches("rc=137", r, helper.read(log))
         -- killed half-way: some members run the target, some do not yet
         local upgraded = 0
         for _, v in ipairs(versions()) do
            upgraded = upgraded + (v == target and 1 or 0)
         end
         assert.is_true(upgraded >= 1 and upgraded < 3, "members at the target after the kill: " .. upgraded)
         out, code = c:playbook(nil, target)
         assert.are.equal(0, code, out)
      end)
      assert.are.same({ "3.5.16", "3.5.16", "3.5.16", cluster = "3.5.0" }, versions())
   end)
end)
