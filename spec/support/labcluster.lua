--- A cluster of lab nodes driven by playbooks/tls-cluster.lua, for the
-- day-2 specs (membership, upgrades, certificates): an inventory written
-- into a work directory, the playbook run from there, the member list and
-- health read over mutual TLS, and an operation run under load (a writer
-- putting a key every 50 ms, spec/support/load.lua) with the assertions
-- every such case makes: no failed write, every acknowledged and every
-- seeded key read back.
--
--   local c = labcluster.new(dir)            -- dir: lab.ensure's
--   c:inventory({ { "etcd1", 1 }, { "etcd2", 2, "etcd_address=..." } }, { "etcd4" })
--   local out, code = c:playbook("-e etcd_remove=etcd4")
--   c:under_load("shrink", { 1, 2 }, function() ... end)
local helper = require("support.helper")
local lab = require("support.lab")
local load = require("support.load")
local etcd = require("etcdrun.etcd")

local q = helper.q
local C = {}
C.__index = C

local M = {}

function M.ip(i)
   return ("198.18.0.%d"):format(10 + i)
end

--- {name, node} pairs etcdFROM..etcdTO.
function M.nodes(from, to)
   local t = {}
   for i = from, to do
      t[#t + 1] = { "etcd" .. i, i }
   end
   return t
end

--- A cluster workspace on the lab in `dir` (lab.ensure's), in a fresh
--- temporary directory; `version` (default: the lab's etcd_version).
function M.new(dir, version)
   local c = setmetatable({ dir = dir, ws = helper.tmpdir() }, C)
   c.version = version or helper.read(dir .. "/etcd_version"):gsub("%s+", "")
   return c
end

function C:node(i, cmd)
   return lab.ssh(self.dir, "etcd" .. i, cmd)
end

function C:reset(from, to)
   for i = from, to do
      self:node(i, "systemctl stop etcd 2>/dev/null; systemctl disable etcd 2>/dev/null; rm -rf /var/lib/etcd"
         .. " /etc/etcd /opt/etcd /etc/systemd/system/etcd.service /etc/profile.d/etcd.sh; systemctl daemon-reload; "
         .. "userdel etcd 2>/dev/null; groupdel etcd 2>/dev/null; true")
   end
end

--- The inventory: group etcd = `members` ({name, node, extra host vars}: a
--- name may sit on another lab node), group retired = `retired` names.
function C:inventory(members, retired)
   local lines = { "[etcd]" }
   for _, m in ipairs(members) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root %s"):format(m[1], M.ip(m[2]), m[3] or "")
   end
   lines[#lines + 1] = "[retired]"
   for _, name in ipairs(retired or {}) do
      lines[#lines + 1] = ("%s ansible_host=%s ansible_user=root"):format(name, M.ip(tonumber(name:match("%d+"))))
   end
   lines[#lines + 1] = "[all:vars]"
   lines[#lines + 1] = "ansible_ssh_common_args=-F " .. self.dir .. "/ssh_config"
   helper.write(self.ws .. "/hosts", table.concat(lines, "\n") .. "\n")
end

--- The release arguments of `version` (default: the cluster's).
function C:release_args(version)
   version = version or self.version
   local url = helper.read(self.dir .. "/release_url"):gsub("%s+", "")
   return ("-e etcd_version=%s -e etcd_release_url=%s/v%s"):format(version, url, version)
end

-- The shell command running playbooks/<name> from the workspace.
local function command(self, name, args)
   return ("cd %s && %s -i hosts %s/playbooks/%s %s"):format(q(self.ws), q(helper.etcdrun), q(lab.root), name,
      args or "")
end

function C:command(args, version)
   return command(self, "tls-cluster.lua", self:release_args(version) .. " " .. (args or ""))
end

--- Run tls-cluster.lua: output (stdout and stderr) and exit code.
function C:playbook(args, version)
   local out, err, code = helper.run(self:command(args, version))
   return out .. err, code
end

--- Run another playbook of playbooks/ (snapshot.lua, doctor.lua, ...) with
--- the workspace's inventory: output and exit code.
function C:run(name, args)
   local out, err, code = helper.run(command(self, name, args))
   return out .. err, code
end

function C:tls()
   return { ca = self.ws .. "/pki/ca.crt", cert = self.ws .. "/pki/admin.crt", key = self.ws .. "/pki/admin.key" }
end

function M.urls(list)
   local t = {}
   for i, n in ipairs(list) do
      t[i] = ("https://%s:2379"):format(M.ip(n))
   end
   return t
end

--- The cluster as it is, asked of node via[1]: member names (sorted) and the
--- number of learners; every member must be healthy.
function C:members(via)
   local list = assert(etcd.members(M.urls(via)[1], self:tls()))
   local names, learners = {}, 0
   for _, m in ipairs(list) do
      names[#names + 1] = m.name
      learners = learners + (m.is_learner and 1 or 0)
      assert(etcd.health(m.client_urls[1], self:tls()), m.name .. " unhealthy")
   end
   return table.concat(names, " "), learners
end

--- Seed n keys before the operations (kept to check after each).
function C:seed(via, n)
   self.seeded = load.seed(M.urls(via), self:tls(), "spec/seed/", n)
end

--- Run fn under the writer; assert no failed write and the writer's and
--- the seeded keys intact; fn's results, then the writer's summary. The
--- writer's figures go to stderr, for the README and the closing notes.
function C:under_load(label, via, fn)
   local prefix = "spec/load/"
   local w = load.start({ endpoints = M.urls(via), tls = self:tls(), prefix = prefix, dir = self.ws })
   local ok, a, b = pcall(fn)
   local s = w:stop()
   io.stderr:write(("  [load] %s: %s\n"):format(label, load.describe(s)))
   assert(ok, a)
   load.assert_clean(s, 5)
   local r = load.check(M.urls(via), self:tls(), prefix, (load.acked(s)))
   assert(r.missing + r.wrong == 0, "acknowledged writes lost: " .. table.concat(r.examples, "; "))
   if self.seeded then
      r = load.check(M.urls(via), self:tls(), "spec/seed/", self.seeded)
      assert(r.missing + r.wrong == 0, "seeded keys lost: " .. table.concat(r.examples, "; "))
   end
   return a, b, s
end

return M
