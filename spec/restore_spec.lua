-- Backups and restore on the lab's real nodes: playbooks/snapshot.lua takes a
-- verified snapshot of a 3.4.23 cluster on etcd7..etcd9; playbooks/restore.lua
-- refuses a corrupt snapshot before stopping anything, asks first, shows its
-- plan under --check, brings the cluster back after every data dir was
-- wiped (every seeded key back with its value, the install playbook then
-- changing nothing), runs again after it was killed half-way, and restores
-- the same snapshot onto other nodes (etcd4..etcd6) running 3.5.16, whose
-- etcdutl bumps the revision.
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local load = require("support.load")
local etcd = require("etcdrun.etcd")
local cjson = require("cjson")

local q = helper.q
local NODES = 10
local VIA = { 7, 8, 9 }
local dir, why_not, c, snap

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   if not snap then
      pending("needs the cluster and the snapshot of the setup, which did not come about")
      return true
   end
   return false
end

local function pids(cl, via)
   local t = {}
   for _, i in ipairs(via) do
      t[#t + 1] = cl:node(i, "systemctl show -p MainPID --value etcd")
   end
   return table.concat(t, " ")
end

-- every seeded key back with its value, on `via`'s cluster
local function seeded_intact(cl, via)
   local r = load.check(labcluster.urls(via), cl:tls(), "spec/seed/", c.seeded)
   assert.are.equal(0, r.missing + r.wrong, table.concat(r.examples, "; "))
   assert.is_true(r.found > 0)
end

local function revision(cl, via)
   local r = assert(etcd.call(labcluster.urls(via)[1], "/v3/kv/range", { key = "AA==" }, cl:tls()))
   return tonumber(r.header.revision)
end

describe("snapshot and restore on the lab", function()
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
      c:seed(VIA, 300)
      out, code = c:run("snapshot.lua", "--json")
      assert(code == 0, out)
      -- the task's result in the --json events: the path and the figures
      local function find(t)
         if type(t) ~= "table" then
            return nil
         elseif type(t.path) == "string" and t.path:match("%.db$") and t.revision then
            return t
         end
         for _, x in pairs(t) do
            local r = find(x)
            if r then
               return r
            end
         end
      end
      for line in out:gmatch("[^\n]+") do
         local ok, e = pcall(cjson.decode, line)
         snap = snap or (ok and find(e)) or nil
      end
      assert(snap, "no snapshot in the --json output:\n" .. out)
   end)

   it("snapshot.lua keeps a verified snapshot with its figures and a checksum file", function()
      if no_lab() then return end
      assert.matches("/snapshots/etcd%-cluster%-1%-%d+T%d+Z%-rev%d+%.db$", snap.path)
      assert.is_true(snap.keys >= 300, tostring(snap.keys))
      assert.is_true(snap.revision > 300)
      assert.are.equal(snap.size, #helper.read(snap.path))
      assert.matches("^" .. snap.sha256 .. "  ", helper.read(snap.path .. ".sha256"))
      local out, code = c:run("snapshot.lua")
      assert.are.equal(0, code, out)
      assert.matches("changed%s+etcd7%s+snapshot", out)
      assert.matches("revision %d+, %d+ keys", out)
   end)

   it("refuses a corrupt snapshot before stopping anything", function()
      if no_lab() then return end
      local bad = c.ws .. "/corrupt.db"
      local data = helper.read(snap.path)
      local mid = #data // 2
      helper.write(bad, data:sub(1, mid - 1) .. string.char((data:byte(mid) + 1) % 256) .. data:sub(mid + 1))
      local before = pids(c, VIA)
      local out, code = c:run("restore.lua", "-e snapshot=" .. q(bad) .. " -e confirm=yes")
      assert.are_not.equal(0, code)
      assert.matches("does not match the sha256 at its end", out, 1, true)
      assert.matches("refused before anything was stopped", out, 1, true)
      -- a db file copied out of a data dir has no hash: refused too
      helper.write(bad, data:sub(1, -33))
      out, code = c:run("restore.lua", "-e snapshot=" .. q(bad) .. " -e confirm=yes")
      assert.are_not.equal(0, code)
      assert.matches("not a snapshot made by etcd", out, 1, true)
      assert.are.equal(before, pids(c, VIA))
   end)

   it("shows its plan under --check and asks before it stops anything", function()
      if no_lab() then return end
      local before = pids(c, VIA)
      local out, code = c:run("restore.lua", "-C -e snapshot=" .. q(snap.path))
      assert.are.equal(0, code, out)
      assert.matches("This stops etcd on 3 members (etcd7, etcd8, etcd9)", out, 1, true)
      assert.matches("changed%s+etcd8%s+restore", out)
      out, code = c:run("restore.lua", "-e snapshot=" .. q(snap.path) .. " </dev/null")
      assert.are_not.equal(0, code)
      assert.matches("Refusing without confirmation: run with -e confirm=yes", out, 1, true)
      assert.are.equal(before, pids(c, VIA))
   end)

   it("brings a cluster whose every data dir was wiped back, every key with its value", function()
      if no_lab() then return end
      for _, i in ipairs(VIA) do
         c:node(i, ("systemctl stop etcd; rm -rf /var/lib/etcd/etcd%d.etcd"):format(i))
      end
      local out, code = c:run("restore.lua", "-e snapshot=" .. q(snap.path) .. " -e confirm=yes")
      assert.are.equal(0, code, out)
      assert.matches("changed%s+etcd9%s+restore", out)
      assert.are.equal("etcd7 etcd8 etcd9", (c:members(VIA)))
      seeded_intact(c, VIA)
      -- the install playbook finds a cluster it manages, and changes nothing
      out, code = c:playbook()
      assert.are.equal(0, code, out)
      assert.is_nil(out:match("changed%s+etcd%d"), out)
   end)

   it("runs again after it was killed half-way, and moves the data it replaces aside", function()
      if no_lab() then return end
      local log = c.ws .. "/killed.log"
      local r = helper.run(([[
         cd %s && %s -i hosts %s/playbooks/restore.lua -e snapshot=%s -e confirm=yes > %s 2>&1 & pid=$!
         for i in $(seq 1000); do grep -Eq 'changed +etcd[0-9] +restore' %s && break; sleep 0.01; done
         kill -9 $pid; wait $pid; echo rc=$?]]):format(q(c.ws), q(helper.etcdrun), q(lab.root), q(snap.path),
         q(log), q(log)))
      assert.matches("rc=137", r, helper.read(log))
      local out, code = c:run("restore.lua", "-e snapshot=" .. q(snap.path) .. " -e confirm=yes")
      assert.are.equal(0, code, out)
      assert.are.equal("etcd7 etcd8 etcd9", (c:members(VIA)))
      seeded_intact(c, VIA)
      assert.matches("etcd7%.etcd%.etcdrun%-replaced%-%d+T%d+Z", c:node(7, "ls /var/lib/etcd"))
   end)

   it("restores the snapshot onto other nodes running 3.5.16, the revision bumped", function()
      if no_lab() then return end
      local target = (helper.read(dir .. "/etcd_upgrade_version") or ""):gsub("%s+", "")
      local c2 = labcluster.new(dir, target)
      c2:reset(4, 6)
      c2:inventory(labcluster.nodes(4, 6))
      local out, code = c2:playbook()
      assert.are.equal(0, code, out)
      out, code = c2:run("restore.lua", "-e snapshot=" .. q(snap.path) .. " -e confirm=yes")
      assert.are.equal(0, code, out)
      assert.matches("restored as etcd5 of a new cluster (revision +1000000000)", out, 1, true)
      assert.are.equal("etcd4 etcd5 etcd6", (c2:members({ 4, 5, 6 })))
      seeded_intact(c2, { 4, 5, 6 })
      assert.is_true(revision(c2, { 4, 5, 6 }) > 1000000000)
      c2:reset(4, 6)
   end)
end)
