local helper = require("support.helper")
local template = require("etcdrun.core.template")
local facade = require("etcdrun.template")

-- The seed's templates/etcd.conf.yaml.j2 after its step 14 (TLS), verbatim.
-- luacheck: push ignore 631
local ETCD_CONF = [[
data-dir: /var/lib/etcd/{{ inventory_hostname }}.etcd
name: {{ inventory_hostname }}
initial-advertise-peer-urls: https://{{ hostvars[inventory_hostname]['ansible_facts']['eth1']['ipv4']['address'] }}:2380
listen-peer-urls: https://{{ hostvars[inventory_hostname]['ansible_facts']['eth1']['ipv4']['address'] }}:2380,https://127.0.0.1:2380
advertise-client-urls: https://{{ hostvars[inventory_hostname]['ansible_facts']['eth1']['ipv4']['address'] }}:2379
listen-client-urls: https://{{ hostvars[inventory_hostname]['ansible_facts']['eth1']['ipv4']['address'] }}:2379,https://127.0.0.1:2379
initial-cluster-state: new
initial-cluster: {% for host in groups['etcd'] %}{{ hostvars[host]['ansible_facts']['hostname'] }}=https://{{ hostvars[host]['ansible_facts']['eth1']['ipv4']['address'] }}:2380{% if not loop.last %},{% endif %}{% endfor %}

client-transport-security:
  cert-file: /etc/etcd/ssl/server.crt
  key-file: /etc/etcd/ssl/server.key
  trusted-ca-file: /etc/etcd/ssl/ca.crt
peer-transport-security:
  cert-file: /etc/etcd/ssl/server.crt
  key-file: /etc/etcd/ssl/server.key
  trusted-ca-file: /etc/etcd/ssl/ca.crt
]]
-- luacheck: pop

-- Variables shaped like Ansible's: groups and hostvars with gathered facts.
local function ansible_vars(me, n)
   local hostvars, names = {}, {}
   for i = 1, n or 3 do
      local h = "etcd" .. i
      names[i] = h
      hostvars[h] = {
         ansible_facts = { hostname = h, eth1 = { ipv4 = { address = "10.0.0." .. (10 + i) } } },
      }
   end
   return { inventory_hostname = me, hostvars = hostvars, groups = { etcd = names } }
end

-- As with Ansible (trim_blocks), the newline right after the closing
-- {% endfor %} is dropped: the template's blank line does not appear.
local function expected_conf(me, ip)
   return ([[
data-dir: /var/lib/etcd/ME.etcd
name: ME
initial-advertise-peer-urls: https://IP:2380
listen-peer-urls: https://IP:2380,https://127.0.0.1:2380
advertise-client-urls: https://IP:2379
listen-client-urls: https://IP:2379,https://127.0.0.1:2379
initial-cluster-state: new
initial-cluster: etcd1=https://10.0.0.11:2380,etcd2=https://10.0.0.12:2380,etcd3=https://10.0.0.13:2380
client-transport-security:
  cert-file: /etc/etcd/ssl/server.crt
  key-file: /etc/etcd/ssl/server.key
  trusted-ca-file: /etc/etcd/ssl/ca.crt
peer-transport-security:
  cert-file: /etc/etcd/ssl/server.crt
  key-file: /etc/etcd/ssl/server.key
  trusted-ca-file: /etc/etcd/ssl/ca.crt
]]):gsub("ME", me):gsub("IP", ip)
end

local function render(src, vars, opts)
   return template.render(src, vars or {}, opts)
end

-- Assert the render fails with exactly this message (after "template.render: ").
local function fails(src, vars, msg, name)
   local out, err, code = template.render(src, vars or {}, { name = name or "t.j2" })
   assert.is_nil(out)
   assert.are.equal("template.render: " .. msg, err)
   assert.are.equal("ETEMPLATE", code)
end

