-- playbooks/rotate-ca.lua on the lab's real nodes etcd7..etcd9, under load
-- (a writer putting a key every 50 ms: no failed write, every acknowledged
-- and seeded key read back): the plan under --check changes nothing; a full
-- rotation leaves every member serving certificates of the new CA and
-- trusting only it, the old CA retired, the operator's etcdctl.env working;
-- tls-cluster.lua refuses while a rotation is in progress; a rotation killed
-- in each stage resumes and completes on the next run.
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local etcd = require("etcdrun.etcd")
local x509 = require("etcdrun.x509")

local q = helper.q
local NODES = 10
local VIA = { 7, 8, 9 }
local dir, why_not, c

local function rotate(args)
   local out, err, code = helper.run(("cd %s && %s -i hosts %s/playbooks/rotate-ca.lua %s %s"):format(q(c.ws),
      q(helper.etcdrun), q(lab.root), c:release_args(), args or ""))
   return out .. err, code
end

-- The CA subject every member serves a certificate of, on both ports.
local function served_issuers()
   local seen = {}
   for _, i in ipairs(VIA) do
      for _, port in ipairs({ 2379, 2380 }) do
         local pem = assert(etcd.served_cert(("https://%s:%d"):format(labcluster.ip(i), port), c:tls()))
         seen[x509.info(pem).issuer_dn] = true
      end
   end
   local list = {}
   for k in pairs(seen) do
      list[#list + 1] = k
   end
   table.sort(list)
   return table.concat(list, "; ")
end

-- The operator's etcdctl, as the printed line sets it up.
local function operator_etcdctl()
   local out = helper.run(("set -a; . %s/pki/etcdctl.env; etcdctl endpoint health 2>&1 | grep -c 'is healthy'")
      :format(q(c.ws)))
   return tonumber(out) or 0
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

describe("CA rotation on the lab, under load", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      c = labcluster.new(dir)
      c:reset(7, 9)
      c:inventory(labcluster.nodes(7, 9))
      local out, code = c:playbook()
      assert(code == 0, out)
      c:seed(VIA, 50)
   end)

   teardown(function()
      if c then
         c:reset(7, 9)
      end
   end)

   it("shows the plan under --check and changes nothing", function()
      if no_lab() then return end
      local ca = helper.read(c.ws .. "/pki/ca.crt")
      local out, code = rotate("-C")
      assert.are.equal(0, code, out)
      assert.matches("CA rotation: 1. a new CA (etcd CA 2) on the controller; 2. members trust both", out, 1, true)
      assert.are.equal(ca, helper.read(c.ws .. "/pki/ca.crt"))
      assert.is_nil(helper.read(c.ws .. "/pki/ca-next.crt"))
      assert.are.equal("CN=etcd CA,O=etcdrun", served_issuers())
   end)

   it("rotates the CA with no failed write; the operator's etcdctl works before and after", function()
      if no_lab() then return end
      assert.are.equal(3, operator_etcdctl())
      c:under_load("CA rotation", VIA, function()
         local out, code = rotate()
         assert.are.equal(0, code, out)
         assert.matches("changed%s+controller%s+the new CA is the CA", out)
      end)
      assert.are.equal("CN=etcd CA 2,O=etcdrun", served_issuers())
      assert.matches("CN = etcd CA 2", helper.run("openssl x509 -noout -subject -in " .. q(c.ws .. "/pki/ca.crt")))
      for _, i in ipairs(VIA) do
         assert.are.equal(helper.read(c.ws .. "/pki/ca.crt"), c:node(i, "cat /etc/etcd/ssl/ca.crt"))
      end
      assert.matches("ca%-%d+T%d+Z%.key", helper.run("ls " .. q(c.ws .. "/pki/retired")))
      assert.are.equal(3, operator_etcdctl())
      -- and the install playbook, run again, changes nothing
      local out, code = c:playbook()
      assert.are.equal(0, code, out)
      assert.matches("etcd7%s+: ok=%d+%s+changed=0 ", out)
   end)

   -- where a run is killed: the line of its output (an extended regular
   -- expression) that shows it reached the stage
   local STAGES = {
      { "new CA made", "changed +controller +new CA certificate" },
      { "members restarting to trust both", "changed +etcd[0-9]+ +handler: restart etcd" },
      { "certificates from the new CA going out", "changed +etcd[0-9]+ +install /etc/etcd/ssl/server\\.crt" },
      { "members trusting only the new CA", "changed +etcd[0-9]+ +members trust only the new CA" },
   }
   for n, stage in ipairs(STAGES) do
      it(("resumes a rotation killed at stage %d (%s)"):format(n, stage[1]), function()
         if no_lab() then return end
         local before = helper.read(c.ws .. "/pki/ca.crt")
         c:under_load("CA rotation killed at stage " .. n .. ", resumed", VIA, function()
            local log = c.ws .. "/killed.log"
            local r = helper.run(([[
               cd %s && %s -i hosts %s/playbooks/rotate-ca.lua %s > %s 2>&1 & pid=$!
               for i in $(seq 1000); do grep -Eq %s %s && break; sleep 0.01; done
               kill -9 $pid; wait $pid; echo rc=$?]]):format(q(c.ws), q(helper.etcdrun), q(lab.root),
               c:release_args(), q(log), q(stage[2]), q(log)))
            assert.matches("rc=137", r, helper.read(log))
            -- meanwhile the install playbook refuses, pointing to the rotation
            local out, code = c:playbook()
            assert.are_not.equal(0, code)
            assert.matches("a CA rotation is in progress", out, 1, true)
            out, code = rotate()
            assert.are.equal(0, code, out)
         end)
         assert.are_not.equal(before, helper.read(c.ws .. "/pki/ca.crt"))
         assert.is_nil(helper.read(c.ws .. "/pki/ca-next.crt"))
         assert.are.equal(("CN=etcd CA %d,O=etcdrun"):format(n + 2), served_issuers())
         assert.are.equal(3, operator_etcdctl())
      end)
   end
end)
