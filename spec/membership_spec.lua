-- Day-2 membership with playbooks/tls-cluster.lua on the lab's real nodes,
-- each change under load: a writer puts a key every 50 ms for the whole run
-- (spec/support/load.lua) and every case asserts no failed write, every
-- acknowledged and every seeded key intact, and the member list equal to the
-- inventory, healthy over mutual TLS. Nodes etcd1..etcd6; the cases build on
-- each other in order (one cluster, grown, shrunk, repaired).
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local etcd = require("etcdrun.etcd")
local lock = require("etcdrun.lock")

local q = helper.q
local NODES = 10
local dir, why_not, c, ws
local nodes, urls = labcluster.nodes, labcluster.urls

local function node(i, cmd)
   return c:node(i, cmd)
end

local function reset_nodes(from, to)
   c:reset(from, to)
end

local function inventory(members, retired)
   c:inventory(members, retired)
end

local function command(args)
   return c:command(args)
end

local function playbook(args)
   return c:playbook(args)
end

local function tls()
   return c:tls()
end

local function members(via)
   return c:members(via)
end

local function under_load(label, via, fn)
   return c:under_load(label, via, fn)
end

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   if not c.seeded then
      pending("needs the 3-member cluster of the first case, which did not run")
      return true
   end
   return false
end

