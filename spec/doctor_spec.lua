-- The doctor and the defragmentation on the lab's real nodes etcd7..etcd9
-- (etcd 3.4.23, a 16 MiB quota): a healthy cluster has no finding; each
-- finding that can be caused on the lab is caused, found with its fix, and
-- the fix it prints is carried out (a learner left behind, a stopped member,
-- a host that is no member, the unit disabled and initial-cluster-state
-- back at new, a clock 30 s off as the node's date reports it, certificates
-- inside the warning window, NOSPACE); defrag.lua defragments every member
-- under a writer with no failed write, and recovers from NOSPACE.
-- (Diverged hashkv cannot be caused safely: spec/modules/etcd_doctor_spec.lua
-- decides it from recorded state.)
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local etcd = require("etcdrun.etcd")
local cjson = require("cjson")

local NODES = 10
local VIA = { 7, 8, 9 }
local dir, why_not, c, ready

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   if not ready then
      pending("needs the cluster of the setup, which did not come up")
      return true
   end
   return false
end

local function doctor(args)
   return c:run("doctor.lua", args)
end

-- the findings of a --json run
local function findings(args)
   local out, code = doctor("--json " .. (args or ""))
   for line in out:gmatch("[^\n]+") do
      local ok, e = pcall(cjson.decode, line)
      if ok and type(e) == "table" and e.result and e.result.findings then
         return e.result.findings, code, out
      end
   end
   error("no findings in:\n" .. out)
end

local function clean()
   local out, code = doctor()
   assert.are.equal(0, code, out)
   assert.matches("3 members: nothing needs attention", out, 1, true)
end

