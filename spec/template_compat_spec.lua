-- The template engine against Ansible's: every case of spec/support/template_cases.lua
-- renders to its recorded output here, and the same cases go through the real
-- ansible-core (its Templar, as the template module runs it) when it is installed
-- (Debian's ansible package; .ci/deps.sh installs it), which must give the same.
local template = require("etcdrun.core.template")
local cjson = require("cjson")
local helper = require("support.helper")
local cases = require("support.template_cases")

local function ours(case)
   local out, err = template.render(case[1], case[2], { name = "t.j2" })
   return out, err
end

-- The interpreter that has ansible-core, or nil and why not.
local function python_with_ansible()
   for _, py in ipairs({ "/usr/bin/python3", "python3" }) do
      local _, _, rc = helper.run(py .. " -c 'import ansible.template' 2>/dev/null")
      if rc == 0 then
         return py
      end
   end
   return nil, "ansible-core is not installed (Debian: apt-get install ansible)"
end

local function label(case)
   return (case[1]:gsub("\n", "\\n"):sub(1, 70))
end

describe("templates as Ansible renders them", function()
   for i, case in ipairs(cases) do
      it(("case %d: %s"):format(i, label(case)), function()
         local out, err = ours(case)
         if case.err then
            assert.is_nil(out, "rendered: " .. tostring(out))
            assert.matches(case.err, err)
         else
            assert.is_nil(err)
            assert.are.equal(case.ours or case.want, out)
         end
      end)
   end

   it("agrees with the real ansible-core on every case", function()
      local py, why = python_with_ansible()
      if not py then
         pending(why)
         return
      end
      local dir = helper.tmpdir()
      local input = {}
      for i, case in ipairs(cases) do
         input[i] = { src = case[1], vars = next(case[2]) and case[2] or cjson.null }
      end
      helper.write(dir .. "/cases.json", cjson.encode(input))
      local stdout, stderr, rc = helper.run(("%s spec/support/ansible_template.py < %s"):format(
         py, helper.q(dir .. "/cases.json")))
      assert.are.equal(0, rc, stderr)
      local results = cjson.decode(stdout)
      assert.are.equal(#cases, #results)
      local disagree = {}
      for i, case in ipairs(cases) do
         local r = results[i]
         if case.ansible then
            if r.out ~= case.ansible then
               disagree[#disagree + 1] = ("case %d (%s): Ansible gives %q (%s), recorded %q"):format(i,
                  label(case), tostring(r.out), tostring(r.err), case.ansible)
            end
         elseif case.err and not r.err then
            disagree[#disagree + 1] = ("case %d (%s): Ansible rendered %q"):format(i, label(case), r.out)
         elseif not case.err and r.out ~= case.want then
            disagree[#disagree + 1] = ("case %d (%s): Ansible gives %q (%s), we %q"):format(i, label(case),
               tostring(r.out), tostring(r.err), case.want)
         end
      end
      assert.are.equal("", table.concat(disagree, "\n"))
   end)
end)

-- Existing clusters must not see their files change: the playbooks' own templates
-- render byte for byte what they rendered before Ansible's newline rules and
-- Python's number printing came in (the expectation is the template's text with
-- each {{ name }} replaced, computed here without the engine).
describe("the playbooks' templates", function()
   local src = helper.read("playbooks/templates/etcd.conf.yaml.j2")
   local loop = "{% for line in extra_config %}\n{{ line }}\n{% endfor %}\n"
   local vars = {
      name = "etcd1", data_dir = "/var/lib/etcd", address = "10.0.0.11", client_port = 2379,
      peer_port = 2380, initial_cluster = "etcd1=https://10.0.0.11:2380", cluster_token = "tok",
      cluster_state = "new", heartbeat_interval = 100, election_timeout = 1000, snapshot_count = 10000,
      compaction_retention = "1",
   }
   local function expected(extra)
      local head = assert(src:sub(-#loop) == loop and src:sub(1, -#loop - 1), "the template's loop moved")
      head = head:gsub("{{ ([%w_]+) }}", function(k) return tostring(vars[k]) end)
      return head .. (#extra > 0 and table.concat(extra, "\n") .. "\n" or "")
   end

   it("etcd.conf.yaml.j2 renders as before, with and without extra lines", function()
      for _, extra in ipairs({ {}, { "a: 1" }, { "a: 1", "b: [x]" } }) do
         vars.extra_config = extra
         local out = assert(template.render(src, vars, { name = "etcd.conf.yaml.j2" }))
         assert.are.equal(expected(extra), out)
         assert.are.equal("\n", out:sub(-1))
         assert.are_not.equal("\n\n", out:sub(-2))
      end
   end)

   it("gets integers where an inventory wrote 150.0 (a float would print 150.0)", function()
      local L = assert(loadfile("playbooks/lib/tls_cluster.lua"))("playbooks/lib")
      local v = setmetatable({}, { __call = function(_, k) return ({ hb = "150.0", et = 1500.0 })[k] end })
      assert.are.equal(math.type(L.num(v, "hb")), "integer")
      assert.are.equal(math.type(L.num(v, "et")), "integer")
      vars.extra_config = {}
      vars.heartbeat_interval = L.num(v, "hb")
      assert.matches("\nheartbeat%-interval: 150\n", template.render(src, vars))
   end)
end)
