-- The systemd primitive: unit files parsed and rendered, `systemctl show`
-- output parsed. Pure text, so no nodes are needed here; the systemd module's
-- spec checks the same parser against real systemd on the lab.
local core = require("etcdrun.core.systemd")
local systemd = require("etcdrun.systemd")

local ETCD = [[
# etcd, as a site would write it
[Unit]
Description=etcd key-value store
Documentation=https://etcd.io
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
User=etcd
ExecStart=/usr/local/bin/etcd \
  --config-file /etc/etcd/etcd.conf.yaml
Restart=on-failure
RestartSec=5
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
]]

describe("systemd primitive", function()
   describe("parse_unit", function()
      it("keeps sections and entries in file order, continuations joined as systemd does", function()
         local u = assert(core.parse_unit(ETCD, "etcd.service"))
         assert.are.same({
            { "Unit", {
               { "Description", "etcd key-value store" },
               { "Documentation", "https://etcd.io" },
               { "After", "network-online.target" },
               { "Wants", "network-online.target" },
            } },
            { "Service", {
               { "Type", "notify" },
               { "User", "etcd" },
               -- the backslash becomes a space and the next line is appended as it is
               { "ExecStart", "/usr/local/bin/etcd    --config-file /etc/etcd/etcd.conf.yaml" },
               { "Restart", "on-failure" },
               { "RestartSec", "5" },
               { "LimitNOFILE", "65536" },
            } },
            { "Install", { { "WantedBy", "multi-user.target" } } },
         }, u)
      end)

      it("keeps repeated keys and sections, trims, skips comments, CRLF and a BOM", function()
         local text = "\239\187\191  [Service]  \r\n"
            .. "ExecStartPre = /bin/a \r\n"
            .. "; semicolon comment\r\n"
            .. "   # indented comment\r\n"
            .. "ExecStart=\r\n"
            .. "ExecStart=/bin/b x=y\r\n"
            .. "\r\n"
            .. "[Service]\n"
            .. "Environment=A=1 B=2\n"
            .. "Description"    -- no newline at the end, no '=': an error on line 9
         local u, err, code = core.parse_unit(text, "x.service")
         assert.is_nil(u)
         assert.are.equal("EPARSE", code)
         assert.are.equal("systemd.parse_unit: x.service:10: expected key=value or [Section]", err)
         u = assert(core.parse_unit(text:gsub("Description$", "Description=")))
         assert.are.same({
            { "Service", { { "ExecStartPre", "/bin/a" }, { "ExecStart", "" }, { "ExecStart", "/bin/b x=y" } } },
            { "Service", { { "Environment", "A=1 B=2" }, { "Description", "" } } },
         }, u)
      end)

      it("follows systemd on comments inside continuations and escaped backslashes", function()
         -- checked against systemd 252 on a lab node: Description=a    b   c\\
         local text = "[Unit]\nDescription=a \\\n  b\\\n# comment\n;c\n  c\\\\\nAfter=x\n"
         local u = assert(core.parse_unit(text))
         assert.are.same({ { "Description", "a    b   c\\\\" }, { "After", "x" } }, u[1][2])
         -- a continuation that runs into the end of the file still counts
         u = assert(core.parse_unit("[Unit]\nDescription=a\\\n"))
         assert.are.same({ { "Description", "a" } }, u[1][2])
         -- an empty line ends a continuation
         u = assert(core.parse_unit("[Unit]\nDescription=a \\\n\nAfter=b\n"))
         assert.are.same({ { "Description", "a" }, { "After", "b" } }, u[1][2])
      end)

      it("parses empty and comment-only text to no sections", function()
         assert.are.same({}, assert(core.parse_unit("")))
         assert.are.same({}, assert(core.parse_unit("# nothing\n\n; here\n")))
      end)

      local bad = {
         { "[Unit]\nDescription=x\nnonsense\n", 3, "expected key=value or [Section]" },
         { "Description=x\n[Unit]\n", 1, "assignment 'Description' outside of a [Section]" },
         { "[Unit\n", 1, "invalid section header '[Unit'" },
         { "[]\n", 1, "invalid section header '[]'" },
         { "[A]B]\n", 1, "invalid section header '[A]B]'" },
         { "[Unit]\n=x\n", 2, "missing key before '='" },
         { "[Unit]\nDescrip tion=x\n", 2, "invalid key 'Descrip tion'" },
         { "[Unit]\nA=1\nB=2 \\\n  3 \\\n  oops\\\n\nC\n", 7, "expected key=value or [Section]" },
         -- a continued line is named by its first physical line
         { "[Unit]\nA=1\nB 2 \\\n  3\n", 3, "expected key=value or [Section]" },
         { "[Unit]\nA=\0\n", 2, "NUL byte in unit file" },
      }
      for _, case in ipairs(bad) do
         it(("names unit:line for %q"):format(case[1]), function()
            local u, err, code = core.parse_unit(case[1], "etcd.service")
            assert.is_nil(u)
            assert.are.equal("EPARSE", code)
            assert.are.equal(("systemd.parse_unit: etcd.service:%d: %s"):format(case[2], case[3]), err)
         end)
      end

      it("names the first line of a continued line that is too long", function()
         local long = "[Unit]\nDescription=" .. string.rep("x", 600000) .. "\\\n" .. string.rep("y", 600000) .. "\n"
         local u, err = core.parse_unit(long)
         assert.is_nil(u)
         assert.are.equal("systemd.parse_unit: unit:2: line longer than 1048576 bytes", err)
         -- just under the limit is fine
         u = assert(core.parse_unit("[Unit]\nD=" .. string.rep("x", 1048576 - 2)))
         assert.are.equal(1048576 - 2, #u[1][2][1][2])
      end)

      it("raises through the facade, returns nil, err, code through try", function()
         assert.has_error(function()
            systemd.parse_unit("junk\n", "a.service")
         end, "systemd.parse_unit: a.service:1: expected key=value or [Section]")
         local u, err, code = systemd.try.parse_unit("junk\n")
         assert.is_nil(u)
         assert.are.equal("EPARSE", code)
         assert.matches("unit:1", err)
         assert.has_error(function()
            core.parse_unit({})
         end)
      end)

      it("never crashes on arbitrary bytes", function()
         math.randomseed(42)
         local alphabet = "[]=\\\n\r#; \tAbc\0\239"
         for _ = 1, 3000 do
            local parts = {}
            for i = 1, math.random(0, 60) do
               local k = math.random(1, #alphabet)
               parts[i] = alphabet:sub(k, k)
            end
            local text = table.concat(parts)
            local u, err = core.parse_unit(text)
            assert.is_true(type(u) == "table" or type(err) == "string")
            if u then
               -- whatever parses renders, and the rendering parses back to the same
               assert.are.same(u, assert(core.parse_unit(core.render(u))))
            end
            local s, serr = core.parse_show(text)
            assert.is_true(type(s) == "table" or type(serr) == "string")
         end
      end)
   end)

   describe("render", function()
      it("renders the list form in its order and round-trips", function()
         local u = assert(core.parse_unit(ETCD))
         local text = core.render(u)
         assert.are.same(u, assert(core.parse_unit(text)))
         -- canonical text renders back to itself
         assert.are.equal(text, core.render(assert(core.parse_unit(text))))
         assert.are.equal(1, select(2, text:gsub("%[Service%]\n", "")))
         assert.matches("\n\n%[Install%]\nWantedBy=multi%-user%.target\n$", text)
      end)

      it("renders the map form: Unit first, Install last, others by name, keys sorted", function()
         local text = core.render({
            Install = { WantedBy = "multi-user.target" },
            Service = {
               ExecStart = { "", "/usr/bin/etcd --name a" },
               Type = "notify",
               Restart = "on-failure",
               RestartSec = 5,
               TimeoutStartSec = 1.5,
               NoNewPrivileges = true,
               PrivateTmp = false,
            },
            Unit = { Description = "etcd", After = { "network-online.target", "time-sync.target" } },
            ["X-Site"] = { Owner = "ops" },
         })
         assert.are.equal([[
[Unit]
After=network-online.target
After=time-sync.target
Description=etcd

[Service]
ExecStart=
ExecStart=/usr/bin/etcd --name a
NoNewPrivileges=yes
PrivateTmp=no
Restart=on-failure
RestartSec=5
TimeoutStartSec=1.5
Type=notify

[X-Site]
Owner=ops

[Install]
WantedBy=multi-user.target
]], text)
      end)

      it("accepts a map as a section's entries in the list form, and empty input", function()
         assert.are.equal("[Timer]\nOnCalendar=daily\nPersistent=yes\n\n[Install]\n",
            core.render({ { "Timer", { Persistent = true, OnCalendar = "daily" } }, { "Install", {} } }))
         assert.are.equal("", core.render({}))
      end)

      local misuse = {
         { { Unit = { Description = "a\nExecStart=/bin/evil" } }, "%[Unit%] Description: value holds a line break" },
         { { Service = { ExecStart = "/bin/a \\" } }, "%[Service%] ExecStart: value ends in an unescaped backslash" },
         { { Unit = { ["Bad Key"] = "x" } }, "%[Unit%]: invalid key 'Bad Key'" },
         { { ["Un]it"] = { A = "x" } }, "invalid section name 'Un%]it'" },
         { { Unit = { After = { a = 1 } } }, "%[Unit%] After: a table value must be a list" },
         { { Unit = { After = { {} } } }, "%[Unit%] After: value must be a string, number or boolean, got table" },
         { { Unit = "x" }, "%[Unit%]: entries must be a table, got string" },
         { { { "Unit", { { 1, "x" } } } }, "%[Unit%] entry 1: key must be a string" },
         { { { "Unit", { "After=x" } } }, "%[Unit%] entry 1 must be a {key, value} pair" },
         { { "Unit" }, "section 1 must be a {name, entries} pair" },
         { { [true] = {} }, "sections: keys must be strings" },
      }
      for i, case in ipairs(misuse) do
         it("raises on a malformed table (" .. i .. ")", function()
            local ok, err = pcall(core.render, case[1])
            assert.is_false(ok)
            assert.matches("^systemd%.render: " .. case[2], err)
         end)
      end
   end)

   describe("parse_show", function()
      it("parses one unit's properties, values kept raw after the first '='", function()
         local r = assert(core.parse_show(table.concat({
            "Id=etcd.service",
            "LoadState=loaded",
            "ActiveState=active",
            "FragmentPath=/etc/systemd/system/etcd.service",
            "UnitFileState=",
            "ExecMainStatus=0",
            "Environment=ETCD_NAME=a ETCD_DATA_DIR=/var/lib/etcd",
            "",
         }, "\n")))
         assert.are.same({ {
            Id = "etcd.service",
            LoadState = "loaded",
            ActiveState = "active",
            FragmentPath = "/etc/systemd/system/etcd.service",
            UnitFileState = "",
            ExecMainStatus = "0",
            Environment = "ETCD_NAME=a ETCD_DATA_DIR=/var/lib/etcd",
         } }, r)
      end)

      it("splits units on blank lines", function()
         local r = assert(core.parse_show("Id=a.service\nActiveState=active\n\nId=b.service\n"
            .. "ActiveState=failed\n\n\nId=c.service\r\nActiveState=inactive\r\n"))
         assert.are.same({
            { Id = "a.service", ActiveState = "active" },
            { Id = "b.service", ActiveState = "failed" },
            { Id = "c.service", ActiveState = "inactive" },
         }, r)
         assert.are.same({}, assert(core.parse_show("")))
      end)

      it("names the line that is not Property=value", function()
         local r, err, code = core.parse_show("Id=a\nFailed to connect to bus: No such file\n")
         assert.is_nil(r)
         assert.are.equal("EPARSE", code)
         assert.are.equal("systemd.parse_show: line 2: expected Property=value, got "
            .. "'Failed to connect to bus: No such file'", err)
         assert.has_error(function()
            systemd.parse_show("=x")
         end, "systemd.parse_show: line 1: expected Property=value, got '=x'")
      end)
   end)

   describe("values", function()
      it("collects a key's values across repeated sections in order", function()
         local u = systemd.parse_unit("[Install]\nWantedBy=a\n[Unit]\nWantedBy=no\n[Install]\n"
            .. "Alias=x\nWantedBy=b\n")
         assert.are.same({ "a", "b" }, systemd.values(u, "Install", "WantedBy"))
         assert.are.same({}, systemd.values(u, "Service", "ExecStart"))
      end)
   end)
end)
