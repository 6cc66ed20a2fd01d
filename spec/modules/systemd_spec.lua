-- The systemd module against real systemd on lab nodes etcd4 and etcd5.
local lab = require("support.lab")
local modtest = require("support.modtest")
local host = require("etcdrun.host")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")
local systemd = require("etcdrun.systemd")

local TEST = "etcdrun-test.service"
local FAIL = "etcdrun-fail.service"
local NOTIFY = "etcdrun-notify.service"
local DROPIN_DIR = "/etc/systemd/system/etcdrun-test.service.d"

local UNIT = {
   Unit = { Description = "etcdrun test unit" },
   Service = { Type = "simple", ExecStart = "/bin/sleep infinity" },
   Install = { WantedBy = "multi-user.target" },
}

describe("systemd module", function()
   describe("arguments", function()
      local cases = {
         { {}, "module 'systemd': argument 'name' is required" },
         { { name = "x", state = "running" }, "argument 'state' must be one of started, stopped, restarted, "
            .. "reloaded, got 'running'" },
         { { name = "x", unit = {}, unit_file = "" }, "arguments unit_file and unit are mutually exclusive" },
         { { name = "x", enable = true }, "unknown argument 'enable'" },
         { { name = "x", unit_path = "etc/x" }, "argument 'unit_path' must be an absolute path" },
         { { name = "x", enabled = "yes" }, "argument 'enabled' must be true or false" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("systemd", c[1], "site.lua:3")
            assert.is_nil(ok)
            assert.matches(c[2], err, 1, true)
            assert.matches("^site%.lua:3: ", err)
         end)
      end

      -- refused by check before anything runs: the controller is never asked
      local checked = {
         { { name = "../x" }, "systemd: argument 'name': not a unit name: '../x'" },
         { { name = "x", wait = "long" }, "systemd: argument 'wait' must be true, false or a number of seconds" },
         { { name = "x", unit_file = "[Unit]\nDescription=x\nExecStart\n" },
            "systemd: argument 'unit_file': systemd.parse_unit: x.service:3: expected key=value or [Section]" },
         { { name = "x.timer", unit = { Timer = { OnCalendar = "daily\n[Service]" } } },
            "systemd: argument 'unit': systemd.render: [Timer] OnCalendar: value holds a line break" },
      }
      for _, c in ipairs(checked) do
         it("fails in check: " .. c[2], function()
            local r = modtest.run("systemd", c[1], localhost.new())
            assert.is_true(r.failed)
            assert.is_false(r.changed)
            assert.are.equal(c[2], r.msg:sub(1, #c[2]))
         end)
      end
   end)

   describe("on the lab", function()
      local dir, why_not, h4, h5

      local function sh(h, cmd)
         local r = assert(h:exec(cmd))
         return r.stdout:gsub("\n$", ""), r.status
      end
      local function prop(h, unit, p)
         return (sh(h, ("systemctl show -p %s --value %s"):format(p, unit)))
      end
      -- changes on every daemon-reload
      local function reloads(h)
         return (sh(h, "systemctl show -p UnitsLoadTimestampMonotonic --value"))
      end
      local function cleanup(h, units)
         for _, u in ipairs(units) do
            h:exec(("systemctl disable --now %s; systemctl reset-failed %s; rm -rf /etc/systemd/system/%s "
               .. "/etc/systemd/system/%s.d"):format(u, u, u, u))
         end
         h:exec("systemctl daemon-reload")
      end

      setup(function()
         dir, why_not = lab.ensure(10)
         if dir then
            local conn = { ssh_config = dir .. "/ssh_config" }
            h4 = host.new({ name = "etcd4", address = "198.18.0.14", user = "root" }, conn)
            h5 = host.new({ name = "etcd5", address = "198.18.0.15", user = "root" }, conn)
            cleanup(h4, { TEST, NOTIFY })
            cleanup(h5, { FAIL })
         end
      end)

      teardown(function()
         if dir then
            cleanup(h4, { TEST, NOTIFY })
            cleanup(h5, { FAIL })
         end
      end)

      it("creates, enables and starts a unit once, then finds it right", function()
         if not dir then pending(why_not) return end
         local args = { name = "etcdrun-test", unit = UNIT, enabled = true, state = "started" }
         local text = systemd.render(UNIT)

         local r = modtest.run("systemd", args, h4, { check = true })
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("would write, daemon-reload, enable, start", r.msg)
         assert.are.same({ path = "/etc/systemd/system/" .. TEST, before = "", after = text }, r.diff)
         -- check mode left the node as it was
         assert.are.equal("not-found", prop(h4, TEST, "LoadState"))
         assert.are.equal(1, select(2, sh(h4, "test -e /etc/systemd/system/" .. TEST)))

         local before = reloads(h4)
         r = modtest.run("systemd", args, h4)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("wrote /etc/systemd/system/etcdrun-test.service, enable, daemon-reload, start", r.msg)
         assert.are_not.equal(before, reloads(h4))
         assert.are.equal(text, (h4:read("/etc/systemd/system/" .. TEST)))
         assert.are.equal("644", (sh(h4, "stat -c %a /etc/systemd/system/" .. TEST)))
         assert.are.equal("enabled", prop(h4, TEST, "UnitFileState"))
         assert.are.equal("active", prop(h4, TEST, "ActiveState"))

         before = reloads(h4)
         r = modtest.run("systemd", args, h4)
         assert.is_false(r.failed, r.msg)
         assert.is_false(r.changed)
         assert.are.equal("etcdrun-test.service: ok (enabled, active)", r.msg)
         assert.are.equal("active", r.status.ActiveState)
         assert.are.equal(before, reloads(h4)) -- no daemon-reload when nothing changed
         -- the same content as a string is the same file
         r = modtest.run("systemd", { name = TEST, unit_file = text, state = "started" }, h4)
         assert.is_false(r.changed, r.msg)
      end)

      it("rewrites a changed unit with a diff, reloads, and leaves a running unit running", function()
         if not dir then pending(why_not) return end
         local pid = prop(h4, TEST, "MainPID")
         local changed = { Unit = { Description = "etcdrun test unit, v2" }, Service = UNIT.Service,
            Install = UNIT.Install }
         local args = { name = TEST, unit = changed, enabled = true, state = "started" }
         local r = modtest.run("systemd", args, h4, { check = true })
         assert.are.equal("would write, daemon-reload", r.msg)
         assert.matches("Description=etcdrun test unit\n", r.diff.before, 1, true)
         assert.matches("Description=etcdrun test unit, v2\n", r.diff.after, 1, true)
         assert.are.equal("etcdrun test unit", prop(h4, TEST, "Description"))
         r = modtest.run("systemd", args, h4)
         assert.is_true(r.changed)
         assert.are.equal("etcdrun test unit, v2", prop(h4, TEST, "Description"))
         assert.are.equal("no", prop(h4, TEST, "NeedDaemonReload"))
         assert.are.equal(pid, prop(h4, TEST, "MainPID"))
         assert.is_false(modtest.run("systemd", args, h4).changed)
      end)

      it("reloads when the file was edited behind systemd's back", function()
         if not dir then pending(why_not) return end
         sh(h4, "sed -i 's/, v2/, v3/' /etc/systemd/system/" .. TEST)
         assert.are.equal("yes", prop(h4, TEST, "NeedDaemonReload"))
         local r = modtest.run("systemd", { name = TEST, state = "started" }, h4)
         assert.is_true(r.changed)
         assert.are.equal("daemon-reload", r.msg)
         assert.are.equal("no", prop(h4, TEST, "NeedDaemonReload"))
         assert.are.equal("etcdrun test unit, v3", prop(h4, TEST, "Description"))
      end)

      it("adds a drop-in in a directory that does not exist yet", function()
         if not dir then pending(why_not) return end
         local args = { name = TEST, unit_path = DROPIN_DIR .. "/10-env.conf",
            unit = { Service = { Environment = { "A=1", '"B=two words"' } } } }
         local r = modtest.run("systemd", args, h4)
         assert.is_true(r.changed, r.msg)
         assert.are.equal("A=1 \"B=two words\"", prop(h4, TEST, "Environment"))
         assert.is_false(modtest.run("systemd", args, h4).changed)
      end)

      it("restarts every time it is asked to, and waits for active", function()
         if not dir then pending(why_not) return end
         local inv = prop(h4, TEST, "InvocationID")
         local r = modtest.run("systemd", { name = TEST, state = "restarted", wait = 10 }, h4)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("restart, active", r.msg)
         local inv2 = prop(h4, TEST, "InvocationID")
         assert.are_not.equal(inv, inv2)
         r = modtest.run("systemd", { name = TEST, state = "restarted" }, h4, { check = true })
         assert.is_true(r.changed)
         assert.are.equal(inv2, prop(h4, TEST, "InvocationID"))
      end)

      it("stops and disables, once", function()
         if not dir then pending(why_not) return end
         local args = { name = TEST, state = "stopped", enabled = false }
         local r = modtest.run("systemd", args, h4, { check = true })
         assert.are.equal("would disable, stop", r.msg)
         assert.are.same({ path = TEST, before = "UnitFileState=enabled\nActiveState=active\n",
            after = "UnitFileState=disabled\nActiveState=inactive\n" }, r.diff)
         assert.are.equal("active", prop(h4, TEST, "ActiveState"))
         r = modtest.run("systemd", args, h4)
         assert.is_true(r.changed)
         assert.are.equal("inactive", prop(h4, TEST, "ActiveState"))
         assert.are.equal("disabled", prop(h4, TEST, "UnitFileState"))
         assert.is_false(modtest.run("systemd", args, h4).changed)
      end)

      it("starts without waiting with no_block (Type=notify never notifying)", function()
         if not dir then pending(why_not) return end
         local t0 = os.time()
         local r = modtest.run("systemd", { name = NOTIFY, state = "started", no_block = true,
            unit = { Service = { Type = "notify", ExecStart = "/bin/sleep infinity", TimeoutStartSec = 60 } } }, h4)
         assert.is_false(r.failed, r.msg)
         assert.is_true(os.time() - t0 <= 2)
         assert.are.equal("activating", prop(h4, NOTIFY, "ActiveState"))
         -- activating counts as started: nothing more to do
         assert.is_false(modtest.run("systemd", { name = NOTIFY, state = "started" }, h4).changed)
         sh(h4, "systemctl stop " .. NOTIFY)
      end)

      it("fails a unit that dies at once, with its journal tail", function()
         if not dir then pending(why_not) return end
         local t0 = os.time()
         local r = modtest.run("systemd", { name = FAIL, state = "started", wait = 20,
            unit_file = "[Unit]\nDescription=etcdrun failing unit\n[Service]\nExecStart=/bin/false\n" }, h5)
         assert.is_true(r.failed)
         assert.are.equal("EUNIT", r.code)
         assert.is_true(os.time() - t0 < 10) -- a failed unit is not waited for until the deadline
         assert.matches("^systemd: etcdrun%-fail%.service did not become active within 20 s on etcd5 "
            .. "%(ActiveState=failed, SubState=failed, Result=exit%-code%); journal:\n", r.msg)
         assert.matches("etcdrun-fail.service: Main process exited, code=exited, status=1/FAILURE", r.msg, 1, true)
      end)

      it("names a unit that does not exist, and one that cannot be enabled", function()
         if not dir then pending(why_not) return end
         local r = modtest.run("systemd", { name = "etcdrun-nosuch", state = "started" }, h5)
         assert.is_true(r.failed)
         assert.are.equal("systemd: unit etcdrun-nosuch.service not found on etcd5 (give unit_file or unit "
            .. "to create it)", r.msg)
         r = modtest.run("systemd", { name = FAIL, enabled = true,
            unit_file = "[Unit]\nDescription=etcdrun failing unit\n[Service]\nExecStart=/bin/false\n" }, h5)
         assert.is_true(r.failed)
         assert.are.equal("systemd: etcdrun-fail.service cannot be enabled on etcd5: it has no [Install] section "
            .. "with WantedBy=, RequiredBy= or Alias=", r.msg)
         r = modtest.run("systemd", { name = "systemd-journald", state = "started", enabled = true }, h5)
         assert.is_true(r.failed)
         assert.matches("cannot be enabled on etcd5: .*%(UnitFileState=static%)$", r.msg)
      end)
   end)
end)

-- The decision alone: `systemctl show` fields and the unit file's content as
-- gather records them, no node. Each case compares the fields `want` names
-- (and `failed`, always).
describe("systemd plan", function()
   local mod = assert(module.load("systemd"))
   local text = systemd.render(UNIT)
   local old = text:gsub("etcdrun test unit", "etcdrun test unit, v0")
   local function show(fields)
      local st = { Id = "etcd.service", LoadState = "loaded", ActiveState = "active", SubState = "running",
         UnitFileState = "enabled", FragmentPath = "/etc/systemd/system/etcd.service", NeedDaemonReload = "no",
         Result = "success", Job = "" }
      for k, v in pairs(fields or {}) do
         st[k] = v
      end
      return st
   end
   local running = show()
   local stopped = show({ ActiveState = "inactive", SubState = "dead", UnitFileState = "disabled" })
   local missing = show({ LoadState = "not-found", ActiveState = "inactive", SubState = "dead", UnitFileState = "",
      FragmentPath = "" })
   local path = "/etc/systemd/system/etcd.service"
   local function summary(ufs, active)
      return ("UnitFileState=%s\nActiveState=%s\n"):format(ufs, active)
   end
   local function failed(msg)
      return { failed = true, changed = false, msg = "systemd: " .. msg }
   end

   local cases = {
      { name = "creates, enables and starts a new unit", state = { status = missing },
         args = { name = "etcd", unit = UNIT, enabled = true, state = "started" },
         want = { changed = true, msg = "would write, daemon-reload, enable, start",
            actions = { "write", "enable", "daemon-reload", "start" }, no_reload = true,
            diff = { path = path, before = "", after = text } } },
      { name = "the same under check", state = { status = missing }, opts = { check = true },
         args = { name = "etcd", unit = UNIT, enabled = true, state = "started" },
         want = { changed = true, msg = "would write, daemon-reload, enable, start",
            actions = { "write", "enable", "daemon-reload", "start" } } },
      { name = "idempotent: the file, enabled, running", state = { status = running, file = text },
         args = { name = "etcd", unit = UNIT, enabled = true, state = "started" },
         want = { changed = false, msg = "etcd.service: ok (enabled, active)", actions = {},
            result = { name = "etcd.service", path = path, status = running } } },
      { name = "the same text as unit_file is the same file", state = { status = running, file = text },
         args = { name = "etcd.service", unit_file = text },
         want = { changed = false, msg = "etcd.service: ok (enabled, active)" } },
      { name = "rewrites a changed file, leaves the running unit running", state = { status = running, file = old },
         args = { name = "etcd", unit = UNIT, enabled = true, state = "started" },
         want = { changed = true, msg = "would write, daemon-reload", actions = { "write", "daemon-reload" },
            diff = { path = path, before = old, after = text } } },
      { name = "a drop-in: enabled judged from the unit's state", state = { status = running },
         args = { name = "etcd", unit_path = path .. ".d/10-env.conf", unit = { Service = { Environment = "A=1" } },
            enabled = true },
         want = { changed = true, msg = "would write, daemon-reload", actions = { "write", "daemon-reload" },
            diff = { path = path .. ".d/10-env.conf", before = "", after = "[Service]\nEnvironment=A=1\n" } } },
      { name = "reloads a unit edited behind systemd's back",
         state = { status = show({ NeedDaemonReload = "yes" }) }, args = { name = "etcd", state = "started" },
         want = { changed = true, msg = "would daemon-reload", actions = { "daemon-reload" },
            diff = { path = "etcd.service", before = summary("enabled", "active"),
               after = summary("enabled", "active") } } },
      { name = "enables a disabled unit (enable reloads by itself)", state = { status = stopped },
         args = { name = "etcd", enabled = true },
         want = { changed = true, msg = "would enable", actions = { "enable" }, no_reload = false,
            diff = { path = "etcd.service", before = summary("disabled", "inactive"),
               after = summary("enabled", "inactive") } } },
      { name = "an alias counts as enabled", state = { status = show({ UnitFileState = "alias" }) },
         args = { name = "etcd", enabled = true },
         want = { changed = false, msg = "etcd.service: ok (alias, active)" } },
      { name = "disables and stops", state = { status = running }, args = { name = "etcd", state = "stopped",
         enabled = false },
         want = { changed = true, msg = "would disable, stop", actions = { "disable", "stop" },
            diff = { path = "etcd.service", before = summary("enabled", "active"),
               after = summary("disabled", "inactive") } } },
      { name = "disables a runtime enablement", state = { status = show({ UnitFileState = "enabled-runtime" }) },
         args = { name = "etcd", enabled = false }, want = { changed = true, msg = "would disable" } },
      { name = "stopped and disabled already", state = { status = stopped },
         args = { name = "etcd", state = "stopped", enabled = false },
         want = { changed = false, msg = "etcd.service: ok (disabled, inactive)", actions = {} } },
      { name = "a failed unit counts as stopped",
         state = { status = show({ ActiveState = "failed", SubState = "failed", Result = "exit-code" }) },
         args = { name = "etcd", state = "stopped" },
         want = { changed = false, msg = "etcd.service: ok (enabled, failed)" } },
      { name = "activating counts as started",
         state = { status = show({ ActiveState = "activating", SubState = "start", Job = "4242" }) },
         args = { name = "etcd", state = "started" },
         want = { changed = false, msg = "etcd.service: ok (enabled, activating)" } },
      { name = "starts a stopped unit", state = { status = stopped }, args = { name = "etcd", state = "started" },
         want = { changed = true, msg = "would start", actions = { "start" },
            diff = { path = "etcd.service", before = summary("disabled", "inactive"),
               after = summary("disabled", "active") } } },
      { name = "restarts every time", state = { status = running }, args = { name = "etcd", state = "restarted" },
         want = { changed = true, msg = "would restart", actions = { "restart" } } },
      { name = "reloads a running unit", state = { status = running }, args = { name = "etcd", state = "reloaded" },
         want = { changed = true, msg = "would reload", actions = { "reload" } } },
      { name = "reloaded starts a unit that is not running", state = { status = stopped },
         args = { name = "etcd", state = "reloaded" },
         want = { changed = true, msg = "would start", actions = { "start" } } },
      { name = "a unit type suffix is kept", state = { status = show({ Id = "etcd.socket", UnitFileState = "" }) },
         args = { name = "etcd.socket" }, want = { changed = false, msg = "etcd.socket: ok (loaded, active)" } },
      { name = "check: a unit an earlier task would install", state = { status = missing }, opts = { check = true },
         args = { name = "etcd", enabled = true, state = "started" },
         want = { changed = true, actions = { "enable", "start" }, result = { name = "etcd.service" },
            msg = "would enable, start etcd.service (not installed yet: an earlier task would create it)" } },
      { name = "check: restarted, not installed yet", state = { status = missing }, opts = { check = true },
         args = { name = "etcd", state = "restarted", enabled = false },
         want = { changed = true, msg = "would disable, restart etcd.service (not installed yet: an earlier task "
            .. "would create it)" } },
      { name = "check: nothing to stop when not installed", state = { status = missing }, opts = { check = true },
         args = { name = "etcd", state = "stopped" },
         want = { changed = false, msg = "etcd.service: not installed, nothing to stop" } },
      { name = "not found in a real run", state = { status = missing }, opts = { host = "etcd5" },
         args = { name = "etcd", state = "started" },
         want = failed("unit etcd.service not found on etcd5 (give unit_file or unit to create it)") },
      { name = "not found under check with nothing asked", state = { status = missing },
         opts = { check = true, host = "etcd5" }, args = { name = "etcd" },
         want = failed("unit etcd.service not found on etcd5 (give unit_file or unit to create it)") },
      { name = "a static unit cannot be enabled", opts = { host = "etcd5" },
         state = { status = show({ Id = "systemd-journald.service", UnitFileState = "static" }) },
         args = { name = "systemd-journald", enabled = true },
         want = failed("systemd-journald.service cannot be enabled on etcd5: it has no [Install] section with "
            .. "WantedBy=, RequiredBy= or Alias= (UnitFileState=static)") },
      { name = "a unit file without [Install] cannot be enabled", state = { status = missing },
         opts = { host = "etcd5" },
         args = { name = "etcd", enabled = true, unit_file = "[Service]\nExecStart=/bin/false\n" },
         want = failed("etcd.service cannot be enabled on etcd5: it has no [Install] section with "
            .. "WantedBy=, RequiredBy= or Alias=") },
      { name = "refuses a name that is not a unit", state = {}, args = { name = "../x" },
         want = failed("argument 'name': not a unit name: '../x'") },
      { name = "refuses a wait that is not seconds", state = {}, args = { name = "x", wait = -1 },
         want = failed("argument 'wait' must be true, false or a number of seconds") },
      { name = "refuses a unit_file that does not parse", state = {}, args = { name = "x", unit_file = "x\n" },
         want = failed("argument 'unit_file': systemd.parse_unit: x.service:1: expected key=value or [Section]") },
      { name = "refuses a unit value with a line break", state = {},
         args = { name = "x.timer", unit = { Timer = { OnCalendar = "daily\n[Service]" } } },
         want = failed("argument 'unit': systemd.render: [Timer] OnCalendar: value holds a line break or NUL") },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         local plan = module.plan(mod, case.state, case.args, case.opts)
         assert.are.equal(case.want.failed, plan.failed, plan.msg)
         for k, v in pairs(case.want) do
            assert.are.same(v, plan[k], k)
         end
      end)
   end
end)
