-- spec/support/load.lua and writer.lua on a real cluster (etcd8..etcd10 of
-- the lab): a follower restarted under load loses and refuses nothing, and a
-- cluster stopped outright makes the writer count failures, so a spec that
-- asserts "no failed write" with this harness can fail.
local helper = require("support.helper")
local lab = require("support.lab")
local load = require("support.load")
local etcd = require("etcdrun.etcd")
local runtime = require("etcdrun.core.runtime")

local q = helper.q
local NODES, FIRST, LAST = 10, 8, 10
local dir, why_not

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

local function node(i, cmd)
   return lab.ssh(dir, "etcd" .. i, cmd)
end

-- The same command on every member at once: stopping them one after the
-- other would leave a quorum for a while, and a blocking `systemctl start`
-- (Type=notify) on one member waits for the others.
local function on_members(cmd)
   local jobs = {}
   for i = FIRST, LAST do
      jobs[#jobs + 1] = ("timeout 60 ssh -F %s etcd%d %s >/dev/null 2>&1 &"):format(q(dir .. "/ssh_config"), i, q(cmd))
   end
   helper.run(table.concat(jobs, " ") .. " wait")
end

-- as spec/tls_cluster_spec.lua leaves them: no etcd at all
local function reset_members()
   on_members("systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null; rm -rf /var/lib/etcd /etc/etcd "
      .. "/opt/etcd /etc/systemd/system/etcd.service /etc/profile.d/etcd.sh; systemctl daemon-reload; "
      .. "userdel etcd 2>/dev/null; groupdel etcd 2>/dev/null; true")
end

local function install(ws)
   local lines = { "[etcd]" }
   for i = FIRST, LAST do
      lines[#lines + 1] = ("etcd%d ansible_host=198.18.0.%d ansible_user=root"):format(i, 10 + i)
   end
   lines[#lines + 1] = "[etcd:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. dir .. "/ssh_config"
   helper.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n")
   local version = helper.read(dir .. "/etcd_version"):gsub("%s+", "")
   local url = helper.read(dir .. "/release_url"):gsub("%s+", "")
   return helper.run(("cd %s && %s -i hosts %s/playbooks/tls-cluster.lua -e etcd_version=%s -e etcd_release_url=%s/v%s")
      :format(q(ws), q(helper.etcdrun), q(lab.root), version, url, version))
end

describe("the load harness (spec/support/load.lua) on the lab", function()
   local ws, tls, urls, seeded

   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      reset_members()
      ws = helper.tmpdir()
      local out, err, code = install(ws)
      assert.are.equal(0, code, out .. err)
      tls = { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
      urls = {}
      for i = FIRST, LAST do
         urls[#urls + 1] = ("https://198.18.0.%d:2379"):format(10 + i)
      end
   end)

   teardown(function()
      if dir then
         reset_members()
      end
   end)

   it("sees every write acknowledged and kept while a follower restarts", function()
      if no_lab() then return end
      seeded = load.seed(urls, tls, "spec/load/seed/", 20)
      -- the follower first in the writer's list: the writer is using it when
      -- it goes down, so the restart also exercises the failover
      local follower, order = nil, {}
      for i = FIRST, LAST do
         local url = urls[i - FIRST + 1]
         if not follower and not assert(etcd.status(url, tls)).is_leader then
            follower = i
            table.insert(order, 1, url)
         else
            order[#order + 1] = url
         end
      end
      local w = load.start({ endpoints = order, tls = tls, prefix = "spec/load/w/", dir = ws })
      finally(function()
         w:stop() -- when an assertion below fails first
      end)
      local before = node(follower, "systemctl show -p InvocationID --value etcd")
      -- down for at least 0.3 s: a plain restart can fall between two of
      -- the writer's puts (50 ms apart) and then exercises no failover
      local out, code = node(follower, "systemctl stop etcd && sleep 0.3 && systemctl start etcd")
      assert.are.equal(0, code, out)
      helper.run("sleep 1")
      local s = w:stop()
      assert.are_not.equal(before, node(follower, "systemctl show -p InvocationID --value etcd"))
      assert.are.equal(0, s.failed, load.describe(s))
      assert.is_true(s.written > 20, load.describe(s))
      assert.is_true(s.failovers > 0, load.describe(s))
      local acked, n = load.acked(s)
      assert.are.equal(s.written, n)
      local got = load.check(urls, tls, "spec/load/w/", acked)
      assert.are.same({ s.written, 0, 0 }, { got.found, got.missing, got.wrong }, table.concat(got.examples, "\n"))
      got = load.check(urls, tls, "spec/load/seed/", seeded)
      assert.are.same({ 20, 0, 0 }, { got.found, got.missing, got.wrong }, table.concat(got.examples, "\n"))
   end)

   it("counts failed writes while every member is stopped, and none is lost", function()
      if no_lab() then return end
      local w = load.start({ endpoints = urls, tls = tls, prefix = "spec/load/down/", dir = ws, name = "down" })
      finally(function()
         on_members("systemctl start etcd") -- whatever failed below, the cluster comes back
         w:stop()
      end)
      -- The outage must outlast a write's 5 s deadline (a shorter one only
      -- shows as latency, as it would to a real client): the stop itself
      -- takes about 7 s here (the leader, alone, tries to hand over its
      -- leadership), and the cluster stays down until a failure is counted.
      on_members("systemctl stop etcd")
      local deadline = runtime.monotonic() + 10
      while (w:summary() or { failed = 0 }).failed == 0 and runtime.monotonic() < deadline do
         helper.run("sleep 0.1")
      end
      on_members("systemctl start etcd")
      assert(etcd.wait_healthy(urls, tls, 20))
      helper.run("sleep 1")
      local s = w:stop()
      assert.is_true(s.failed > 0, load.describe(s))
      assert.matches("seq %d+ at [%d.]+ s: .*198%.18%.0%.", s.failures[1])
      assert.is_true(#s.failures <= 5)
      assert.is_true(s.written > 10, load.describe(s)) -- before the stop and after the start
      local got = load.check(urls, tls, "spec/load/down/", (load.acked(s)))
      assert.are.same({ s.written, 0, 0 }, { got.found, got.missing, got.wrong }, table.concat(got.examples, "\n"))
      -- the cluster restored with its data: the first case's seeds are all there
      if seeded then
         got = load.check(urls, tls, "spec/load/seed/", seeded)
         assert.are.equal(0, got.missing + got.wrong, table.concat(got.examples, "\n"))
      end
   end)
end)