describe("the doctor and defragmentation on the lab", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      c = labcluster.new(dir)
      c:reset(7, 9)
      c:inventory(labcluster.nodes(7, 9))
      helper.write(c.ws .. "/vars.lua", 'return { etcd_extra_config = { "quota-backend-bytes: 16777216" } }\n')
      local out, code = c:playbook("-e @vars.lua")
      assert(code == 0, out)
      c:seed(VIA, 100)
      ready = true
   end)

   it("finds nothing on a healthy cluster, also under --check, and --json gives the findings", function()
      if no_lab() then return end
      clean()
      local out, code = doctor("-C")
      assert.are.equal(0, code, out)
      assert.matches("nothing needs attention", out, 1, true)
      local list, jcode = findings()
      assert.are.equal(0, jcode)
      assert.are.same({}, list)
   end)

   it("finds a learner left behind, and the command it prints removes it", function()
      if no_lab() then return end
      -- etcd refuses a member add within 5 s of a member's start: retried
      local id
      for _ = 1, 100 do
         id = etcd.member_add(labcluster.urls(VIA)[1], c:tls(), "https://198.18.0.20:2380", true)
         if id then
            break
         end
         helper.run("sleep 0.1")
      end
      assert(id, "no learner added")
      local out, code = doctor()
      assert.are_not.equal(0, code)
      assert.matches("!! [learner] (unstarted https://198.18.0.20:2380) is a learner, not a voter", out, 1, true)
      local cmd = assert(out:match("fix:%s+(etcdctl member remove %x+)"), out)
      assert.matches("removed", c:node(7, ". /etc/profile.d/etcd.sh && " .. cmd))
      clean()
   end)

   it("finds a stopped member, a disabled unit and a configuration still at new, and tls-cluster.lua fixes them",
      function()
         if no_lab() then return end
         c:node(9, "systemctl stop etcd; systemctl disable etcd; sed -i 's/^initial-cluster-state: existing/"
            .. "initial-cluster-state: new/' /etc/etcd/etcd.conf.yaml")
         local list, code = findings()
         assert.are.equal(1, code)
         local seen = {}
         for _, f in ipairs(list) do
            seen[f.check .. ": " .. f.what:gsub(" %(.*", "")] = f.level
            assert.is_string(f.means)
            assert.matches("%S", f.fix)
         end
         assert.are.equal("attention", seen["health: etcd9 does not answer on https://198.18.0.19:2379"])
         assert.are.equal("attention", seen["unit: etcd9: etcd.service is disabled"])
         assert.are.equal("advice", seen["configuration: etcd9 is still configured with initial-cluster-state: new"])
         local out, pcode = c:playbook("-e @vars.lua")
         assert.are.equal(0, pcode, out)
         clean()
      end)

   it("finds a host of the inventory that is no member", function()
      if no_lab() then return end
      c:reset(10, 10)
      c:inventory(labcluster.nodes(7, 10))
      local out, code = doctor()
      assert.are.equal(1, code, out)
      assert.matches("!! [membership] etcd10 is in the inventory but not a member", out, 1, true)
      assert.matches("(joins it)", out, 1, true)
      c:inventory(labcluster.nodes(7, 9))
      clean()
   end)

   it("finds a clock off the controller's (as the node's date reports it)", function()
      if no_lab() then return end
      c:node(8, [[printf '#!/bin/sh\nif [ "$1" = +%%s ]; then echo $(( $(/bin/date +%%s) + 30 )); ]]
         .. [[else exec /bin/date "$@"; fi\n' > /usr/local/bin/date && chmod 0755 /usr/local/bin/date]])
      local out, code = doctor()
      c:node(8, "rm -f /usr/local/bin/date")
      assert.are.equal(1, code, out)
      assert.matches("!! %[clock%] etcd8's clock is 3%d s off the controller's", out)
      clean()
   end)

   it("finds certificates inside the warning window", function()
      if no_lab() then return end
      local out, code = doctor("-e etcd_renew_days=10000")
      assert.are.equal(1, code, out)
      assert.matches("!! %[certificate%] etcd7 serves a client certificate that expires in %d+ days", out)
      assert.matches("!! %[certificate%] etcd9 serves a peer certificate that expires in %d+ days", out)
   end)

   it("defragments every member, the leader last, under a writer with no failed write", function()
      if no_lab() then return end
      local out, code = c:run("defrag.lua", "-C -e force=yes")
      assert.are.equal(0, code, out)
      assert.matches("plan: [^\n]*defragment etcd%d, defragment etcd%d, move leadership to etcd%d, defragment etcd%d",
         out)
      c:under_load("defragment 3 members", VIA, function()
         out, code = c:run("defrag.lua", "-e force=yes")
         assert.are.equal(0, code, out)
      end)
      for _, n in ipairs({ "etcd7", "etcd8", "etcd9" }) do
         assert.matches(n .. ": [%d.]+ %a+ %-> [%d.]+ %a+ in", out)
      end
      -- the leader last: its defragmentation ends the report
      assert.matches("leadership moved to etcd%d; etcd%d: [%d.]+ %a+ %-> [%d.]+ %a+ in [%d.]+ s\n", out)
      -- nothing left to reclaim: the next run changes nothing
      out, code = c:run("defrag.lua")
      assert.are.equal(0, code, out)
      assert.matches("ok%s+controller defragment", out)
   end)

   it("finds NOSPACE, and defrag.lua recovers the cluster with every key kept", function()
      if no_lab() then return end
      local url = labcluster.urls(VIA)[1]
      local big = ("x"):rep(1000 * 1000)
      for i = 1, 40 do
         if not etcd.put(url, c:tls(), "spec/fill/" .. (i % 4), big) then
            break
         end
      end
      local out, code = doctor()
      assert.are.equal(1, code, out)
      assert.matches("!! %[alarm%] NOSPACE raised by etcd%d", out)
      assert.matches("fix:   etcdrun %-i [^\n]*/defrag%.lua", out)
      assert.is_nil(etcd.put(url, c:tls(), "spec/refused", "x"))
      out, code = c:run("defrag.lua")
      assert.are.equal(0, code, out)
      assert.matches("disarmed NOSPACE; a test write succeeded", out, 1, true)
      assert.is_true(etcd.put(url, c:tls(), "spec/accepted", "x"))
      for i = 0, 3 do
         etcd.call(url, "/v3/kv/deleterange", { key = etcd.b64("spec/fill/" .. i) }, c:tls())
      end
      local r = require("support.load").check(labcluster.urls(VIA), c:tls(), "spec/seed/", c.seeded)
      assert.are.equal(0, r.missing + r.wrong)
      clean()
   end)
end)