describe("membership changes on the lab, under load", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      c = labcluster.new(dir)
      ws = c.ws
      reset_nodes(1, 6)
      inventory(nodes(1, 3))
      local out, code = playbook()
      assert(code == 0, out)
      c:seed({ 1, 2, 3 }, 50)
   end)

   teardown(function()
      if dir then
         lab.run("heal", "etcd3")
         lab.run("addr", "etcd2", "del", "198.18.0.112")
         reset_nodes(1, 6)
      end
   end)

   it("shows a grow under --check as a plan and changes nothing", function()
      if no_lab() then return end
      inventory(nodes(1, 5))
      local out, code = playbook("--check")
      assert.are.equal(0, code, out)
      assert.matches("membership plan:\n%s+0%. snapshot from etcd1\n%s+1%. add etcd4 "
         .. "%(https://198%.18%.0%.14:2380%) as a learner, start it, promote it once in sync: 4 voters, quorum 3,"
         .. " 4 healthy\n%s+2%. add etcd5", out)
      assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
      assert.are.equal("absent\n", node(4, "test -e /etc/etcd && echo present || echo absent"))
      assert.is_nil(helper.read(ws .. "/snapshots"), "a snapshot was taken under --check")
   end)

   it("grows 3 -> 4 -> 5, each member a learner first, with no failed write", function()
      if no_lab() then return end
      local before = node(1, "systemctl show -p InvocationID --value etcd")
      under_load("grow 3 -> 4 -> 5", { 1, 2, 3 }, function()
         inventory(nodes(1, 4))
         local out, code = playbook()
         assert.are.equal(0, code, out)
         assert.matches("changed%s+etcd4%s+add as a learner", out)
         assert.matches("changed%s+etcd4%s+promote once in sync", out)
         assert.matches("snapshot from etcd1 %(before 1 membership change%): \n?[^\n]*%.db %(revision %d+", out)
         assert.are.equal("etcd1 etcd2 etcd3 etcd4", (members({ 1 })))
         inventory(nodes(1, 5))
         out, code = playbook()
         assert.are.equal(0, code, out)
      end)
      local names, learners = members({ 1 })
      assert.are.equal("etcd1 etcd2 etcd3 etcd4 etcd5", names)
      assert.are.equal(0, learners)
      -- the members that were there were not restarted: their configuration
      -- changed only in initial-cluster
      assert.are.equal(before, node(1, "systemctl show -p InvocationID --value etcd"))
      assert.matches("etcd5=https://198.18.0.15:2380", node(1, "cat /etc/etcd/etcd.conf.yaml"), 1, true)
      -- and a re-run changes nothing
      local out, code = playbook()
      assert.are.equal(0, code, out)
      assert.matches("etcd1%s+: ok=%d+%s+changed=0 ", out)
      assert.matches("controller%s+: ok=%d+%s+changed=0 ", out)
   end)

   it("never removes a member the inventory lost without the operator's word", function()
      if no_lab() then return end
      inventory(nodes(1, 3), { "etcd4", "etcd5" })
      local out, code = playbook()
      assert.are_not.equal(0, code)
      assert.matches("etcd4 %(https://198%.18%.0%.14:2380%) is a member but not in the inventory: it is left alone%."
         .. " To remove it from the cluster: %-e etcd_remove=etcd4", out)
      assert.are.equal("etcd1 etcd2 etcd3 etcd4 etcd5", (members({ 1 })))
      assert.are.equal("active\n", node(5, "systemctl is-active etcd"))
   end)

   it("refuses to start while another run holds the cluster's lock, and takes over a dead run's", function()
      if no_lab() then return end
      inventory(nodes(1, 5))
      -- another etcdrun holds the lock the way a run does, until killed
      local holder = ws .. "/holder.lua"
      helper.write(holder, ([[
         local lock = require("etcdrun.lock")
         local tls = { ca = %q, cert = %q, key = %q }
         assert(lock.acquire("https://198.18.0.11:2379", tls, lock.me("spec holder"), 900))
         io.open(%q, "w"):close()
         while true do os.execute("sleep 1") end]]):format(tls().ca, tls().cert, tls().key, ws .. "/held"))
      local pid = helper.run(("%s %s >%s/holder.log 2>&1 & echo $!"):format(q(helper.etcdrun), q(holder), q(ws)))
         :match("%d+")
      finally(function()
         helper.run("kill -9 " .. pid .. " 2>/dev/null; true")
      end)
      for _ = 1, 100 do
         if helper.read(ws .. "/held") then
            break
         end
         helper.run("sleep 0.1")
      end
      assert.is_truthy(helper.read(ws .. "/held"), helper.read(ws .. "/holder.log"))
      local out, code = playbook()
      assert.are_not.equal(0, code)
      assert.matches("another run holds the cluster's lock %(etcdrun/lock%): [^\n]*pid " .. pid .. ",[^\n]*spec holder",
         out)
      -- the holder dies (kill -9): the next run from this machine takes over
      helper.run("kill -9 " .. pid .. "; sleep 0.2")
      out, code = playbook()
      assert.are.equal(0, code, out)
      assert.is_false(lock.read(urls({ 1 })[1], tls(), lock.KEY), "the lock was not given back")
   end)

   it("shrinks 5 -> 3 when named, cleaning the removed nodes up, with no failed write", function()
      if no_lab() then return end
      under_load("shrink 5 -> 3", { 1, 2, 3 }, function()
         inventory(nodes(1, 3), { "etcd4", "etcd5" })
         local out, code = playbook("-e etcd_remove=etcd4,etcd5")
         assert.are.equal(0, code, out)
         assert.matches("1%. remove etcd4 %(named in etcd_remove%): 4 voters, quorum 3, 4 healthy", out)
      end)
      assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
      for i = 4, 5 do
         assert.are.equal("inactive\n", node(i, "systemctl is-active etcd || true"))
         assert.are.equal("disabled\n", node(i, "systemctl is-enabled etcd || true"))
         assert.matches("^/var/lib/etcd/etcd" .. i .. "%.etcd%.etcdrun%-removed%-%d+T%d+Z\n$",
            node(i, "ls -d /var/lib/etcd/etcd*.etcd.etcdrun-removed-*"))
         assert.are.equal("", node(i, "ls /etc/etcd/ssl/*.key 2>/dev/null || true"))
         assert.is_truthy(helper.read(ws .. "/pki/retired/etcd" .. i .. "-peer.crt"))
         assert.is_nil(helper.read(ws .. "/pki/etcd" .. i .. "-peer.crt"))
      end
      -- run again with the same words: nothing left to do
      local out, code = playbook("-e etcd_remove=etcd4,etcd5")
      assert.are.equal(0, code, out)
      assert.matches("etcd1%s+: ok=%d+%s+changed=0 ", out)
   end)

   it("converges when killed in the middle of a grow", function()
      if no_lab() then return end
      reset_nodes(4, 4)
      under_load("killed mid-grow, run again", { 1, 2, 3 }, function()
         inventory(nodes(1, 4))
         local log = ws .. "/killed.log"
         local r = helper.run(([[
            %s > %s 2>&1 & pid=$!
            for i in $(seq 500); do grep -q 'etcd4 *add as a learner' %s && break; sleep 0.02; done
            kill -9 $pid; wait $pid; echo rc=$?]]):format(command(), q(log), q(log)))
         assert.matches("rc=137", r, helper.read(log))
         assert.matches("add as a learner", helper.read(log))
         local out, code = playbook()
         assert.are.equal(0, code, out)
      end)
      local names, learners = members({ 1 })
      assert.are.equal("etcd1 etcd2 etcd3 etcd4", names)
      assert.are.equal(0, learners)
   end)

   it("replaces a member whose node was wiped, removing it before adding it back", function()
      if no_lab() then return end
      -- back to 3 first (etcd4 named), then wipe etcd3 as a rebuilt node would be
      inventory(nodes(1, 3), { "etcd4" })
      local out, code = playbook("-e etcd_remove=etcd4")
      assert.are.equal(0, code, out)
      reset_nodes(3, 3)
      under_load("replace a wiped member", { 1, 2 }, function()
         out, code = playbook()
         assert.are_not.equal(0, code)
         assert.matches("etcd3 is a member, but its node has no data and etcd does not run there "
            .. "%(wiped or rebuilt%?%): to replace it, run with %-e etcd_replace=etcd3", out)
         out, code = playbook("-e etcd_replace=etcd3")
         assert.are.equal(0, code, out)
         assert.matches(
            "1%. remove etcd3 %(replaced, does not answer%): 2 voters, quorum 2, 2 healthy\n%s+2%. add etcd3", out)
      end)
      assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
   end)

   it("removes a learner that never starts again, says why, and joins it on the next run; a second run meanwhile"
      .. " is refused", function()
      if no_lab() then return end
      reset_nodes(4, 4)
      under_load("a learner that never starts, then joins", { 1, 2, 3 }, function()
         -- etcd refuses to start with an election timeout under 5 heartbeats
         local bad = { "etcd4", 4, "etcd_election_timeout=100" }
         inventory({ { "etcd1", 1 }, { "etcd2", 2 }, { "etcd3", 3 }, bad })
         -- run A waits for the learner (up to 8 s) holding the lock; run B,
         -- started meanwhile on the same inventory, is refused and names A
         local log = ws .. "/run-a.log"
         -- (exec: the PID is etcdrun's, the one its lock names)
         local a = command("-e etcd_join_timeout=8"):gsub("&& ", "&& exec ", 1)
         local pid = helper.run(("(%s) > %s 2>&1 & echo $!"):format(a, q(log))):match("%d+")
         helper.run(("for i in $(seq 1000); do grep -q 'etcd4 *add as a learner' %s && break; sleep 0.02; done")
            :format(q(log)))
         local b, bcode = playbook()
         assert.are_not.equal(0, bcode, b)
         assert.matches("another run holds the cluster's lock %(etcdrun/lock%): [^\n]*%(pid " .. pid .. ",", b)
         helper.run(("while kill -0 %s 2>/dev/null; do sleep 0.1; done"):format(pid))
         local out = helper.read(log)
         assert.matches("promoting etcd4: [^\n]*in sync with leader[^\n]*; after 8 s the learner was removed from the"
            .. " cluster again", out)
         local code
         assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
         inventory(nodes(1, 4))
         out, code = playbook()
         assert.are.equal(0, code, out)
      end)
      assert.are.equal("etcd1 etcd2 etcd3 etcd4", (members({ 1 })))
      inventory(nodes(1, 3), { "etcd4" })
      local out, code = playbook("-e etcd_remove=etcd4")
      assert.are.equal(0, code, out)
   end)

   it("replaces a member whose node is gone (cut off) with a new node", function()
      if no_lab() then return end
      -- etcd3 must not lead: a leader cut off means an election, which is not
      -- what this case measures
      local t = tls()
      local s3 = assert(etcd.status(urls({ 3 })[1], t))
      if s3.is_leader then
         local s1 = assert(etcd.status(urls({ 1 })[1], t))
         assert(etcd.move_leader(urls({ 3 })[1], t, s1.member_id))
         helper.run("sleep 1")
      end
      lab.run("cut", "etcd3")
      reset_nodes(6, 6)
      under_load("replace a cut-off member by a new node", { 1, 2 }, function()
         -- the name etcd3 now on the lab's node 6
         inventory({ { "etcd1", 1 }, { "etcd2", 2 }, { "etcd3", 6 } })
         local out, code = playbook("-e etcd_replace=etcd3")
         assert.are.equal(0, code, out)
         assert.matches("2%. add etcd3 %(https://198%.18%.0%.16:2380%)", out)
      end)
      assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
      local list = assert(etcd.members(urls({ 1 })[1], t))
      for _, m in ipairs(list) do
         if m.name == "etcd3" then
            assert.are.equal("https://198.18.0.16:2380", m.peer_urls[1])
         end
      end
   end)

   it("moves a member whose address changed (member update), one at a time, with no failed write", function()
      if no_lab() then return end
      local _, code = lab.run("addr", "etcd2", "add", "198.18.0.112")
      assert.are.equal(0, code)
      local members_now = { { "etcd1", 1 }, { "etcd2", 2, "etcd_address=198.18.0.112" }, { "etcd3", 6 } }
      under_load("move a member to a new address", { 1, 6 }, function()
         inventory(members_now)
         local out, rc = playbook()
         assert.are.equal(0, rc, out)
         assert.matches("1%. move etcd2 from https://198%.18%.0%.12:2380 to https://198%.18%.0%.112:2380", out)
         assert.matches("changed%s+etcd2%s+restart on the new address", out)
      end)
      local list = assert(etcd.members(urls({ 1 })[1], tls()))
      for _, m in ipairs(list) do
         if m.name == "etcd2" then
            assert.are.same({ "https://198.18.0.112:2380" }, m.peer_urls)
            assert.are.same({ "https://198.18.0.112:2379" }, m.client_urls)
         end
      end
      assert.are.equal("etcd1 etcd2 etcd3", (members({ 1 })))
      -- its certificates name only the new address once the move is done
      local san = helper.run("openssl x509 -noout -ext subjectAltName -in " .. q(ws .. "/pki/etcd2-peer.crt"))
      assert.matches("198.18.0.112", san, 1, true)
      assert.is_nil(san:find("198.18.0.12,", 1, true))
      local out, rc = playbook()
      assert.are.equal(0, rc, out)
      assert.matches("etcd2%s+: ok=%d+%s+changed=0 ", out)
   end)
end)
