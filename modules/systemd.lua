--- systemd: a unit's file, whether it is enabled, and whether it runs.
--
-- gather reads the state in one exec: `systemctl show` of the unit and the
-- managed unit file's content, parsed with the systemd primitive; plan
-- decides the actions (write, daemon-reload, enable, start, ...). The
-- file is compared byte for byte with what the task would write (the unit
-- argument is rendered canonically first, so the same table always gives
-- the same text), `daemon-reload` runs only when this task wrote a unit
-- file or systemd says the loaded unit is stale (NeedDaemonReload=yes).
-- As in Ansible, state=started does not restart a running unit whose file
-- changed: notify a handler with state=restarted for that; restarted and
-- reloaded always act (that is their meaning) and report changed.
local systemd = require("etcdrun.systemd")
local shell = require("etcdrun.shell")
local clock = require("etcdrun.clock").monotonic -- a clock, no remote work

local q = shell.quote

local M = {
   examples = [[task "etcd running" { systemd = { name = "etcd", state = "started", enabled = true } }]],
   doc = "Manage a systemd unit: its unit file, enabled at boot, started/stopped/restarted/reloaded.",
   args = {
      name = { type = "string", required = true,
         doc = "unit name; '.service' is added when it has no unit type suffix" },
      unit_file = { type = "string", doc = "the unit file's exact content" },
      unit = { type = "table", doc = "the unit file as a table, rendered by the systemd primitive: "
         .. "{Unit={Description=...}, Service={ExecStart=...}, Install={WantedBy=...}} "
         .. "([Unit] first, [Install] last, keys sorted, a list gives repeated lines) "
         .. "or the ordered form {{'Unit', {{'Description', '...'}}}, ...}" },
      unit_path = { type = "path", absolute = true,
         doc = "where the unit file goes (default /etc/systemd/system/<name>); a drop-in such as "
            .. "/etc/systemd/system/<name>.d/10-site.conf works too" },
      enabled = { type = "boolean", doc = "enabled at boot (systemctl enable/disable); unset: left alone" },
      state = { type = "string", choices = { "started", "stopped", "restarted", "reloaded" },
         doc = "started/stopped act only when needed; restarted and reloaded always act "
            .. "(reloaded starts a unit that is not running)" },
      no_block = { type = "boolean", default = false,
         doc = "start/restart/reload with --no-block: do not wait for the job (a first etcd "
            .. "member with Type=notify waits for its peers)" },
      wait = { type = "any", default = false,
         doc = "after start/restart/reload, wait until ActiveState=active: true (60 s) or seconds; "
            .. "on failure the message holds the unit's journal tail" },
   },
   exclusive = { { "unit_file", "unit" } },
}

local TYPES = {
   service = true, socket = true, target = true, timer = true, mount = true, automount = true,
   path = true, slice = true, scope = true, swap = true, device = true,
}
local PROPS = "Id,LoadState,ActiveState,SubState,UnitFileState,FragmentPath,NeedDaemonReload,Result,Job"
local RUNNING = { active = true, activating = true, reloading = true }
local ENABLED = { enabled = true, alias = true, indirect = true }
local MARK = "@@etcdrun_systemd_file@@" -- no pattern magic characters: used in match()

local function unit_name(name)
   local t = name:match("%.(%a+)$")
   return (t and TYPES[t]) and name or name .. ".service"
end

local function fail(msg)
   return { failed = true, changed = false, msg = "systemd: " .. msg }
end

-- `systemctl show` of the unit (PROPS, or `props`) and, when path is given,
-- its file's content (nil: none), in one exec.
local function read_unit(host, unit, path, props)
   local cmd = ("systemctl show --property=%s -- %s; echo %s $?"):format(props or PROPS, q(unit), MARK)
   if path then
      cmd = cmd .. ("; [ -f %s ] && echo %s && cat -- %s"):format(q(path), MARK, q(path))
   end
   local r, err, code = host:exec(cmd)
   if not r then
      return nil, err, code
   end
   local out, status, rest = r.stdout:match("^(.-)" .. MARK .. " (%d+)\n(.*)$")
   local units = out and status == "0" and systemd.try.parse_show(out)
   if not units or not units[1] then
      local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
      return nil, ("systemd: systemctl show %s failed on %s: %s"):format(unit, host.name, why), "EREMOTE"
   end
   return units[1], rest:match("^" .. MARK .. "\n(.*)$")
end

local function journal(host, unit)
   local r = host:exec(("journalctl -u %s -n 20 --no-pager --no-hostname"):format(q(unit)))
   return r and (r.stdout .. r.stderr):gsub("%s+$", "") or "(journal not readable)"
end

