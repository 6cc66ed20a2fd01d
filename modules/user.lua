--- user: a local user account (typically a system user such as `etcd`).
--
-- gather reads the account in one exec (`getent passwd`, its primary and
-- supplementary groups, and whether a group named like the user exists);
-- plan decides; apply runs useradd, usermod or userdel. Only the attributes a task gives
-- are enforced on an existing account; `system` and `create_home` matter
-- only when the account is created. A new system user gets the shell
-- /usr/sbin/nologin unless one is given, and joins an existing group of its
-- own name as its primary group (useradd would refuse to create one).
local shell = require("etcdrun.shell")

local q = shell.quote

local M = {
   examples = [[task "etcd user" { user = { name = "etcd", system = true, home = "/var/lib/etcd",
   shell = "/usr/sbin/nologin" } }]],
   doc = "Manage a local user account: present or absent, system user, uid, groups, home, shell.",
   args = {
      name = { type = "string", required = true, doc = "user name" },
      state = { type = "string", choices = { "present", "absent" }, default = "present",
         doc = "present creates or fixes the account, absent deletes it" },
      system = { type = "boolean", default = false,
         doc = "create a system account (uid from the system range, no home by default)" },
      uid = { type = "integer", doc = "the user id; unset: assigned on creation, left alone after" },
      group = { type = "string", doc = "primary group, by name or number" },
      groups = { type = "list", elements = "string", doc = "supplementary groups (exactly these unless append)" },
      append = { type = "boolean", default = false, doc = "add to groups without leaving the others" },
      home = { type = "path", absolute = true, doc = "home directory" },
      shell = { type = "path", absolute = true,
         doc = "login shell (a new system user gets /usr/sbin/nologin when unset)" },
      comment = { type = "string", doc = "the GECOS field" },
      create_home = { type = "boolean", doc = "create the home directory on creation (default: not for system users)" },
      remove = { type = "boolean", default = false, doc = "with state=absent: remove the home directory too" },
   },
}

local function valid_name(name)
   return #name <= 32 and name:match("^[%a_][%w_.-]*%$?$") ~= nil
end

local function fail(msg)
   return { failed = true, changed = false, msg = "user: " .. msg }
end

local FIELDS = { "uid", "group", "groups", "home", "shell", "comment" }

