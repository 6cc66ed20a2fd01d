local helper = require("support.helper")
local inventory = require("etcdrun.inventory")

local FIX = "spec/fixtures/inventory/"

local function names(hosts)
   local out = {}
   for _, h in ipairs(hosts) do
      out[#out + 1] = h.name
   end
   return out
end

-- Parse text that must be valid.
local function parse(text, name)
   local inv, err = inventory.parse(text, name or "hosts")
   assert(inv, err)
   return inv
end

-- Parse text that must fail; returns the message.
local function fails(text, name)
   local inv, err, code = inventory.parse(text, name or "hosts")
   assert.is_nil(inv)
   assert.are.equal("EINVENTORY", code)
   assert.is_string(err)
   return err
end

describe("inventory", function()
   describe("the seed's INI inventory", function()
      local inv
      before_each(function()
         inv = assert(inventory.load(FIX .. "hosts"))
      end)

      it("reads groups, hosts and their connection fields", function()
         assert.are.equal(FIX .. "hosts", inv.name)
         local hosts = inv:hosts("etcd")
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, names(hosts))
         for i, h in ipairs(hosts) do
            assert.are.equal("198.18.0.1" .. i, h.address)
            assert.are.equal("root", h.user)
            assert.is_nil(h.port)
            assert.is_nil(h.key_file)
            assert.is_false(h.become)
            assert.are.equal("ssh", h.connection)
            assert.are.same({ "etcd" }, h.groups)
            assert.are.equal(i, h.index)
            assert.are.same({ ansible_host = "198.18.0.1" .. i, ansible_user = "root" }, h.vars)
         end
         assert.are.equal(hosts[2], inv:host("etcd2"))
         assert.is_nil(inv:host("etcd4"))
      end)

      it("has the implicit groups all and ungrouped", function()
         local list = inv:groups()
         assert.are.same({ "all", "ungrouped", "etcd" }, names(list))
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, inv.groups.all.hosts)
         assert.are.same({ "ungrouped", "etcd" }, inv.groups.all.children)
         assert.are.same({}, inv.groups.ungrouped.hosts)
         assert.are.same({ "all" }, inv.groups.etcd.parents)
         assert.are.equal(1, inv.groups.etcd.depth)
      end)
   end)

   describe("group vars and children", function()
      -- etcd4_groups: the INI file mentions groups in that order; a Lua file's groups
      -- come in name order.
      local function check(inv, etcd4_groups)
         local h = {}
         for _, host in ipairs(inv:hosts("all")) do
            h[host.name] = host
         end
         assert.are.same({ "lonely", "etcd1", "etcd2", "etcd3", "etcd4" }, names(inv:hosts()))
         -- all < cluster < etcd < etcd_new < host
         assert.are.equal("all", h.lonely.vars.level)
         assert.are.equal("host", h.etcd1.vars.level)
         assert.are.equal("etcd", h.etcd2.vars.level)
         assert.are.equal("etcd_new", h.etcd4.vars.level)
         assert.are.equal("c", h.etcd4.vars.only_cluster)
         assert.are.equal("a", h.etcd4.vars.only_all)
         assert.is_nil(h.lonely.vars.only_cluster)
         -- inherited connection fields, normalised
         assert.are.equal("root", h.etcd4.user)
         assert.are.equal(2222, h.etcd4.port)
         assert.are.equal(os.getenv("HOME") .. "/.ssh/etcd_new", h.etcd4.key_file)
         assert.is_true(h.etcd4.become)
         assert.is_false(h.etcd3.become)
         assert.is_nil(h.lonely.user)
         -- membership through children, in inventory order
         assert.are.same({ "ungrouped" }, h.lonely.groups)
         assert.are.same(etcd4_groups, h.etcd4.groups)
         assert.are.same({ "etcd1", "etcd2", "etcd3", "etcd4" }, names(inv:hosts("cluster")))
         assert.are.same({ "etcd1", "etcd2", "etcd3", "etcd4" }, inv.groups.cluster.hosts)
         assert.are.same({}, inv.groups.cluster.own_hosts)
         assert.are.same({ "etcd4" }, inv.groups.etcd_new.hosts)
         assert.are.same({ "etcd_new" }, inv.groups.etcd.children)
         assert.are.same({ "cluster" }, inv.groups.etcd.parents)
         assert.are.equal(3, inv.groups.etcd_new.depth)
         assert.are.equal("etcd", inv.groups.etcd.vars.level)
         assert.are.same({ "lonely" }, inv.groups.ungrouped.hosts)
      end

      it("apply with Ansible's precedence (INI)", function()
         check(assert(inventory.load(FIX .. "nested")), { "etcd", "etcd_new", "cluster" })
      end)

      it("apply the same way from a Lua inventory", function()
         check(assert(inventory.load(FIX .. "hosts.lua")), { "cluster", "etcd", "etcd_new" })
      end)

      it("order groups of one depth by ansible_group_priority, then name", function()
         local text = "[a]\nh\n[b]\nh\n[a:vars]\nx=a\n[b:vars]\nx=b\n"
         assert.are.equal("b", parse(text):host("h").vars.x)
         text = text .. "ansible_group_priority=0\n"
         assert.are.equal("a", parse(text):host("h").vars.x)
      end)

      it("merge duplicate sections, hosts and vars (later values win)", function()
         local inv = parse([[
[etcd]
etcd1 a=1 b=1
[web]
web1
[etcd]
etcd2
etcd1 b=2 c=3
[etcd:vars]
v=1
[etcd:vars]
v=2
]])
         assert.are.same({ "etcd1", "web1", "etcd2" }, names(inv:hosts()))
         assert.are.same({ "etcd1", "etcd2" }, inv.groups.etcd.hosts)
         assert.are.same({ a = 1, b = 2, c = 3, v = 2 }, inv:host("etcd1").vars)
      end)

      it("accept a child declared after it is referred to", function()
         local inv = parse("[parent:children]\nchild\n[child]\nh1\n")
         assert.are.same({ "parent", "child" }, inv:host("h1").groups)
      end)

      it("do not count a host listed under a group as ungrouped", function()
         local inv = parse("h1\nh2\n[g]\nh1\n")
         assert.are.same({ "h2" }, inv.groups.ungrouped.hosts)
         assert.are.same({ "g" }, inv:host("h1").groups)
      end)
   end)

   describe("INI syntax", function()
      it("evaluates values as Python literals and strips quotes like Ansible", function()
         local inv = parse([=[
h1 port_like=2222 flag=True sp="a b" sq='c d' lit="'03#pa33w0rd'" empty= x=y#comment
[all:vars]
q = "v w"   # comment
plain = v # comment
url=http://example.com/#frag
eq=a=b
]=])
         local v = inv:host("h1").vars
         assert.are.equal(2222, v.port_like)
         assert.are.equal("integer", math.type(v.port_like))
         assert.is_true(v.flag)
         assert.are.equal("a b", v.sp)
         assert.are.equal("c d", v.sq)
         assert.are.equal("03#pa33w0rd", v.lit)
         assert.are.equal("", v.empty)
         assert.are.equal("y", v.x)
         assert.are.equal("v w", v.q)
         assert.are.equal("v # comment", v.plain) -- not a literal: kept whole, as Ansible does
         assert.are.equal("http://example.com/#frag", v.url)
         assert.are.equal("a=b", v.eq)
      end)

      it("expands host ranges", function()
         local inv = parse([[
[etcd]
etcd[1:3] ansible_user=root
[pad]
node[01:10:3]
[alpha]
rack[a:c]-[1:2]
[web]
web[1:2]:2200
]])
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, inv.groups.etcd.hosts)
         assert.are.equal("root", inv:host("etcd3").user)
         assert.are.same({ "node01", "node04", "node07", "node10" }, inv.groups.pad.hosts)
         assert.are.same({ "racka-1", "racka-2", "rackb-1", "rackb-2", "rackc-1", "rackc-2" },
            inv.groups.alpha.hosts)
         assert.are.equal(2200, inv:host("web2").port)
      end)

      it("reads host:port and IPv6 names", function()
         local inv = parse("a:2201\nfe80::1\n[fe80::2]:2202 x=1\n198.18.0.5\n")
         assert.are.same({ "a", "fe80::1", "fe80::2", "198.18.0.5" }, names(inv:hosts()))
         assert.are.equal(2201, inv:host("a").port)
         assert.is_nil(inv:host("fe80::1").port)
         assert.are.equal(2202, inv:host("fe80::2").port)
         assert.are.equal("fe80::2", inv:host("fe80::2").address)
      end)

      it("reads the rest of the connection fields", function()
         local inv = parse([[
h1 ansible_ssh_host=10.0.0.1 ansible_ssh_user=u ansible_ssh_port=23 ansible_become=No
h2 ansible_private_key_file=/k etcdrun_known_hosts=~/kh ansible_become=TRUE ansible_become_user=etcd
h3 ansible_connection=local ansible_become_method=sudo
]])
         local h1, h2, h3 = inv:host("h1"), inv:host("h2"), inv:host("h3")
         assert.are.equal("10.0.0.1", h1.address)
         assert.are.equal("u", h1.user)
         assert.are.equal(23, h1.port)
         assert.is_false(h1.become)
         assert.are.equal("/k", h2.key_file)
         assert.are.equal(os.getenv("HOME") .. "/kh", h2.known_hosts)
         assert.is_true(h2.become)
         assert.are.equal("etcd", h2.become_user)
         assert.are.equal("local", h3.connection)
      end)

      it("accepts CRLF line ends, a BOM, tabs and section comments", function()
         local inv = parse("\239\187\191[etcd]  # the members\r\n\tetcd1\tansible_user=root\r\n"
            .. "[etcd:vars] ; c\r\nk=v\r\n")
         assert.are.equal("root", inv:host("etcd1").user)
         assert.are.equal("v", inv:host("etcd1").vars.k)
      end)

      it("keeps inventory order stable: first appearance wins", function()
         local text = "[b]\nh3\nh1\n[a]\nh2\nh1\nh3\n[c:children]\nb\na\n"
         for _ = 1, 3 do
            local inv = parse(text)
            assert.are.same({ "h3", "h1", "h2" }, names(inv:hosts()))
            assert.are.same({ "h3", "h1", "h2" }, names(inv:hosts("a:b")))
            assert.are.same({ "h3", "h1", "h2" }, inv.groups.c.hosts)
            assert.are.same({ "h3", "h1" }, names(inv:hosts("h1,h3")))
         end
      end)
   end)

   describe("errors name file:line and what was expected", function()
      local cases = {
         { "[etcd]\netcd1 ansible_host\n",
            "hosts:2: expected 'key=value' after the host name, got 'ansible_host'" },
         { "[etcd]\n\n[etcd:foo]\n",
            "hosts:3: unknown section suffix ':foo' (expected :vars or :children)" },
         { "[etcd\n", "hosts:1: section header '[etcd' has no closing ']'" },
         { "h\n[]\n", "hosts:2: section header '[]' has no group name" },
         { "[etcd nodes]\n", "hosts:1: invalid group name 'etcd nodes'" },
         { "[web:children]\napache\n",
            "hosts:2: [web:children] lists group 'apache', which is not declared anywhere "
               .. "(expected a [apache] or [apache:children] section)" },
         { "[etcd]\nh\n[etdc:vars]\nx=1\n",
            "hosts:3: [etdc:vars] sets variables of group 'etdc', which is not declared anywhere" },
         { "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n",
            "hosts:6: group 'a' as a child of 'c' makes a cycle: a -> b -> c -> a" },
         { "[a:children]\na\n", "hosts:2: group 'a' as a child of 'a' makes a cycle: a -> a" },
         { "[a:children]\nall\n", "hosts:2: group 'all' cannot be a child of 'a'" },
         { "[etcd]\nh\n[etcd:vars]\nx 1\n", "hosts:4: expected 'key=value' in [etcd:vars], got 'x 1'" },
         { "[etcd]\nh\n[etcd:vars]\n1x=1\n", "hosts:4: invalid variable name '1x'" },
         { "h =v\n", "hosts:1: missing variable name before '=' in '=v'" },
         { "[a]\n[b:children]\na b\n",
            "hosts:3: expected one group name per line in [b:children], got 'a b'" },
         { "h x='open\n", "hosts:1: unterminated ' quote" },
         { 'h x="open\n', 'hosts:1: unterminated " quote' },
         { "h x=\\\n", "hosts:1: nothing after '\\' at the end of the line" },
         { "[etcd]\nansible_host=1.2.3.4\n", "hosts:2: expected a host name before 'ansible_host=1.2.3.4'" },
         { "etcd1:ssh\n", "hosts:1: expected 'host:port' with a numeric port, got 'etcd1:ssh'" },
         { "etcd1: x=1\n", "hosts:1: host 'etcd1:' ends in ':' (expected a port number after it)" },
         { "etc@d\n", "hosts:1: invalid host name 'etc@d'" },
         { "''\n", "hosts:1: expected a host name, got an empty string" },
         { "etcd[1-3]\n",
            "hosts:1: invalid host range '[1-3]' in 'etcd[1-3]': expected [start:end]" },
         { "etcd[3:1]\n",
            "hosts:1: invalid host range '[3:1]' in 'etcd[3:1]': the start comes after the end" },
         { "etcd[a:3]\n", "hosts:1: invalid host range '[a:3]' in 'etcd[a:3]': expected numbers "
            .. "or single letters at both ends" },
         { "etcd[01:100]\n", "hosts:1: invalid host range '[01:100]' in 'etcd[01:100]': a "
            .. "zero-padded start and the end must have the same width" },
         { "etcd[1:]\n", "hosts:1: invalid host range '[1:]' in 'etcd[1:]': the end is missing" },
         { "etcd[1:3\n", "hosts:1: unclosed '[' in host name 'etcd[1:3'" },
         { "e[1:1000]-[1:1000]\n",
            "hosts:1: host name 'e[1:1000]-[1:1000]' expands to more than 100000 hosts" },
         { "[etcd]\netcd1\n\n[etcd:vars]\nansible_port=twenty-two\n",
            "hosts:5: ansible_port of host 'etcd1' must be a port number (1-65535), got 'twenty-two'" },
         { "h ansible_port=65536\n", "hosts:1: ansible_port of host 'h' must be a port number" },
         { "h:0\n", "hosts:1: ansible_port of host 'h' must be a port number (1-65535), got 0" },
         { "h ansible_become=maybe\n", "hosts:1: ansible_become of host 'h' must be a boolean" },
         { "h ansible_connection=docker\n", "hosts:1: ansible_connection of host 'h' must be ssh or local" },
         { "h ansible_become_method=su\n", "hosts:1: ansible_become_method of host 'h' must be 'sudo'" },
         { "h ansible_host=\n", "hosts:1: ansible_host of host 'h' must be a non-empty string, got ''" },
         { "[g]\nh\n[g:vars]\nansible_group_priority=high\n",
            "hosts:4: ansible_group_priority of group 'g' must be a number, got 'high'" },
      }
      for _, c in ipairs(cases) do
         it(c[1]:gsub("\n", "\\n"), function()
            local err = fails(c[1])
            assert.are.equal(c[2], err:sub(1, #c[2]))
         end)
      end

      it("names the file a bad inventory was loaded from", function()
         local inv, err, code = inventory.load(FIX .. "bad_port")
         assert.is_nil(inv)
         assert.are.equal("EINVENTORY", code)
         assert.are.equal(FIX .. "bad_port:5: ansible_port of host 'etcd1' must be a port "
            .. "number (1-65535), got 'twenty-two'", err)
      end)

      it("reports a file that cannot be read", function()
         local dir = helper.tmpdir()
         local inv, err, code = inventory.load(dir .. "/hosts")
         assert.is_nil(inv)
         assert.are.equal("inventory: cannot read " .. dir .. "/hosts: No such file or directory", err)
         assert.are.equal("ENOENT", code)
         inv, err, code = inventory.load(dir)
         assert.is_nil(inv)
         assert.are.equal("inventory: cannot read " .. dir .. ": Is a directory", err)
         assert.are.equal("EISDIR", code)
      end)

      it("raises on misuse", function()
         assert.has_error(function()
            inventory.parse(nil, "x")
         end, "inventory.parse: text must be a string, got nil")
         assert.has_error(function()
            inventory.load(42)
         end, "inventory.load: path must be a string, got number")
         assert.has_error(function()
            parse("h\n"):hosts(42)
         end)
      end)
   end)

   describe("Lua inventories", function()
      it("are detected by extension or by a leading comment or return", function()
         assert.are.equal("lua", inventory.detect("x", "hosts.lua"))
         assert.are.equal("lua", inventory.detect("\n  return {}", "hosts"))
         assert.are.equal("lua", inventory.detect("-- hosts\nreturn {}", "hosts"))
         assert.are.equal("ini", inventory.detect("returned_host\n", "hosts"))
         assert.are.equal("ini", inventory.detect("[etcd]\n", "hosts"))
         local inv = parse("return { groups = { etcd = { hosts = { 'etcd1' } } } }")
         assert.are.same({ "etcd1" }, inv.groups.etcd.hosts)
      end)

      it("keep array order, sort maps naturally, take ranges and ports", function()
         local inv = parse([[
return {
   hosts = { "z", "a" },
   groups = {
      b = { hosts = { etcd10 = {}, etcd2 = true, ["etcd1:2201"] = { x = 1 } } },
      a = { hosts = { "web[1:2]", { "db", ansible_port = "2202" } } },
   },
}]], "inv.lua")
         assert.are.same({ "z", "a", "web1", "web2", "db", "etcd1", "etcd2", "etcd10" },
            names(inv:hosts()))
         assert.are.equal(2201, inv:host("etcd1").port)
         assert.are.equal(1, inv:host("etcd1").vars.x)
         assert.are.equal(2202, inv:host("db").port)
      end)

      local cases = {
         { "return {", "inv.lua:1: unexpected symbol near <eof>" },
         { "error('boom')", "inv.lua:1: boom" },
         { "local x = nothing\nreturn {}", "inv.lua:1: undefined global 'nothing'" },
         { "return io.open('/etc/passwd')", "inv.lua:1: undefined global 'io'" },
         { "return 42", "inv.lua: expected the file to return a table, got number" },
         { "return { group = {} }", "inv.lua: unknown key 'group' (expected groups, hosts or vars)" },
         { "return { groups = { etcd = { host = {} } } }",
            "inv.lua: groups.etcd: unknown key 'host' (expected children, hosts or vars)" },
         { "return { groups = { web = { children = { 'apache' } } } }",
            "inv.lua: groups.web.children: lists group 'apache', which is not defined in groups" },
         { "return { groups = { a = { children = { 'b' } }, b = { children = { 'a' } } } }",
            "inv.lua: groups.b.children: group 'a' as a child of 'b' makes a cycle: a -> b -> a" },
         { "return { groups = { all = {} } }",
            "inv.lua: groups.all: use the top-level vars and hosts" },
         { "return { vars = { f = print } }", "inv.lua:1: undefined global 'print'" },
         { "return { vars = { f = string.len } }", "inv.lua: vars.f: a variable cannot hold a function" },
         { "return { vars = { ['a-b'] = 1 } }", "inv.lua: vars: invalid variable name 'a-b'" },
         { "return { hosts = { 'a', b = {} } }",
            "inv.lua: hosts: mixes array items and name = vars entries" },
         { "return { hosts = { { ansible_host = 'x' } } }",
            "inv.lua: hosts[1]: expected the host name as the first item" },
         { "return { groups = { g = { hosts = { h = { ansible_port = 'ssh' } } } } }",
            "inv.lua: groups.g.hosts.h: ansible_port of host 'h' must be a port number (1-65535), "
               .. "got 'ssh'" },
         { "return { groups = { g = { vars = { ansible_port = 22.5 } , hosts = { 'h' } } } }",
            "inv.lua: groups.g.vars: ansible_port of host 'h' must be a port number (1-65535), "
               .. "got 22.5" },
      }
      for _, c in ipairs(cases) do
         it("report " .. c[2], function()
            local err = fails(c[1], "inv.lua")
            assert.are.equal(c[2], err:sub(1, #c[2]))
         end)
      end

      it("name the file they were loaded from", function()
         local inv, err = inventory.load(FIX .. "bad.lua")
         assert.is_nil(inv)
         assert.are.equal(FIX .. "bad.lua: groups.etcd: unknown key 'host' "
            .. "(expected children, hosts or vars)", err)
      end)
   end)

   describe("host patterns", function()
      local inv
      before_each(function()
         inv = parse([[
[etcd]
etcd1
etcd2
etcd3
[web]
web1
198.18.0.21
198.18.0.22
[db]
db1
etcd3
[backend:children]
db
web
]])
      end)

      local function sel(pattern, limit)
         local list, warning = inv:hosts(pattern, limit)
         assert(list, warning)
         return names(list), warning
      end

      it("selects all, a group, a host", function()
         local all = { "etcd1", "etcd2", "etcd3", "web1", "198.18.0.21", "198.18.0.22", "db1" }
         assert.are.same(all, (sel("all")))
         assert.are.same(all, (sel("*")))
         assert.are.same(all, (sel(nil)))
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, (sel("etcd")))
         assert.are.same({ "etcd2" }, (sel("etcd2")))
         assert.are.same({ "etcd3", "web1", "198.18.0.21", "198.18.0.22", "db1" }, (sel("backend")))
      end)

      it("matches globs against group and host names", function()
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, (sel("etcd*")))
         assert.are.same({ "198.18.0.21", "198.18.0.22" }, (sel("198.18.0.*")))
         assert.are.same({ "198.18.0.22" }, (sel("198.18.0.?2")))
         assert.are.same({ "etcd1", "etcd3" }, (sel("etcd[!2]")))
         assert.are.same({ "web1" }, (sel("we[a-c]1")))
         assert.are.same({ "etcd3", "web1", "198.18.0.21", "198.18.0.22", "db1" }, (sel("b*")))
      end)

      it("takes unions, intersections and exclusions", function()
         assert.are.same({ "etcd1", "etcd2", "etcd3", "db1" }, (sel("db:etcd")))
         assert.are.same({ "etcd1", "etcd2", "etcd3", "db1" }, (sel("db,etcd")))
         assert.are.same({ "etcd1", "etcd2", "etcd3", "db1" }, (sel("db etcd")))
         assert.are.same({ "etcd1", "etcd2", "etcd3", "db1" }, (sel({ "db", "etcd" })))
         assert.are.same({ "etcd3" }, (sel("etcd:&db")))
         assert.are.same({ "etcd1", "etcd2" }, (sel("etcd:!etcd3")))
         assert.are.same({ "etcd1", "etcd2" }, (sel("etcd,!db")))
         assert.are.same({ "etcd1", "etcd2" }, (sel("!etcd3:etcd")))
         assert.are.same({ "web1", "198.18.0.21", "198.18.0.22" }, (sel("!etcd*:!db")))
         assert.are.same({ "etcd3" }, (sel("&db:etcd")))
         assert.are.same({ "etcd1", "etcd3" }, (sel("~etcd[13]")))
         assert.are.same({ "198.18.0.21" }, (sel("~198%.18%.0%.21$")))
      end)

      it("applies --limit as an intersection", function()
         assert.are.same({ "etcd1", "etcd3" }, (sel("etcd", "etcd1:etcd3:web1")))
         assert.are.same({ "etcd1", "etcd2" }, (sel("all", "etcd:!db")))
         local list, warning = sel("etcd", "web")
         assert.are.same({}, list)
         assert.are.equal("no hosts match 'etcd' limited to 'web'", warning)
      end)

      it("keeps inventory order without duplicates", function()
         assert.are.same({ "etcd1", "etcd3", "db1" }, (sel("db1:etcd3:etcd1:etcd3:db")))
         local a = inv:hosts("etcd")
         local b = inv:hosts("etcd1:etcd2:etcd3")
         for i = 1, 3 do
            assert.are.equal(a[i], b[i])
         end
      end)

      it("warns when a term or the whole pattern matches nothing", function()
         local list, warning = sel("etcd:etdc")
         assert.are.same({ "etcd1", "etcd2", "etcd3" }, list)
         assert.are.equal("host pattern 'etdc' matches no group or host", warning)
         list, warning = sel("etcd:&web")
         assert.are.same({}, list)
         assert.are.equal("no hosts match 'etcd:&web'", warning)
         list, warning = sel("nothing")
         assert.are.same({}, list)
         assert.are.equal("host pattern 'nothing' matches no group or host", warning)
         list, warning = sel("etcd", "nope")
         assert.are.same({}, list)
         assert.are.equal("limit: host pattern 'nope' matches no group or host", warning)
         warning = select(2, sel("etcd"))
         assert.is_nil(warning)
         -- an empty group is a match, not a typo
         inv = parse("[empty]\n[g]\nh\n")
         list, warning = sel("empty")
         assert.are.same({}, list)
         assert.are.equal("no hosts match 'empty'", warning)
      end)

      it("returns an error for a malformed pattern", function()
         for pattern, msg in pairs({
            ["etcd:!"] = "host pattern 'etcd:!': '!' needs a name after it",
            ["~etcd[1"] = "host pattern '~etcd[1': malformed pattern (missing ']')",
            ["etcd[0"] = "host pattern 'etcd[0': '[' in 'etcd[0' is not closed",
         }) do
            local list, err, code = inv:hosts(pattern)
            assert.is_nil(list)
            assert.are.equal("EPATTERN", code)
            assert.are.equal(msg, err)
         end
         local list, err = inv:hosts("etcd", "etcd:&")
         assert.is_nil(list)
         assert.are.equal("limit: host pattern 'etcd:&': '&' needs a name after it", err)
      end)

      it("selects with Ansible's subscripts; an empty pattern is all, an empty limit none", function()
         local function pick(p, l)
            local hs, w = assert(inv:hosts(p, l))
            return names(hs), w
         end
         local all = names(inv:hosts("all"))
         local etcd = inv.groups.etcd.hosts
         assert.are.same({ etcd[1] }, pick("etcd[0]"))
         assert.are.same({ etcd[#etcd] }, pick("etcd[-1]"))
         assert.are.same({ etcd[2], etcd[3] }, pick("etcd[1:2]")) -- both ends included
         assert.are.same({ table.unpack(etcd, 2) }, pick("etcd[1:]"))
         assert.are.same({ etcd[2] }, pick("etcd:&etcd[1]"))
         assert.are.same(all, pick(""))
         assert.are.same(etcd, pick("etcd", ""))
         assert.are.same(etcd, pick("etcd", { "" }))
         local none, w = pick("etcd[99]")
         assert.are.same({}, none)
         assert.are.equal("host pattern 'etcd[99]' matches no group or host", w)
      end)

      it("gives an implicit localhost with the vars of all", function()
         inv = parse("[all:vars]\nansible_user=root\nk=v\n[etcd]\netcd1\n")
         local list, warning = inv:hosts("localhost")
         assert.is_nil(warning)
         assert.are.equal(1, #list)
         local lh = list[1]
         assert.are.equal("localhost", lh.name)
         assert.is_true(lh.implicit)
         assert.are.equal("local", lh.connection)
         assert.are.equal("v", lh.vars.k)
         assert.are.same({}, lh.groups)
         assert.are.same({ "etcd1", "localhost" }, (sel("etcd:localhost")))
         assert.are.same({ "etcd1" }, (sel("all")))
         -- a real localhost in the inventory wins
         inv = parse("localhost ansible_connection=ssh\n")
         assert.is_nil(inv:hosts("localhost")[1].implicit)
         assert.are.equal("ssh", inv:hosts("localhost")[1].connection)
      end)

      it("does not split an IPv6 name", function()
         inv = parse("fe80::1\nfe80::2\n")
         assert.are.same({ "fe80::2" }, (sel("fe80::2")))
         assert.are.same({ "fe80::1", "fe80::2" }, (sel("fe80::1,fe80::2")))
      end)
   end)
end)