-- The unit, the content the task wants on disk (nil: none) and its path;
-- or nil and why the arguments are refused.
local function target(args)
   local unit = unit_name(args.name)
   if not unit:match("^[%w:_.@\\-]+$") then
      return nil, ("argument 'name': not a unit name: '%s'"):format(args.name)
   end
   if args.wait ~= false and args.wait ~= true and not (type(args.wait) == "number" and args.wait >= 0) then
      return nil, "argument 'wait' must be true, false or a number of seconds"
   end
   local content = args.unit_file
   if content then
      local ok, err = systemd.try.parse_unit(content, unit)
      if not ok then
         return nil, "argument 'unit_file': " .. err
      end
   elseif args.unit then
      local ok, text = pcall(systemd.render, args.unit)
      if not ok then
         return nil, "argument 'unit': " .. tostring(text):gsub("^[^\n]-:%d+: ", "") -- no Lua position
      end
      content = text
   end
   return unit, content, content and (args.unit_path or "/etc/systemd/system/" .. unit)
end

--- The state: `status` (systemctl show: Id, LoadState, ActiveState,
--- SubState, UnitFileState, FragmentPath, NeedDaemonReload, Result, Job)
--- and `file`, the managed unit file's content (nil: none, or none managed).
function M.gather(ctx, args)
   local unit, _, path = target(args)
   if not unit then
      return {}
   end
   local st, current = read_unit(ctx.host, unit, path)
   if not st then
      return nil, current, "EREMOTE"
   end
   return { status = st, file = current }
end

