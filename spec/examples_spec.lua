-- examples/site.lua, the playbook that uses every built-in module, against
-- real lab nodes: --check on fresh nodes changes nothing on them, the real
-- run's --json events validate against docs/events.md, and a second run
-- reports 0 changed.
local helper = require("support.helper")
local lab = require("support.lab")
local jsonschema = require("support.jsonschema")
local module = require("etcdrun.module")
local playbook = require("etcdrun.playbook")
local cjson = require("cjson")

local q = helper.q
local dir, why_not

-- What the example touches on a node, as one comparable text.
local STATE = table.concat({
   "ls -la --time-style=+ /opt/example 2>&1",
   "ls -la --time-style=+ /opt/example/bin 2>&1",
   "getent passwd example; getent group example",
   "systemctl is-enabled example-sleep 2>&1; systemctl is-active example-sleep 2>&1",
   "sha256sum /etc/profile; cat /etc/issue.net 2>&1",
   "ls /etc/systemd/system | grep example || true",
}, "; ")

local RESET = "systemctl disable --now example-sleep 2>/dev/null; rm -f /etc/systemd/system/example-sleep.service; "
   .. "systemctl daemon-reload; rm -rf /opt/example; userdel example 2>/dev/null; groupdel example 2>/dev/null; "
   .. "sed -i '\\#/opt/example/bin#d' /etc/profile; rm -f /etc/issue.net; true"

local NODES = { "etcd4", "etcd5" }

local function each_node(cmd)
   local out = {}
   for _, n in ipairs(NODES) do
      out[#out + 1] = n .. ":\n" .. lab.ssh(dir, n, cmd)
   end
   return table.concat(out, "\n")
end

local function run_example(ws, args)
   return helper.run(("cd %s && %s -i hosts %s/examples/site.lua -e release_url=%s %s"):format(q(ws),
      q(helper.etcdrun), q(lab.root), helper.read(dir .. "/release_url"):gsub("%s+", "") .. "/v"
      .. helper.read(dir .. "/etcd_version"):gsub("%s+", ""), args or ""))
end

local function events_of(out)
   local events = {}
   for line in out:gmatch("[^\n]+") do
      events[#events + 1] = cjson.decode(line)
   end
   return events
end

describe("examples/site.lua", function()
   setup(function()
      dir, why_not = lab.ensure(10)
   end)

   it("uses every built-in module (the etcd ones through the playbooks, examples/snapshot.lua)", function()
      local used = {}
      for _, file in ipairs({ "examples/site.lua", "playbooks/tls-cluster.lua", "playbooks/restore.lua",
         "playbooks/doctor.lua", "playbooks/defrag.lua", "examples/snapshot.lua", "examples/member.lua" }) do
         local pb = assert(playbook.load(file))
         for _, p in ipairs(pb.plays) do
            for _, list in ipairs({ p.steps, p.handlers }) do
               for _, t in ipairs(list) do
                  if t.module then
                     used[t.module] = true
                  end
                  for _, hook in pairs({ gate = t.gate, before = t.before }) do
                     used[hook.module] = true
                  end
               end
            end
         end
      end
      for _, name in ipairs(module.list()) do
         assert.is_true(used[name] or false, "no example nor playbook uses module " .. name)
      end
      assert.is_true(used.banner, "the example site module is used")
   end)

   it("changes nothing under --check, converges, validates as JSON, and is idempotent", function()
      if not dir then
         pending(why_not)
         return
      end
      each_node(RESET)
      local ws = helper.tmpdir()
      local lines = { "[etcd]" }
      for _, n in ipairs(NODES) do
         lines[#lines + 1] = ("%s ansible_host=198.18.0.%d ansible_user=root"):format(n, 10 + tonumber(n:match("%d+")))
      end
      lines[#lines + 1] = "[etcd:vars]\nansible_ssh_common_args=-F " .. dir .. "/ssh_config"
      helper.write(ws .. "/hosts", table.concat(lines, "\n") .. "\n")
      helper.run("rm -rf /tmp/etcdrun-example")

      local before = each_node(STATE)
      local out, err, code = run_example(ws, "--check")
      assert.are.equal(0, code, out .. err)
      assert.matches("changed", out)
      assert.are.equal(before, each_node(STATE), "--check changed the nodes")

      out, err, code = run_example(ws, "--json --diff")
      assert.are.equal(0, code, out .. err)
      local doc = jsonschema.load_doc("docs/events.md")
      local events = events_of(out)
      local changed = 0
      for _, e in ipairs(events) do
         assert.is_true(jsonschema.validate_event(doc, e))
         if e.event == "task_result" and e.changed then
            changed = changed + 1
         end
      end
      assert.is_true(changed > 20, "the first run changed only " .. changed .. " things")
      assert.matches("Managed by etcdrun %(etcd4%)", lab.ssh(dir, "etcd4", "cat /etc/issue.net"))
      assert.matches("etcdctl version: 3%.", lab.ssh(dir, "etcd5", "/opt/example/bin/etcdctl version"))

      out, err, code = run_example(ws, "--json")
      assert.are.equal(0, code, out .. err)
      events = events_of(out)
      local recap = events[#events]
      assert.are.equal("recap", recap.event)
      for name, s in pairs(recap.hosts) do
         assert.are.equal(0, s.changed, name .. " changed on the second run")
      end
      each_node(RESET)
   end)
end)