-- Account attributes as diff text, in a fixed order.
local function describe(a)
   if not a then
      return ""
   end
   local lines = {}
   for _, k in ipairs(FIELDS) do
      local v = a[k]
      if type(v) == "table" then
         v = table.concat(v, ",")
      end
      if v ~= nil then
         lines[#lines + 1] = ("%s=%s"):format(k, v)
      end
   end
   return table.concat(lines, "\n") .. "\n"
end

local function sorted(list)
   local t = {}
   for i, v in ipairs(list) do
      t[i] = v
   end
   table.sort(t)
   return t
end

-- One exec: the passwd line, the primary group name, all group names, and
-- whether a group named like the user exists.
local function read_account(host, name)
   local n = q(name)
   local cmd = ("if p=$(getent passwd %s); then printf 'passwd %%s\\n' \"$p\"; "
      .. "printf 'primary %%s\\n' \"$(id -gn %s 2>/dev/null)\"; printf 'groups %%s\\n' \"$(id -Gn %s 2>/dev/null)\"; "
      .. "fi; if getent group %s >/dev/null; then echo samegroup; fi"):format(n, n, n, n)
   local r, err, code = host:exec(cmd)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      return nil, ("user: reading account %s failed on %s: %s"):format(name, host.name, r.stderr), "EREMOTE"
   end
   local out = r.stdout
   local samegroup = out:find("\nsamegroup\n", 1, true) or out:sub(1, 10) == "samegroup\n"
   local pw = out:match("^passwd ([^\n]*)")
   if not pw then
      return false, samegroup
   end
   local _, _, uid, gid, gecos, home, sh = pw:match("^([^:]*):([^:]*):(%d+):(%d+):([^:]*):([^:]*):([^:]*)$")
   local primary = out:match("\nprimary ([^\n]*)")
   local all = {}
   for g in (out:match("\ngroups ([^\n]*)") or ""):gmatch("%S+") do
      if g ~= primary then
         all[#all + 1] = g
      end
   end
   return { uid = tonumber(uid), gid = tonumber(gid), group = primary ~= "" and primary or gid, groups = sorted(all),
      home = home, shell = sh, comment = gecos }, samegroup
end

-- usermod options that bring account `cur` to `args`, and the account after.
local function changes(cur, args)
   local opts, after = {}, {}
   for k, v in pairs(cur) do
      after[k] = v
   end
   if args.uid and args.uid ~= cur.uid then
      opts[#opts + 1], after.uid = "--uid " .. args.uid, args.uid
   end
   if args.group and args.group ~= cur.group and tonumber(args.group) ~= cur.gid then
      opts[#opts + 1], after.group = "--gid " .. q(args.group), args.group
   end
   if args.groups then
      local have, missing = {}, {}
      for _, g in ipairs(cur.groups) do
         have[g] = true
      end
      for _, g in ipairs(args.groups) do
         if not have[g] then
            missing[#missing + 1] = g
         end
      end
      if args.append and #missing > 0 then
         opts[#opts + 1] = "--append --groups " .. q(table.concat(missing, ","))
         after.groups = sorted(cur.groups)
         for _, g in ipairs(missing) do
            after.groups[#after.groups + 1] = g
         end
         table.sort(after.groups)
      elseif not args.append and table.concat(sorted(args.groups), ",") ~= table.concat(cur.groups, ",") then
         opts[#opts + 1], after.groups = "--groups " .. q(table.concat(args.groups, ",")), sorted(args.groups)
      end
   end
   for _, k in ipairs({ "home", "shell", "comment" }) do
      if args[k] and args[k] ~= cur[k] then
         opts[#opts + 1], after[k] = ("--%s %s"):format(k, q(args[k])), args[k] -- usermod --home/--shell/--comment
      end
   end
   return opts, after
end

-- What is wrong with the arguments, or nil: found before the host is asked.
local function arg_error(args)
   if not valid_name(args.name) then
      return ("argument 'name': not a valid user name: '%s'"):format(args.name)
   end
   for _, g in ipairs(args.groups or {}) do
      if not valid_name(g) then
         return ("argument 'groups': not a valid group name: '%s'"):format(g)
      end
   end
   if args.comment and args.comment:find("[:\n]") then
      return "argument 'comment' must not hold ':' or a line break"
   end
end

--- The state: `account` ({uid, gid, group, groups (sorted, without the
--- primary), home, shell, comment}, or false: no such user) and `samegroup`
--- (a group named like the user exists).
function M.gather(ctx, args)
   if arg_error(args) then
      return {}
   end
   local cur, samegroup = read_account(ctx.host, args.name)
   if cur == nil then
      return nil, samegroup, "EREMOTE"
   end
   return { account = cur, samegroup = samegroup and true or false }
end

--- The decision: useradd, usermod or userdel (`plan.cmd`), or nothing.
function M.plan(state, args)
   local bad = arg_error(args)
   if bad then
      return fail(bad)
   end
   local cur, samegroup = state.account, state.samegroup
   local path = "user " .. args.name
   local plan = { result = { name = args.name, uid = cur and cur.uid } }
   if args.state == "absent" then
      if not cur then
         plan.changed, plan.msg = false, "absent"
      else
         plan.changed, plan.msg = true, "would delete"
         plan.cmd = "userdel " .. (args.remove and "--remove " or "") .. q(args.name)
         plan.diff = { path = path, before = describe(cur), after = "" }
      end
      return plan
   end
   if not cur then
      local sh = args.shell or (args.system and "/usr/sbin/nologin") or nil
      local group = args.group or (samegroup and args.name) or nil
      local create_home = args.create_home
      if create_home == nil then
         create_home = not args.system
      end
      local o = { "useradd" }
      o[#o + 1] = args.system and "--system" or nil
      o[#o + 1] = args.uid and ("--uid " .. args.uid) or nil
      o[#o + 1] = group and ("--gid " .. q(group)) or nil
      o[#o + 1] = args.groups and #args.groups > 0 and ("--groups " .. q(table.concat(args.groups, ","))) or nil
      o[#o + 1] = args.home and ("--home-dir " .. q(args.home)) or nil
      o[#o + 1] = sh and ("--shell " .. q(sh)) or nil
      o[#o + 1] = args.comment and ("--comment " .. q(args.comment)) or nil
      o[#o + 1] = create_home and "--create-home" or "--no-create-home"
      o[#o + 1] = q(args.name)
      plan.changed, plan.msg, plan.cmd = true, "would create", table.concat(o, " ")
      plan.diff = { path = path, before = "", after = describe({ uid = args.uid or "(assigned)",
         group = group or args.name, groups = args.groups and sorted(args.groups), home = args.home,
         shell = sh, comment = args.comment }) }
      return plan
   end
   local opts, after = changes(cur, args)
   if #opts == 0 then
      plan.changed, plan.msg = false, ("present (uid %d)"):format(cur.uid)
      return plan
   end
   local keys = {}
   for _, k in ipairs(FIELDS) do
      if describe({ [k] = cur[k] }) ~= describe({ [k] = after[k] }) then
         keys[#keys + 1] = k
      end
   end
   plan.changed, plan.msg = true, "would change " .. table.concat(keys, ", ")
   plan.done = "changed " .. table.concat(keys, ", ")
   plan.cmd = "usermod " .. table.concat(opts, " ") .. " " .. q(args.name)
   plan.diff = { path = path, before = describe(cur), after = describe(after) }
   return plan
end

function M.apply(ctx, args, plan)
   local what = plan.cmd:match("^%S+")
   local r, err, code = ctx.host:exec(plan.cmd .. (what == "userdel" and "" or " && id -u " .. q(args.name)))
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
      return nil, ("user: %s %s failed on %s: %s"):format(what, args.name, ctx.host.name, why), "EREMOTE"
   end
   return { msg = plan.done or ({ useradd = "created", userdel = "deleted" })[what],
      uid = tonumber(r.stdout:match("%d+")) }
end

return M
