-- Inventories as Ansible reads them: INI values evaluated as Python literals, YAML
-- inventories (all:/children:/hosts:/vars:), host pattern subscripts and an empty
-- --limit. Each case states what the inventory gives here; when ansible-core is
-- installed (Debian's ansible package), ansible-inventory and ansible --list-hosts
-- read the same files and must give the same.
local inventory = require("etcdrun.inventory")
local cjson = require("cjson")
local helper = require("support.helper")

local INI = [=[
[etcd]
etcd1 port_like=2222 flag=True list="[1, 'x']" map="{'k': 1}" f=1.5 hex=0x1F zeros=007 none=None
etcd2 q="'quoted'" under=1_000 neg=-3 tup="(1,2)" word=yes exp=1e3 half=.5 plain=abc sp=" 12"
etcd3:2200

[web]
web1

[x:children]
web
etcd

[etcd:vars]
v_comment = foo # not a comment
v_quoted = 'bar' # a comment
v_list = [1, 2]
v_bool = False
v_addr = 10.0.0.1
v_tab = "x\ty"
v_nested = {'a': [1, {'b': None}]}
]=]

local YAML = [=[
all:
  vars:
    ansible_user: root
    octal: 0755
    flag: yes
    sexa: 1:30
    notsexa: 888:-688:88
    exp: 1e3
    quoted: "2"
  hosts:
    lonely:
  children:
    etcd:
      hosts:
        etcd[1:3]:
          role: member
        etcd4:2222:
      vars:
        etcd_version: 3.5.9
        l: [1, two]
        m: {a: 1}
      children:
        etcd_new:
          hosts:
            etcd5: {ansible_host: 10.0.0.5}
    web:
      hosts: web1
]=]

-- What each host's vars are here (and, checked below, in Ansible).
local INI_VARS = {
   etcd1 = { port_like = 2222, flag = true, list = { 1, "x" }, map = { k = 1 }, f = 1.5, hex = 31,
      zeros = "007", none = cjson.null },
   etcd2 = { q = "quoted", under = 1000, neg = -3, tup = { 1, 2 }, word = "yes", exp = 1000.0, half = 0.5,
      plain = "abc", sp = 12 },
   etcd3 = { ansible_port = 2200 },
   web1 = {},
}
local INI_GROUP_VARS = { v_comment = "foo # not a comment", v_quoted = "bar", v_list = { 1, 2 },
   v_bool = false, v_addr = "10.0.0.1", v_tab = "x\ty", v_nested = { a = { 1, { b = cjson.null } } } }

local function write(name, text)
   local dir = helper.tmpdir()
   helper.write(dir .. "/" .. name, text)
   return dir .. "/" .. name
end

local function names(list)
   local out = {}
   for _, h in ipairs(list) do
      out[#out + 1] = h.name
   end
   return out
end

-- Our hostvars as Ansible's --list prints them, through the same JSON decoder.
local function our_hostvars(inv)
   local out = {}
   for _, h in ipairs(inv:hosts("all")) do
      if next(h.vars) then -- ansible-inventory leaves out hosts without vars
         out[h.name] = h.vars
      end
   end
   return cjson.decode(cjson.encode(out))
end

local function have_ansible()
   local _, _, rc = helper.run("ansible-inventory --version >/dev/null 2>&1")
   return rc == 0
end

local function ansible_hostvars(path)
   local out, err, rc = helper.run("ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ansible-inventory -i "
      .. helper.q(path) .. " --list")
   assert.are.equal(0, rc, out .. err)
   return cjson.decode(out:sub((out:find("{", 1, true))))._meta.hostvars
end

local function ansible_hosts(path, pattern, limit)
   local cmd = ("ansible -i %s %s --list-hosts%s 2>/dev/null"):format(helper.q(path), helper.q(pattern),
      limit and " --limit " .. helper.q(limit) or "")
   local out = helper.run(cmd)
   local set = {}
   for name in out:gmatch("\n    (%S+)") do
      set[#set + 1] = name
   end
   table.sort(set)
   return set
end

describe("INI values as Python literals", function()
   local inv = assert(inventory.parse(INI, "hosts"))

   it("gives numbers, booleans, None, lists and mappings; keeps the rest strings", function()
      for host, want in pairs(INI_VARS) do
         local vars = inv:host(host).vars
         for k, v in pairs(want) do
            assert.are.same(v, vars[k], host .. "." .. k)
            assert.are.equal(math.type(v), math.type(vars[k]), host .. "." .. k)
         end
      end
      for k, v in pairs(INI_GROUP_VARS) do
         assert.are.same(v, inv:host("etcd1").vars[k], k)
      end
      assert.is_nil(inv:host("web1").vars.v_list)
      assert.are.equal(2200, inv:host("etcd3").port)
   end)

   it("agrees with ansible-inventory", function()
      if not have_ansible() then
         pending("ansible-core is not installed (Debian: apt-get install ansible)")
         return
      end
      local path = write("hosts", INI)
      assert.are.same(ansible_hostvars(path), our_hostvars(inv))
   end)
end)

describe("YAML inventories", function()
   local path = write("hosts.yml", YAML)
   local inv = assert(inventory.load(path))

   it("reads all:, children:, hosts: and vars: with YAML 1.1 types, ranges and ports", function()
      assert.are.same({ "lonely", "etcd1", "etcd2", "etcd3", "etcd4", "etcd5", "web1" }, names(inv:hosts()))
      local e1 = inv:host("etcd1").vars
      -- (notsexa: a negative part is no sexagesimal; the fuzzer found it overflowing)
      assert.are.same({ ansible_user = "root", octal = 493, flag = true, sexa = 90, notsexa = "888:-688:88",
         exp = "1e3", quoted = "2", role = "member", etcd_version = "3.5.9", l = { 1, "two" }, m = { a = 1 } }, e1)
      assert.are.equal(2222, inv:host("etcd4").port)
      assert.are.equal("10.0.0.5", inv:host("etcd5").address)
      assert.are.same({ "etcd", "etcd_new" }, inv:host("etcd5").groups)
      assert.are.same({ "ungrouped" }, inv:host("lonely").groups)
      assert.are.same({ "web" }, inv:host("web1").groups)
      assert.are.same({ "etcd_new" }, inv.groups.etcd.children)
   end)

   it("is told from INI by its name or its first line", function()
      assert.are.equal("yaml", inventory.detect("x", "hosts.yaml"))
      assert.are.equal("yaml", inventory.detect("x", "inv.json"))
      assert.are.equal("yaml", inventory.detect("# c\nall:\n  hosts:\n", "hosts"))
      assert.are.equal("yaml", inventory.detect("---\nall:\n", "hosts"))
      assert.are.equal("ini", inventory.detect("[etcd]\netcd1\n", "hosts"))
      assert.are.equal("ini", inventory.detect("etcd1:2222 a=1\n", "hosts"))
   end)

   it("names file:line for what is wrong", function()
      local cases = {
         { "all:\n  hostz:\n", "h.yml:2: unknown key 'hostz' in group 'all' (expected hosts, vars or children)" },
         { "all:\n  hosts: [a, b]\n", "h.yml:2: 'hosts' of group 'all' must be a mapping, got a list" },
         { "all:\n  hosts:\n    a: [1\n", "h.yml:4: did not find expected ',' or ']'" },
         { "all:\n  children:\n    etcd:\n      vars:\n        bad-name: 1\n",
            "h.yml:5: invalid variable name 'bad-name'" },
         { "all:\n  hosts:\n    a:\n      x: !vault |\n        $ANSIBLE_VAULT\n",
            "h.yml:4: vault-encrypted values (!vault) are not supported" },
         { "- a\n- b\n", "h.yml:1: a YAML inventory must be a mapping of groups, got a list" },
         { "plugin: aws_ec2\n", "h.yml:1: this is an inventory plugin's configuration" },
         { "all:\n  children:\n    g:\n      hosts:\n        h: 5\n",
            "h.yml:5: the vars of host 'h' must be a mapping, got number 5" },
         { "a: 1\n---\nb: 2\n", "h.yml:2: more than one YAML document" },
         { "off\n", "h.yml:1: a YAML inventory must be a mapping of groups, got boolean false" }, -- the fuzzer's
      }
      for _, c in ipairs(cases) do
         local inv2, err, code = inventory.parse(c[1], "h.yml")
         assert.is_nil(inv2, c[1])
         assert.are.equal("EINVENTORY", code)
         assert.are.equal(c[2], err:sub(1, #c[2]))
      end
      assert.are.same({}, names(assert(inventory.parse("", "empty.yml")):hosts()))
   end)

   it("agrees with ansible-inventory", function()
      if not have_ansible() then
         pending("ansible-core is not installed (Debian: apt-get install ansible)")
         return
      end
      assert.are.same(ansible_hostvars(path), our_hostvars(inv))
   end)
end)

describe("host pattern subscripts and empty limits", function()
   local path = write("hosts", "[etcd]\ne1\ne2\ne3\n[web]\nw1\n[x:children]\nweb\netcd\n")
   local inv = assert(inventory.load(path))
   local cases = {
      { "etcd[0]", { "e1" } }, { "etcd[-1]", { "e3" } }, { "etcd[1:]", { "e2", "e3" } },
      { "etcd[0:1]", { "e1", "e2" } }, { "etcd[2:0]", { "e3" } }, { "etcd[9]", {} },
      { "x[0:2]", { "e1", "e2", "w1" } }, { "x[0]", { "w1" } }, { "e*[1]", { "e2" } },
      { "all[-1]", { "e3" } }, { "etcd[1-2]", { "e2", "e3" } }, { "etcd:!etcd[0]", { "e2", "e3" } },
      { "", { "e1", "e2", "e3", "w1" } }, { ",,", { "e1", "e2", "e3", "w1" } },
      { "etcd", { "e1", "e2", "e3" }, limit = "" }, { "etcd", { "e2" }, limit = "etcd[1]" },
   }
   local function ours(c)
      local list = assert(inv:hosts(c[1], c.limit))
      local n = names(list)
      table.sort(n)
      return n
   end

   it("select what Ansible selects", function()
      for _, c in ipairs(cases) do
         assert.are.same(c[2], ours(c), c[1] .. (c.limit and " -l '" .. c.limit .. "'" or ""))
      end
   end)

   it("agree with ansible --list-hosts", function()
      if not have_ansible() then
         pending("ansible-core is not installed (Debian: apt-get install ansible)")
         return
      end
      for _, c in ipairs(cases) do
         assert.are.same(ansible_hosts(path, c[1], c.limit), ours(c), c[1])
      end
   end)
end)

describe("the command line with a YAML inventory", function()
   it("runs an ad-hoc command on a subscripted pattern, with an empty --limit", function()
      local dir = helper.tmpdir()
      helper.write(dir .. "/hosts.yml", [[
all:
  vars:
    ansible_connection: local
  children:
    web:
      hosts:
        a: {port_like: 0x10}
        b:
        c:
]])
      local out, err, code = helper.run(("cd %s && %s -i hosts.yml 'web[1:]' --limit '' -a 'echo hi'")
         :format(helper.q(dir), helper.q(helper.etcdrun)))
      assert.are.equal(0, code, out .. err)
      assert.matches("\nb | ok | rc=0", "\n" .. out, 1, true)
      assert.matches("\nc | ok | rc=0", "\n" .. out, 1, true)
      assert.is_nil(out:find("\na | ", 1, true))
      assert.matches("2 hosts: 2 ok", out .. err, 1, true)
   end)
end)
