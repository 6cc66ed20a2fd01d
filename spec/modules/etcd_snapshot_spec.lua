-- etcd_snapshot decides from what gather found (etcdctl there, the member's
-- health, the snapshots kept), no node needed; one lab case takes real
-- snapshots from a 1-member TLS cluster on etcd10 made by tls-cluster.lua.
local plancases = require("support.plancases")
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")
local NONE = plancases.NONE
local OK = { dir = "/s", names = {}, etcdctl = true, healthy = true, tmp_dir = "/var/lib/etcd",
   health = "https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.9ms" }
local function state(over)
   return plancases.merge(OK, over)
end
local KEPT = { -- as fs.list returns them: sorted by name, other files mixed in
   "etcd-20260101T000000Z-rev10.db", "etcd-20260101T000000Z-rev10.db.sha256", "etcd-20260101T000000Z-rev9.db",
   "etcd-20260102T000000Z-rev12-2.db", "etcd-20260102T000000Z-rev12.db", "etcd-prod-20250101T000000Z-rev1.db",
   "etcd-20260103T000000Z-rev15.db", "notes.txt", ".etcd-20260104T000000Z-rev16.db.incoming",
}

describe("etcd_snapshot plan", function()
   plancases.run(it, "etcd_snapshot", {
      { name = "a healthy member: a deliberate change, with the files before and after",
         state = state(), args = { dir = "snap" }, opts = { host = "etcd10" },
         want = { changed = true, failed = NONE, msg = "would take a snapshot from etcd10 into /s",
            dir = "/s", tmp_dir = "/var/lib/etcd",
            diff = { path = "/s", before = "", after = "etcd-<UTC time>-rev<revision>.db\n" } } },
      { name = "retention names the oldest of this cluster's snapshots (time, then revision, then sequence)",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 4, reason = "before adding etcd4" },
         opts = { host = "etcd10" },
         want = { changed = true, msg = "would take a snapshot from etcd10 into /s (before adding etcd4); retention"
            .. " (keep 4) would delete etcd-20260101T000000Z-rev9.db, etcd-20260101T000000Z-rev10.db",
            diff = { path = "/s", before = "etcd-20260101T000000Z-rev9.db\netcd-20260101T000000Z-rev10.db\n"
               .. "etcd-20260102T000000Z-rev12.db\netcd-20260102T000000Z-rev12-2.db\netcd-20260103T000000Z-rev15.db\n",
               after = "etcd-20260102T000000Z-rev12.db\netcd-20260102T000000Z-rev12-2.db\n"
                  .. "etcd-20260103T000000Z-rev15.db\netcd-<UTC time>-rev<revision>.db\n" } } },
      { name = "another cluster's files are its own",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 1, cluster = "etcd-prod" },
         want = { msg = "would take a snapshot from h into /s; retention (keep 1) would delete"
            .. " etcd-prod-20250101T000000Z-rev1.db" } },
      { name = "retain = 0 keeps every snapshot",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 0 },
         want = { changed = true, msg = "would take a snapshot from h into /s" } },
      { name = "room for one more: nothing deleted",
         state = state({ names = KEPT }), args = { dir = "snap", retain = 6 },
         want = { msg = "would take a snapshot from h into /s" } },
      { name = "etcdctl missing: no member to take it from",
         state = state({ etcdctl = false, healthy = false, health = "" }), args = { dir = "snap" },
         opts = { host = "etcd10" },
         want = { failed = true, changed = NONE,
            msg = "no healthy member to snapshot: /opt/etcd/bin/etcdctl not found on etcd10" } },
      { name = "a member that does not answer: fails with what etcdctl said",
         state = state({ healthy = false, health = "https://127.0.0.1:2379 is unhealthy: failed to commit proposal:"
            .. " context deadline exceeded\nError: unhealthy cluster" }),
         args = { dir = "snap", endpoint = "https://10.0.0.5:2379" }, opts = { host = "etcd3" },
         want = { failed = true, msg = "no healthy member to snapshot: etcd3 (https://10.0.0.5:2379): "
            .. "https://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n"
            .. "Error: unhealthy cluster" } },
      { name = "a member that says nothing",
         state = state({ healthy = false, health = "" }), args = { dir = "snap" },
         want = { failed = true, msg = "no healthy member to snapshot: h (https://127.0.0.1:2379): no answer" } },
      { name = "under --check a member an earlier task would start is reported, not failed",
         state = state({ etcdctl = false, healthy = false }), args = { dir = "snap" }, opts = { check = true },
         want = { skipped = true, failed = NONE, msg = "no healthy member to snapshot now (/opt/etcd/bin/etcdctl not"
            .. " found on h): a run would fail unless an earlier task starts it" } },
      { name = "a tmp_dir that is not there",
         state = state({ tmp_dir = false }), args = { dir = "snap", tmp_dir = "/nope" },
         want = { failed = true, msg = "no healthy member to snapshot: h: tmp_dir /nope is not a directory" } },
      { name = "a cluster name that is no file name word",
         state = state(), args = { dir = "snap", cluster = "a/b" },
         want = { failed = true,
            msg = 'etcd_snapshot: cluster must be a file name word, retain >= 0 (got "a/b", 5)' } },
      { name = "a negative retain",
         state = state(), args = { dir = "snap", retain = -1 },
         want = { failed = true } },
   })