describe("template.render", function()
   describe("the seed's etcd.conf.yaml.j2", function()
      it("renders exactly, for each of three members", function()
         for i = 1, 3 do
            local me = "etcd" .. i
            local out = assert(render(ETCD_CONF, ansible_vars(me), { name = "etcd.conf.yaml.j2" }))
            assert.are.equal(expected_conf(me, "10.0.0." .. (10 + i)), out)
         end
      end)

      it("names the template, line, column and key when a fact is missing", function()
         local vars = ansible_vars("etcd1")
         vars.hostvars.etcd2.ansible_facts.eth1 = nil
         local _, err, code = render(ETCD_CONF, vars, { name = "etcd.conf.yaml.j2" })
         assert.are.equal("ETEMPLATE", code)
         assert.are.equal("template.render: etcd.conf.yaml.j2:8:143: undefined key 'eth1' in "
            .. "hostvars[host]['ansible_facts']", err)
      end)
   end)

   describe("expressions", function()
      it("prints strings, integers, floats and booleans the documented way", function()
         assert.are.equal("s 42 3.0 2.5 0.1 True False -7",
            render("{{ s }} {{ i }} {{ fi }} {{ f }} {{ 0.1 }} {{ t }} {{ false }} {{ -7 }}",
               { s = "s", i = 42, fi = 3.0, f = 2.5, t = true }))
      end)

      it("looks up with dots, strings, variables and 0-based indexes", function()
         local vars = { a = { b = { c = "x" } }, l = { "p", "q", "r" }, k = "b", n = 1 }
         assert.are.equal("x x x p r q q", render("{{ a.b.c }} {{ a['b']['c'] }} {{ a[k].c }} "
            .. "{{ l[0] }} {{ l[-1] }} {{ l[n] }} {{ l.1 }}", vars))
      end)

      it("has not, and, or, comparisons, in, ~ and conditional expressions", function()
         local vars = { l = { "a", "b" }, d = { k = 1 }, z = 0, s = "hello" }
         assert.are.equal("True False True True False True True",
            render("{{ not z }} {{ 'a' not in l }} {{ 'k' in d }} {{ 'ell' in s }} "
               .. "{{ 2 < 1 or 'b' >= 'c' }} {{ 1 == 1.0 and s != 'x' }} {{ 2 <= 2 }}", vars))
         assert.are.equal("b 0 a-1 yes", render("{{ z or 'b' }} {{ z and 'x' }} "
            .. "{{ l[0] ~ '-' ~ 1 }} {{ 'yes' if 'b' in l else 'no' }}", vars))
         assert.are.equal("True", render("{{ 'b' in ['a', 'b'] }}"))
         assert.are.equal("", render("{{ '' }}")) -- empty output first (found by the fuzzer)
      end)

      it("tests definedness without failing", function()
         assert.are.equal("no yes True", render("{% if x is defined %}yes{% else %}no{% endif %} "
            .. "{% if a.b is not defined %}yes{% endif %} {{ l[9] is undefined }}",
            { a = {}, l = {} }))
      end)
   end)

   describe("for", function()
      it("sets loop.index, index0, first, last, length, revindex", function()
         local out = render("{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
            .. "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}:{{ x }} "
            .. "{% endfor %}", { l = { "a", "b" } })
         assert.are.equal("10TrueFalse221:a 21FalseTrue210:b ", out)
      end)

      it("nests, each loop with its own loop variable", function()
         local out = render("{% for a in l %}{% for b in m %}{{ a }}{{ b }}{{ loop.index }} "
            .. "{% endfor %}{{ loop.index }}|{% endfor %}", { l = { 1, 2 }, m = { "x", "y" } })
         assert.are.equal("1x1 1y2 1|2x1 2y2 2|", out)
      end)

      it("renders else for an empty list and iterates mappings in key order", function()
         assert.are.equal("none", render("{% for x in l %}{{ x }}{% else %}none{% endfor %}",
            { l = {} }))
         local vars = { d = { b = 2, a = 1, C = 3 } }
         assert.are.equal("Cab", render("{% for k in d %}{{ k }}{% endfor %}", vars))
         assert.are.equal("a=1;b=2;C=3;",
            render("{% for k, v in d|dictsort %}{{ k }}={{ v }};{% endfor %}", vars))
         assert.are.equal("C=3;a=1;b=2;",
            render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", vars))
      end)
   end)

   it("chooses among if, elif and else with Jinja's truthiness", function()
      local src = "{% if a %}A{% elif b %}B{% elif c %}C{% else %}E{% endif %}"
      assert.are.equal("A", render(src, { a = 1, b = true, c = true }))
      assert.are.equal("B", render(src, { a = 0, b = "x", c = true }))
      assert.are.equal("C", render(src, { a = "", b = {}, c = { 1 } }))
      assert.are.equal("E", render(src, { a = false, b = 0.0, c = false }))
   end)

   describe("filters", function()
      it("join, default, upper, lower, length, string, trim, replace, quote", function()
         local vars = { l = { "a", 1, true }, e = {}, s = "AbC", d = { x = 1, y = 2 } }
         assert.are.equal("a, 1, True|a1True|", render("{{ l|join(', ') }}|{{ l|join }}|{{ e|join }}",
            vars))
         assert.are.equal("d|0|x|z", render("{{ nope|default('d') }}|{{ nope|d(0) }}|"
            .. "{{ ''|default('x', true) }}|{{ nope.deeper|default(also_nope|default('z')) }}", vars))
         assert.are.equal("ABC abc 3 2 3 3", render("{{ s|upper }} {{ s|lower }} {{ l|length }} "
            .. "{{ d|length }} {{ 'h\u{e9}j'|length }} {{ 3|string }}", vars))
         assert.are.equal("[x] a_b_c", render("[{{ '  x \n'|trim }}] {{ 'a b c'|replace(' ', '_') }}"))
         assert.are.equal([[abc 'a b' 'it'"'"'s' '']],
            render([[{{ 'abc'|quote }} {{ 'a b'|quote }} {{ "it's"|quote }} {{ ''|quote }}]]))
      end)

      it("indent indents all lines but the first, as Jinja's does", function()
         local vars = { s = "a\nb\n\nc\n" }
         assert.are.equal("k:\n  a\n  b\n\n  c\n", render("k:\n  {{ s|indent(2) }}", vars))
         assert.are.equal("    a\n    b\n\n    c\n", render("{{ s|indent(first=true) }}", vars))
         assert.are.equal("a\n> b\n> \n> c\n> ", render("{{ s|indent('> ', blank=true) }}", vars))
      end)
   end)

   describe("whitespace", function()
      it("drops the newline after a block tag (trim_blocks) but not after {{ }}", function()
         local src = "{% for x in l %}\n{{ x }}\n{% endfor %}\nend\n"
         assert.are.equal("a\nb\nend\n", render(src, { l = { "a", "b" } }))
         assert.are.equal("x\ny\n", render("{# note #}\n{{ 'x' }}\n{% if true %}\ny\n{% endif %}"))
         assert.are.equal("\n\nkeep\n", render("{% if true +%}\n\nkeep\n{% endif %}"))
         assert.are.equal("\nkeep\n", render("{% if true %}\n\nkeep\n{% endif %}"))
      end)

      it("strips around {%- -%}, {{- -}} and {#- -#}", function()
         assert.are.equal("[a,b]", render("[\n  {%- for x in l -%}\n  {{ x }}\n  {%- if not loop.last %}"
            .. ",{% endif -%}\n{%- endfor -%}\n]", { l = { "a", "b" } }))
         assert.are.equal("x|y", render("x  \n {{- '|' -}} \n\n y"))
         assert.are.equal("ab", render("a\n{#- comment -#}\n  b"))
      end)

      it("keeps {% raw %} content and the template's last newline", function()
         assert.are.equal("{{ x }}!\n", render("{% raw %}{{ x }}{% endraw %}!\n"))
      end)
   end)

   describe("errors name the template, line and column", function()
      it("for an undefined variable", function()
         fails("name: x\n\nabcdefgh: {{ foo }}\n", {},
            "etcd.conf.yaml.j2:3:14: undefined variable 'foo'", "etcd.conf.yaml.j2")
         local _, err = render("{{ foo }}", {})
         assert.are.equal("template.render: <template>:1:4: undefined variable 'foo'", err)
      end)

      it("for a missing key, an index out of range and a lookup into a non-table", function()
         local vars = { a = { b = {} }, l = { 1, 2, 3 }, s = "str" }
         fails("{{ a.b.c }}", vars, "t.j2:1:8: undefined key 'c' in a.b")
         fails("x\n {{ a['b']['c'] }}", vars, "t.j2:2:12: undefined key 'c' in a['b']")
         fails("{{ l[3] }}", vars, "t.j2:1:6: undefined index 3 in l (length 3)")
         fails("{{ l[-4] }}", vars, "t.j2:1:6: undefined index -4 in l (length 3)")
         fails("{{ s.x }}", vars, "t.j2:1:6: undefined key 'x' in s (a string)")
      end)

      it("for an unclosed or stray block", function()
         fails("a\n{% for x in l %}\nb\nc\n", { l = {} },
            "t.j2:4:2: unexpected end of template, expected {% endfor %} (for opened at 2:1)")
         fails("{% if a %}\n  {% for x in l %}{% endif %}", {},
            "t.j2:2:19: unexpected {% endif %}, expected {% endfor %} (for opened at 2:3)")
         fails("{% if a %}x{% else %}y{% elif b %}z{% endif %}", {},
            "t.j2:1:23: unexpected {% elif %}, expected {% endif %} (if opened at 1:1)")
         fails("ok\n{% endif %}", {}, "t.j2:2:1: unexpected {% endif %}")
         fails("{# never closed", {},
            "t.j2:1:16: unexpected end of template, expected '#}' (comment opened at 1:1)")
      end)

      it("for bad syntax inside a tag", function()
         fails("{{ a b }}", {}, "t.j2:1:6: unexpected 'b', expected '}}'")
         fails("{{ a %}", {}, "t.j2:1:6: unexpected '%}', expected '}}'")
         fails("{{ }}", {}, "t.j2:1:4: unexpected '}}', expected an expression")
         fails("{{ 'abc }}", {}, "t.j2:1:4: unterminated string literal")
         fails("{{ a", {}, "t.j2:1:5: unexpected end of template, expected '}}'")
         fails("{{ a ^ 2 }}", {}, "t.j2:1:6: unexpected character '^'")
         fails("{% frobnicate %}", {}, "t.j2:1:4: unknown tag 'frobnicate'")
         fails("{% for in l %}{% endfor %}", {},
            "t.j2:1:8: unexpected 'in', expected a loop variable name")
         fails("{{ x|frobnicate }}", {}, "t.j2:1:6: unknown filter 'frobnicate'")
         fails("{{ x|join(1, 2, 3) }}", {}, "t.j2:1:17: too many arguments for filter 'join'")
         fails("{{ x|indent(depth=2) }}", {}, "t.j2:1:13: unknown argument 'depth' for filter 'indent'")
         fails("{{ x|replace('a') }}", {}, "t.j2:1:6: missing argument 'new' for filter 'replace'")
      end)

      it("for a syntax error anywhere before rendering anything", function()
         -- line 1 alone would fail as undefined: the parse error on line 3 wins
         fails("{{ undefined_here }}\nfine\n{% if %}", {}, "t.j2:3:7: unexpected '%}', expected "
            .. "an expression")
      end)

      it("for values that cannot be printed, iterated or compared", function()
         local vars = { t = { 1 }, n = 5, s = "abc" }
         fails("{{ f }}", { f = print }, "t.j2:1:4: cannot render f (a function)")
         fails("{% for x in n %}{% endfor %}", vars, "t.j2:1:13: cannot iterate over n (a number)")
         fails("{{ n < s }}", vars, "t.j2:1:6: cannot compare a number with a string")
         fails("{% for k, v in t %}{% endfor %}", vars, "t.j2:1:16: cannot unpack item 0 of t "
            .. "(a number) into 2 loop variables; use |dictsort or .items()")
         fails("{{ [t]|join }}", vars, "t.j2:1:8: cannot join [t]: item 0 is a table")
      end)
   end)

   describe("found by the fuzzer", function()
      it("a backslash before a NUL byte in regex_replace's replacement stays, as in Python", function()
         assert.are.equal("x\\\0y", render("{{ 'ay'|regex_replace('a', r) }}", { r = "x\\\0" }))
         assert.are.equal("\0b", render([[{{ 'ab'|regex_replace('a', '\\0') }}]]))
      end)
   end)

   describe("sandbox", function()
      it("never calls a function and cannot print one", function()
         local called = false
         local vars = { f = function() called = true return "x" end, t = { f = print } }
         fails("{{ f() }}", vars, "t.j2:1:5: calling functions is not supported")
         fails("{{ t.f }}", vars, "t.j2:1:4: cannot render t.f (a function)")
         fails("{{ f|upper }}", vars, "t.j2:1:4: cannot render f (a function)")
         fails("{% if f %}{% endif %}", vars, "t.j2:1:7: cannot use f (a function) as a condition")
         fails("{{ t.f.__name }}", vars, "t.j2:1:8: undefined key '__name' in t.f (a function)")
         assert.is_false(called)
      end)

      it("sees only the vars table: no globals, no metatables", function()
         local vars = setmetatable({ t = setmetatable({}, { __index = { secret = 1 } }) },
            { __index = _G })
         fails("{{ print }}", vars, "t.j2:1:4: undefined variable 'print'")
         fails("{{ string.format }}", vars, "t.j2:1:4: undefined variable 'string'")
         fails("{{ t.secret }}", vars, "t.j2:1:6: undefined key 'secret' in t")
         fails("{{ _G }}", vars, "t.j2:1:4: undefined variable '_G'")
         local mt = setmetatable({}, { __len = function() error("__len called") end,
            __index = function() error("__index called") end })
         assert.are.equal("0 False", render("{{ m|length }} {{ 'x' in m }}", { m = mt }))
      end)
   end)

   describe("limits", function()
      it("renders a large template over many hosts", function()
         local vars = ansible_vars("etcd1", 2000)
         local parts = {}
         for i = 1, 2000 do
            parts[i] = "line " .. i .. ": {{ inventory_hostname }} {{ groups.etcd[" .. (i - 1) .. "] }}\n"
         end
         local src = table.concat(parts)
            .. "{% for h in groups.etcd %}{{ hostvars[h].ansible_facts.eth1.ipv4.address }}\n{% endfor %}"
         local out = assert(render(src, vars))
         assert.matches("^line 1: etcd1 etcd1\n", out)
         assert.matches("\nline 2000: etcd1 etcd2000\n10%.0%.0%.11\n", out)
         assert.matches("\n10%.0%.0%.2010\n$", out)
         local _, lines = out:gsub("\n", "")
         assert.are.equal(4000, lines)
      end)

      it("fails past 64 MiB of output", function()
         local big = string.rep("x", 1024 * 1024)
         local l = {}
         for i = 1, 65 do l[i] = i end
         fails("\n{% for i in l %}{{ big }}{% endfor %}", { big = big, l = l },
            "t.j2:2:17: output longer than 64 MiB")
      end)

      it("fails past 64 MiB in one string and 4 Mi loop iterations", function()
         fails("{{ x ~ x ~ x }}", { x = string.rep("a", 30 * 1024 * 1024) },
            "t.j2:1:10: string longer than 64 MiB")
         fails("{{ x|indent(40000000) }}", { x = "a\nb" }, "t.j2:1:6: string longer than 64 MiB")
         local l = {}
         for i = 1, 2100 do l[i] = i end
         fails("{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", { l = l },
            "t.j2:1:17: more than 4194304 loop iterations")
      end)

      it("bounds what arithmetic, repetition and regular expressions can cost", function()
         fails("{{ 'x' * 100000000 }}", {}, "t.j2:1:8: string longer than 64 MiB")
         fails("{{ [0] * 10000000 }}", {}, "t.j2:1:8: list longer than 4194304 items")
         fails("{{ 2 ** 100 }}", {}, "t.j2:1:6: integer overflow in **")
         fails("{{ 9223372036854775807 + 1 }}", {}, "t.j2:1:24: integer overflow in +")
         fails("{{ 1 // 0 }}", {}, "t.j2:1:6: division by zero")
         local evil = { s = string.rep("a", 40) .. "!" }
         fails("{{ s|regex_replace('(a+)+$', 'x') }}", evil, "t.j2:1:6: regular expression took too long")
         fails("{{ s is search('(a+)+$') }}", evil, "t.j2:1:9: regular expression took too long")
         fails("{{ s|regex_replace('(', 'x') }}", evil,
            "t.j2:1:6: invalid regular expression '(': U_REGEX_MISMATCHED_PAREN")
      end)

      it("refuses expressions nested too deeply", function()
         fails("{{ " .. string.rep("(", 200) .. "1" .. string.rep(")", 200) .. " }}", {},
            "t.j2:1:104: expression nested too deeply (limit 100)")
         fails("{{ x" .. string.rep(".a", 150) .. " }}", {},
            "t.j2:1:204: expression nested too deeply (limit 100)")
         fails(string.rep("{% if true %}", 70), {}, "t.j2:1:833: blocks nested too deeply (limit 64)")
      end)
   end)

   describe("misuse raises", function()
      it("on a non-string source, non-table vars and unknown options", function()
         assert.has_error(function() template.render(nil, {}) end)
         assert.has_error(function() template.render(12, {}) end)
         assert.has_error(function() template.render("x", "vars") end)
         assert.has_error(function() template.render("x") end)
         assert.has_error(function() template.render("x", {}, { nmae = "t" }) end,
            "template.render: unknown option 'nmae' (known: name)")
         assert.has_error(function() template.render("x", {}, { name = 1 }) end)
      end)
   end)

   describe("the facade", function()
      it("returns the string, and raises the core's message on failure", function()
         assert.are.equal("hi x", facade.render("hi {{ a }}", { a = "x" }))
         assert.has_error(function() facade.render("{{ a }}", {}, { name = "f.j2" }) end,
            "template.render: f.j2:1:4: undefined variable 'a'")
         local out, err, code = facade.try.render("{{ a }}", {})
         assert.is_nil(out)
         assert.matches("undefined variable 'a'", err)
         assert.are.equal("ETEMPLATE", code)
      end)
   end)

   it("works from the command line (etcdrun -e) for three members", function()
      local dir = helper.tmpdir()
      helper.write(dir .. "/etcd.conf.yaml.j2", ETCD_CONF)
      local code = ([==[
         local f = assert(io.open(%q))
         local src = f:read("a")
         f:close()
         local hostvars, names = {}, {}
         for i = 1, 3 do
            names[i] = "etcd" .. i
            hostvars[names[i]] = { ansible_facts = { hostname = names[i],
               eth1 = { ipv4 = { address = "10.0.0." .. (10 + i) } } } }
         end
         for _, me in ipairs(names) do
            io.write(etcdrun.template.render(src, { inventory_hostname = me, hostvars = hostvars,
               groups = { etcd = names } }, { name = "etcd.conf.yaml.j2" }), "---\n")
         end
      ]==]):format(dir .. "/etcd.conf.yaml.j2")
      local out, err, rc = helper.etcdrun_e(code)
      assert.are.equal("", err)
      assert.are.equal(0, rc)
      assert.are.equal(expected_conf("etcd1", "10.0.0.11") .. "---\n"
         .. expected_conf("etcd2", "10.0.0.12") .. "---\n"
         .. expected_conf("etcd3", "10.0.0.13") .. "---\n", out)

      -- and a failing render exits 1 with the message on stderr
      out, err, rc = helper.etcdrun_e("etcdrun.template.render('{{ nope }}', {}, {name = 'x.j2'})")
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.matches("template.render: x.j2:1:4: undefined variable 'nope'", err, 1, true)
   end)
end)
