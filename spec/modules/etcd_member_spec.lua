-- etcd_member decides from the member list as the cluster reports it, no
-- cluster needed; the lab case grows a 1-member cluster by a learner that is
-- then promoted, and removes it again.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_member"))

local function m(name, id, peer, learner)
   return { name = name, id = id, peer_urls = { peer }, client_urls = {}, is_learner = learner or false }
end

local THREE = { members = { m("etcd1", "1", "https://a:2380"), m("etcd2", "2", "https://b:2380"),
   m("etcd3", "3", "https://c:2380") }, via = "https://a:2379", leader = "1" }

local function args(over)
   local a = { name = "etcd4", peer_url = "https://d:2380", state = "learner", endpoints = { "https://a:2379" },
      ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key" }
   for k, v in pairs(over or {}) do
      a[k] = v
   end
   return a
end

describe("etcd_member plan", function()
   it("adds a new member as a learner, and gives the initial cluster it needs", function()
      local p = module.plan(mod, THREE, args())
      assert.is_true(p.changed)
      assert.is_true(p.add)
      assert.are.equal("would add etcd4 as a learner (https://d:2380)", p.msg)
      assert.are.equal("etcd1=https://a:2380,etcd2=https://b:2380,etcd3=https://c:2380,etcd4=https://d:2380",
         p.result.initial_cluster)
   end)

   it("leaves an existing member alone, learner or voter", function()
      local s = { members = { THREE.members[1], m("etcd4", "4", "https://d:2380", true) }, via = "u", leader = "1" }
      local p = module.plan(mod, s, args())
      assert.is_false(p.changed)
      assert.are.equal("etcd4 is a learner", p.msg)
      p = module.plan(mod, THREE, args({ name = "etcd2", peer_url = "https://b:2380", state = "voter" }))
      assert.is_false(p.changed)
      assert.are.equal("etcd2 is a voter", p.msg)
   end)

   it("promotes a learner", function()
      local s = { members = { THREE.members[1], m("etcd4", "4", "https://d:2380", true) }, via = "u", leader = "1" }
      local p = module.plan(mod, s, args({ state = "voter" }))
      assert.is_true(p.changed)
      assert.are.equal("4", p.promote)
      assert.are.equal("would promote etcd4 to a voter", p.msg)
   end)

   it("refuses to make a voter of a node that is not a member yet", function()
      local p = module.plan(mod, THREE, args({ state = "voter" }))
      assert.is_true(p.failed)
      assert.matches("add it as a learner and start it first", p.msg)
   end)

   it("moves a member whose peer URL differs when asked to (update)", function()
      local p = module.plan(mod, THREE, args({ name = "etcd2", peer_url = "https://z:2380", state = "voter",
         update = true }))
      assert.is_true(p.changed)
      assert.are.equal("2", p.update)
      assert.are.equal("would move etcd2 from https://b:2380 to https://z:2380 (member update)", p.msg)
   end)

   it("refuses a member whose peer URL differs (that is a member update)", function()
      local p = module.plan(mod, THREE, args({ name = "etcd2", peer_url = "https://z:2380" }))
      assert.is_true(p.failed)
      assert.matches("etcd2 is a member with peer URL https://b:2380, not https://z:2380", p.msg)
   end)

   it("removes a follower; moves leadership away first from a leader", function()
      local p = module.plan(mod, THREE, args({ name = "etcd3", state = "absent" }))
      assert.is_true(p.changed)
      assert.are.equal("3", p.id)
      assert.is_nil(p.move_to)
      assert.are.equal("would remove etcd3 (a voter; 2 voters left)", p.msg)
      p = module.plan(mod, THREE, args({ name = "etcd1", state = "absent" }))
      assert.are.equal("2", p.move_to)
      assert.are.equal("would move leadership away and remove etcd1 (a voter; 2 voters left)", p.msg)
      assert.are.equal("etcd2=https://b:2380,etcd3=https://c:2380", p.result.initial_cluster)
   end)

   it("never removes the last voter; an absent member is fine", function()
      local one = { members = { m("etcd1", "1", "https://a:2380") }, via = "u", leader = "1" }
      local p = module.plan(mod, one, args({ name = "etcd1", state = "absent" }))
      assert.is_true(p.failed)
      assert.matches("the last voter", p.msg)
      p = module.plan(mod, THREE, args({ name = "etcd9", state = "absent" }))
      assert.is_false(p.changed)
      assert.are.equal("etcd9 is not a member", p.msg)
   end)
end)

describe("etcd_member on the lab", function()
   local helper = require("support.helper")
   local lab = require("support.lab")
   local modtest = require("support.modtest")
   local localhost = require("etcdrun.localhost")
   local etcd = require("etcdrun.etcd")
   local q = helper.q
   local dir, why_not, ws
   local NODES = { 6, 7, 8 }

   local function node(i, cmd)
      return lab.ssh(dir, "etcd" .. i, cmd)
   end

   local function reset()
      for _, i in ipairs(NODES) do
         node(i, "systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null; rm -rf /var/lib/etcd /etc/etcd "
            .. "/opt/etcd /etc/systemd/system/etcd.service /etc/profile.d/etcd.sh; systemctl daemon-reload; "
            .. "userdel etcd 2>/dev/null; groupdel etcd 2>/dev/null; true")
      end
   end

   setup(function()
      dir, why_not = lab.ensure(10)
      if not dir then
         return
      end
      reset()
      ws = helper.tmpdir()
      local lines = { "[etcd]" }
      for _, i in ipairs(NODES) do
         lines[#lines + 1] = ("etcd%d ansible_host=198.18.0.%d ansible_user=root"):format(i, 10 + i)
      end
      lines[#lines + 1] = "[etcd:vars]\nansible_ssh_common_args=-F " .. dir .. "/ssh_config"
      helper.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n")
      local version = helper.read(dir .. "/etcd_version"):gsub("%s+", "")
      local url = helper.read(dir .. "/release_url"):gsub("%s+", "")
      local out, err, code = helper.run(("cd %s && %s -i hosts %s/playbooks/tls-cluster.lua -e etcd_version=%s "
         .. "-e etcd_release_url=%s/v%s"):format(q(ws), q(helper.etcdrun), q(lab.root), version, url, version))
      assert(code == 0, out .. err)
   end)

   teardown(function()
      if dir then
         reset()
      end
   end)

   it("removes a member, adds the wiped node back as a learner, promotes it once in sync", function()
      if not dir then
         pending(why_not)
         return
      end
      local tls = { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
      local endpoints = { "https://198.18.0.16:2379", "https://198.18.0.17:2379" }
      local function run(state, extra, opts)
         local a = { name = "etcd8", peer_url = "https://198.18.0.18:2380", state = state, endpoints = endpoints,
            ca = tls.ca, cert = tls.cert, key = tls.key }
         for k, v in pairs(extra or {}) do
            a[k] = v
         end
         return modtest.run("etcd_member", a, localhost.new(), opts)
      end
      assert(etcd.put(endpoints[1], tls, "spec/member/before", "kept"))
      -- remove etcd8 (moving leadership away first if it leads)
      local r = run("absent")
      assert.is_false(r.failed, r.msg)
      assert.is_true(r.changed)
      assert.are.equal(2, #assert(etcd.members(endpoints[1], tls)))
      node(8, "systemctl stop etcd; rm -rf /var/lib/etcd/etcd8.etcd/member")
      -- check mode: would add, adds nothing
      r = run("learner", nil, { check = true })
      assert.is_true(r.changed)
      assert.are.equal(2, #assert(etcd.members(endpoints[1], tls)))
      -- add it back as a learner, start the wiped node as a member of the existing cluster
      r = run("learner")
      assert.is_false(r.failed, r.msg)
      assert.matches("etcd8=https://198%.18%.0%.18:2380", r.initial_cluster)
      node(8, ("sed -i -e 's|^initial-cluster:.*|initial-cluster: %s|' -e 's|^initial-cluster-state:.*|"
         .. "initial-cluster-state: existing|' /etc/etcd/etcd.conf.yaml && systemctl start --no-block etcd")
         :format(r.initial_cluster))
      local list = assert(etcd.members(endpoints[1], tls))
      assert.are.equal(3, #list)
      for _, x in ipairs(list) do
         assert.are.equal(x.peer_urls[1] == "https://198.18.0.18:2380", x.is_learner)
      end
      -- promote: retried until the learner is in sync
      r = run("voter", { timeout = 60 })
      assert.is_false(r.failed, r.msg)
      list = assert(etcd.members(endpoints[1], tls))
      assert.are.equal(3, #list)
      for _, x in ipairs(list) do
         assert.is_false(x.is_learner)
      end
      assert.is_true(etcd.wait_healthy({ endpoints[1], endpoints[2], "https://198.18.0.18:2379" }, tls, 30))
      assert.are.equal("kept", etcd.get("https://198.18.0.18:2379", tls, "spec/member/before"))
      -- and converged: nothing more to do
      r = run("voter")
      assert.is_false(r.changed, r.msg)
   end)
end)