end)

-- A 1-member TLS cluster on etcd10 made by playbooks/tls-cluster.lua (as
-- spec/tls_cluster_spec.lua does), snapshots taken through the module and
-- through examples/snapshot.lua, etcd10 reset afterwards.
describe("etcd_snapshot on the lab (etcd10)", function()
   local q = helper.q
   local URL = "https://198.18.0.20:2379"
   local dir, why_not, ws, tls

   local function node(cmd)
      return lab.ssh(dir, "etcd10", cmd)
   end

   local function reset()
      node("systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null; rm -rf /var/lib/etcd /etc/etcd "
         .. "/opt/etcd /etc/systemd/system/etcd.service /etc/profile.d/etcd.sh; systemctl daemon-reload; "
         .. "userdel etcd 2>/dev/null; groupdel etcd 2>/dev/null; rm -f /var/tmp/.etcdrun-snapshot-*; true")
   end

   local function etcdrun(args)
      local version = helper.read(dir .. "/etcd_version"):gsub("%s+", "")
      local url = helper.read(dir .. "/release_url"):gsub("%s+", "")
      return helper.run(("cd %s && %s -i hosts %s -e etcd_version=%s -e etcd_release_url=%s/v%s"):format(q(ws),
         q(helper.etcdrun), args, version, url, version))
   end

   -- what the node holds of ours in its temporary places
   local function node_leftovers()
      return (node("ls -A /var/lib/etcd /var/tmp 2>/dev/null | grep etcdrun-snapshot; true"))
   end

   setup(function()
      dir, why_not = lab.ensure(10)
      if not dir then
         return
      end
      reset()
      ws = helper.tmpdir()
      helper.write(ws .. "/hosts", "[etcd]\netcd10 ansible_host=198.18.0.20 ansible_user=root\n[etcd:vars]\n"
         .. "ansible_ssh_common_args=-F " .. dir .. "/ssh_config\n")
      local out, err, code = etcdrun(q(lab.root .. "/playbooks/tls-cluster.lua"))
      assert(code == 0, "tls-cluster.lua on etcd10 failed:\n" .. out .. err)
      tls = { ca = ws .. "/pki/ca.crt", cert = ws .. "/pki/admin.crt", key = ws .. "/pki/admin.key" }
      local value = string.rep("v", 16 * 1024)
      for i = 1, 100 do
         assert(etcd.put(URL, tls, ("spec/snapshot/%03d"):format(i), value))
      end
   end)

   teardown(function()
      if dir then
         reset()
      end
   end)

   local function no_lab()
      if not dir then
         pending(why_not)
         return true
      end
      return false
   end

   it("under --check says what it would take and writes nothing", function()
      if no_lab() then return end
      local r = modtest.run("etcd_snapshot", { dir = "snaps", reason = "spec" }, lab.host(dir, 10),
         { check = true, playbook_dir = ws })
      assert.is_false(r.failed, r.msg)
      assert.is_true(r.changed)
      assert.are.equal(("would take a snapshot from etcd10 into %s/snaps (spec)"):format(ws), r.msg)
      local out, err, code = etcdrun(("%s -C -e snapshot_dir=%s/snaps"):format(q(lab.root .. "/examples/snapshot.lua"),
         q(ws)))
      assert.are.equal(0, code, out .. err)
      assert.matches("would take a snapshot from etcd10 into " .. (ws .. "/snaps"):gsub("%p", "%%%0"), out)
      assert.is_nil(fs.stat(ws .. "/snaps"), "check mode made the snapshot directory")
      assert.are.equal("", node_leftovers())
   end)

   it("takes verified snapshots onto the controller, keeps the newest 2, leaves nothing on the node", function()
      if no_lab() then return end
      local args = { dir = "snaps", retain = 2, reason = "spec" }
      local r1 = modtest.run("etcd_snapshot", args, lab.host(dir, 10), { playbook_dir = ws })
      assert.is_false(r1.failed, r1.msg)
      assert.is_true(r1.changed)
      local name1 = r1.path:match("[^/]+$")
      assert.are.equal(ws .. "/snaps/" .. name1, r1.path)
      assert.matches("^etcd%-%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ%-rev%d+%.db$", name1)
      assert.matches("^snapshot from etcd10 %(spec%): " .. r1.path:gsub("%p", "%%%0") .. " %(revision %d+, %d+ keys, "
         .. "[%d.]+ MiB, sha256 verified%)$", r1.msg)
      assert.are.equal(r1.msg, r1.report)
      assert.is_true(r1.keys >= 100 and r1.size > 1024 * 1024, r1.msg)
      assert.are.equal(448, fs.stat(ws .. "/snaps").mode) -- 0700
      assert.are.equal(384, fs.stat(r1.path).mode) -- 0600
      assert.are.equal(r1.sha256, fs.sha256_file(r1.path))
      assert.are.equal(("%s  %s\n"):format(r1.sha256, name1), helper.read(r1.path .. ".sha256"))
      local out, err, code = helper.run(("cd %s/snaps && sha256sum -c %s.sha256 && etcdctl snapshot status -w json %s")
         :format(q(ws), q(name1), q(name1)))
      assert.are.equal(0, code, out .. err)
      local st = cjson.decode(out:match("{.*}"))
      assert.are.equal(r1.revision, math.tointeger(st.revision))
      assert.are.equal(r1.keys, math.tointeger(st.totalKey))
      assert.are.equal(r1.hash, math.tointeger(st.hash))
      assert.are.equal("", node_leftovers())

      -- two more (the last at the same revision, maybe in the same second): the oldest goes, with its
      -- checksum file
      assert(etcd.put(URL, tls, "spec/snapshot/after", "1"))
      local r2 = modtest.run("etcd_snapshot", args, lab.host(dir, 10), { playbook_dir = ws })
      assert.is_false(r2.failed, r2.msg)
      assert.is_true(r2.revision > r1.revision)
      assert.are.same({}, r2.deleted)
      local r3 = modtest.run("etcd_snapshot", args, lab.host(dir, 10), { playbook_dir = ws })
      assert.is_false(r3.failed, r3.msg)
      local name2, name3 = r2.path:match("[^/]+$"), r3.path:match("[^/]+$")
      assert.are_not.equal(name2, name3)
      assert.are.same({ name1 }, r3.deleted)
      assert.matches("; retention deleted " .. name1:gsub("%p", "%%%0") .. "$", r3.msg)
      local want = { name2, name2 .. ".sha256", name3, name3 .. ".sha256" }
      table.sort(want)
      assert.are.same(want, assert(fs.list(ws .. "/snaps")))
      assert.are.equal("", node_leftovers())

      -- examples/snapshot.lua (run_once, keeps 5): its --json result reports the path
      out, err, code = etcdrun(("%s --json -e snapshot_dir=%s/snaps"):format(q(lab.root .. "/examples/snapshot.lua"),
         q(ws)))
      assert.are.equal(0, code, out .. err)
      local report
      for line in out:gmatch("[^\n]+") do
         local e = cjson.decode(line)
         if e.event == "task_result" and e.task == "snapshot onto the controller" then
            assert.are.equal("changed", e.status, line)
            report = e.report
         end
      end
      local path4 = assert(report and report:match("^snapshot from etcd10 %(examples/snapshot%.lua%): (/%S+%.db) %("),
         tostring(report))
      assert.are.equal(ws .. "/snaps", path4:match("^(.*)/"))
      assert.are.equal(6, #fs.list(ws .. "/snaps"))
      assert.are.equal("", node_leftovers())
   end)
end)