-- The order to run the actions in. With a daemon-reload to do anyway,
-- enable/disable go first with --no-reload (systemctl enable reloads the
-- manager by default: about 50 ms each): the one reload then picks up the
-- new file and the new symlinks together. Returns the actions, no_reload.
local function ordered(acts)
   local out, links, at = {}, {}, nil
   for _, a in ipairs(acts) do
      if a == "enable" or a == "disable" then
         links[#links + 1] = a
      else
         out[#out + 1] = a
         at = at or (a == "daemon-reload" and #out) or nil
      end
   end
   if not at then
      return acts, false
   end
   for i, l in ipairs(links) do
      table.insert(out, at + i - 1, l)
   end
   return out, true
end

--- The decision: the actions (`plan.actions`, in the order apply runs
--- them: write, enable/disable --no-reload, daemon-reload, start/stop/
--- restart/reload; the message names them in the order decided) and the diff.
function M.plan(state, args, opts)
   local unit, content, path = target(args)
   if not unit then
      return fail(content)
   end
   local st, current = state.status, state.file
   local plan = { unit = unit, path = path, content = content, actions = {} }
   local acts = plan.actions
   local write = content ~= nil and current ~= content
   if write then
      acts[#acts + 1] = "write"
   end
   if write or st.NeedDaemonReload == "yes" then
      acts[#acts + 1] = "daemon-reload"
   end
   if st.LoadState == "not-found" and not content then
      -- in check mode an earlier task (a unit_file task, a package) that
      -- would create the unit has not run: what this task would do is the
      -- answer, as copy answers for a source an earlier task would create
      if opts.check and (args.state or args.enabled ~= nil) then
         local would = { args.enabled == true and "enable" or args.enabled == false and "disable" or nil }
         if args.state and args.state ~= "stopped" then
            would[#would + 1] = args.state == "reloaded" and "start" or args.state:gsub("ed$", "")
         end
         if #would == 0 then
            return { changed = false, msg = ("%s: not installed, nothing to stop"):format(unit),
               result = { name = unit } }
         end
         return { changed = true, actions = would, result = { name = unit },
            msg = ("would %s %s (not installed yet: an earlier task would create it)"):format(
               table.concat(would, ", "), unit) }
      end
      return fail(("unit %s not found on %s (give unit_file or unit to create it)"):format(unit, opts.host))
   end
   local ufs = st.UnitFileState
   if args.enabled == true and (write or not ENABLED[ufs]) then
      -- judged from the content that will be there: a unit without [Install] cannot be enabled
      local main = content and path:sub(-#unit - 1) == "/" .. unit
      local u = main and systemd.parse_unit(content, unit)
      local install = 0
      for _, k in ipairs(u and { "WantedBy", "RequiredBy", "Alias", "Also" } or {}) do
         install = install + #systemd.values(u, "Install", k)
      end
      if (u and install == 0) or (not u and (ufs == "static" or ufs == "generated" or ufs == "transient")) then
         return fail(("%s cannot be enabled on %s: it has no [Install] section with WantedBy=, "
            .. "RequiredBy= or Alias=%s"):format(unit, opts.host, u and "" or (" (UnitFileState=" .. ufs .. ")")))
      end
      if not ENABLED[ufs] then
         acts[#acts + 1] = "enable"
      end
   elseif args.enabled == false and (ufs == "enabled" or ufs == "enabled-runtime" or ufs == "alias") then
      acts[#acts + 1] = "disable"
   end
   local active = st.ActiveState
   local s = args.state
   if s == "started" and not RUNNING[active] then
      acts[#acts + 1] = "start"
   elseif s == "stopped" and active ~= "inactive" and active ~= "failed" then
      acts[#acts + 1] = "stop"
   elseif s == "restarted" then
      acts[#acts + 1] = "restart"
   elseif s == "reloaded" then
      acts[#acts + 1] = RUNNING[active] and "reload" or "start"
   end
   plan.changed = #acts > 0
   plan.result = { name = unit, path = path, status = st }
   if not plan.changed then
      plan.msg = ("%s: ok (%s, %s)"):format(unit, ufs ~= "" and ufs or st.LoadState, active)
      return plan
   end
   plan.msg = "would " .. table.concat(acts, ", ")
   plan.actions, plan.no_reload = ordered(acts)
   if write then
      plan.diff = { path = path, before = current or "", after = content }
   else
      local e = ({ enable = "enabled", disable = "disabled" })
      local want_ufs = ufs
      for _, a in ipairs(acts) do
         want_ufs = e[a] or want_ufs
      end
      local want_active = (s == "stopped" and "inactive") or (s and "active") or active
      local summary = "UnitFileState=%s\nActiveState=%s\n"
      plan.diff = { path = unit, before = summary:format(ufs, active), after = summary:format(want_ufs, want_active) }
   end
   return plan
end

-- Poll until the unit is active and stays so across one poll interval (a
-- Type=simple unit whose process exits at once is "active" for a moment),
-- or fails, or the deadline passes. Returns true or false, last status.
local function wait_active(ctx, unit, seconds)
   local deadline = clock() + seconds
   local seen
   while true do
      local st, err, code = read_unit(ctx.host, unit, nil, "ActiveState,SubState,Result,Job,InvocationID")
      if not st then
         return nil, err, code
      end
      if st.ActiveState == "active" then
         if seen == st.InvocationID then
            return true
         end
         seen = st.InvocationID
      else
         seen = nil
         if st.ActiveState == "failed" or (st.ActiveState == "inactive" and st.Job == "") then
            return false, st
         end
      end
      if clock() >= deadline then
         return false, st
      end
      ctx.sleep(0.5)
   end
end

local function run(ctx, unit, what, cmd)
   local r, err, code = ctx.host:exec(cmd)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
      local tail = ""
      if what ~= "daemon-reload" then
         tail = "; journal:\n" .. journal(ctx.host, unit)
      end
      return nil, ("systemd: %s %s failed on %s: %s%s"):format(what, unit, ctx.host.name, why, tail), "EREMOTE"
   end
   return true
end

function M.apply(ctx, args, plan)
   local unit, done = plan.unit, {}
   local nb = args.no_block and "--no-block " or ""
   local started = false
   local no_reload = plan.no_reload and "--no-reload " or ""
   for _, a in ipairs(plan.actions) do
      local ok, err, code
      if a == "write" then
         ok, err, code = ctx.host:write(plan.path, plan.content, { mode = tonumber("644", 8) })
         if not ok and code == "ENOENT" then -- a drop-in directory that does not exist yet
            local dir = plan.path:match("^(.*)/[^/]*$")
            ok, err, code = ctx.host:mkdir(dir)
            if ok then
               ok, err, code = ctx.host:write(plan.path, plan.content, { mode = tonumber("644", 8) })
            end
         end
         a = "wrote " .. plan.path
      elseif a == "daemon-reload" then
         ok, err, code = run(ctx, unit, a, "systemctl daemon-reload")
      elseif a == "enable" or a == "disable" then
         ok, err, code = run(ctx, unit, a, ("systemctl %s%s -- %s"):format(no_reload, a, q(unit)))
      else
         ok, err, code = run(ctx, unit, a, ("systemctl %s%s -- %s"):format(nb, a, q(unit)))
         started = a ~= "stop"
      end
      if not ok then
         return nil, err, code
      end
      done[#done + 1] = a
   end
   if started and args.wait then
      local seconds = args.wait == true and 60 or args.wait
      local ok, st, code = wait_active(ctx, unit, seconds)
      if ok == nil then
         return nil, st, code
      end
      if not ok then
         return nil, ("systemd: %s did not become active within %g s on %s (ActiveState=%s, SubState=%s, "
            .. "Result=%s); journal:\n%s"):format(unit, seconds, ctx.host.name, st.ActiveState, st.SubState,
            st.Result, journal(ctx.host, unit)), st.ActiveState == "failed" and "EUNIT" or "ETIMEDOUT"
      end
      done[#done + 1] = "active"
   end
   return { msg = table.concat(done, ", ") }
end

return M
