--- group: a local group (typically a system group such as `etcd`).
--
-- gather reads `getent group NAME` in one exec; plan decides; apply runs groupadd,
-- groupmod or groupdel. A gid is enforced only when given: without one a
-- new group gets whatever groupadd assigns and an existing one keeps its own.
local shell = require("etcdrun.shell")

local q = shell.quote

local M = {
   examples = [[task "etcd group" { group = { name = "etcd", system = true } }]],
   doc = "Manage a local group: present or absent, system group, gid.",
   args = {
      name = { type = "string", required = true, doc = "group name" },
      state = { type = "string", choices = { "present", "absent" }, default = "present",
         doc = "present creates the group (or fixes its gid), absent deletes it" },
      system = { type = "boolean", default = false,
         doc = "create a system group (gid from the system range); not changed on an existing group" },
      gid = { type = "integer", doc = "the group id; unset: assigned on creation, left alone after" },
   },
}

-- A name groupadd accepts: letters, digits, _ . -, not leading '-' or a
-- digit (an all-digit name would read as an id), at most 32 bytes.
local function valid_name(name)
   return #name <= 32 and name:match("^[%a_][%w_.-]*%$?$") ~= nil
end

local function describe_group(gid, system)
   return ("gid=%s\n"):format(gid or "(assigned)") .. (system and "system=yes\n" or "")
end

local function fail(msg)
   return { failed = true, changed = false, msg = "group: " .. msg }
end

-- Run a command on the host; nil, message naming the tool, host and stderr on failure.
local function run(host, what, cmd)
   local r, err, code = host:exec(cmd)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
      return nil, ("group: %s failed on %s: %s"):format(what, host.name, why), "EREMOTE"
   end
   return r
end

-- What is wrong with the arguments, or nil: found before the host is asked.
local function arg_error(args)
   if not valid_name(args.name) then
      return ("argument 'name': not a valid group name: '%s'"):format(args.name)
   end
   if args.gid and args.gid < 0 then
      return "argument 'gid' must not be negative"
   end
end

--- The state: { exists = bool, gid = N } from `getent group NAME`.
function M.gather(ctx, args)
   if arg_error(args) then
      return {}
   end
   local r, err, code = ctx.host:exec("getent group " .. q(args.name))
   if not r then
      return nil, err, code
   end
   if r.status == 2 then -- no such group
      return { exists = false }
   elseif r.status ~= 0 then
      return nil, ("group: getent group %s failed on %s: %s"):format(args.name, ctx.host.name, r.stderr),
         "EREMOTE"
   end
   local gid = tonumber(r.stdout:match("^[^:]*:[^:]*:(%d+):"))
   if not gid then
      return nil, ("group: unexpected getent output %q on %s"):format(r.stdout, ctx.host.name), "EREMOTE"
   end
   return { exists = true, gid = gid }
end

--- The decision: groupadd, groupmod --gid or groupdel (`plan.cmd`), or nothing.
function M.plan(state, args)
   local bad = arg_error(args)
   if bad then
      return fail(bad)
   end
   local gid = state.exists and state.gid or nil
   local plan = { result = { name = args.name, gid = gid } }
   if args.state == "absent" then
      if gid then
         plan.changed, plan.msg, plan.cmd = true, "would delete", "groupdel " .. q(args.name)
         plan.diff = { path = "group " .. args.name, before = describe_group(gid), after = "" }
      else
         plan.changed, plan.msg = false, "absent"
      end
      return plan
   end
   if not gid then
      plan.changed, plan.msg = true, "would create"
      plan.cmd = ("groupadd%s%s %s"):format(args.system and " --system" or "",
         args.gid and (" --gid " .. args.gid) or "", q(args.name))
      plan.diff = { path = "group " .. args.name, before = "", after = describe_group(args.gid, args.system) }
   elseif args.gid and args.gid ~= gid then
      plan.changed, plan.msg = true, ("would change gid %d to %d"):format(gid, args.gid)
      plan.cmd = ("groupmod --gid %d %s"):format(args.gid, q(args.name))
      plan.diff = { path = "group " .. args.name, before = describe_group(gid), after = describe_group(args.gid) }
   else
      plan.changed, plan.msg = false, ("present (gid %d)"):format(gid)
   end
   return plan
end

function M.apply(ctx, args, plan)
   local what = plan.cmd:match("^%S+")
   local cmd = plan.cmd
   if what ~= "groupdel" then
      cmd = cmd .. " && getent group " .. q(args.name) -- report the gid it got
   end
   local r, err, code = run(ctx.host, what, cmd)
   if not r then
      return nil, err, code
   end
   local gid = tonumber(r.stdout:match("^[^:]*:[^:]*:(%d+):"))
   return { msg = ({ groupadd = "created", groupmod = "changed gid", groupdel = "deleted" })[what], gid = gid }
end

return M
