--- Variables as a task sees them, with one documented precedence
-- (lowest first):
--   0. the play's `defaults` (what a playbook assumes unless told otherwise)
--   1. inventory: group vars (parents before children), then host vars
--   2. play vars
--   3. values registered by earlier tasks on this host (`register = "x"`)
--   4. extra vars from the command line (`-e key=value`, `-e @vars.lua`)
-- plus the built-ins inventory_hostname, groups, hostvars, play_hosts,
-- inventory_file and inventory_dir (absolute; absent when the inventory is
-- not a file), playbook_dir, ansible_check_mode (a --check run),
-- facts (gathered on first use, one round trip, cached for the run),
-- ansible_facts (the same in Ansible's shape) and, in a loop, item.
--
-- The view is strict: reading a variable nobody defined is an error naming
-- it and the host; `v("name", default)` reads an optional one.
local facts = require("etcdrun.facts")
local playbook = require("etcdrun.playbook")
local sched = require("etcdrun.sched")

local M = {}

local BUILTINS = {
   inventory_hostname = true, groups = true, hostvars = true, play_hosts = true,
   facts = true, ansible_facts = true, item = true,
   inventory_file = true, inventory_dir = true, playbook_dir = true, ansible_check_mode = true,
}

--- Facts of a host, gathered once per run even when several coroutines ask.
function M.facts(hs)
   if hs.facts then
      return hs.facts
   end
   while hs.facts_pending do
      sched.sleep(0.005)
   end
   if hs.facts then
      return hs.facts
   end
   hs.facts_pending = true
   local f, err = facts.gather(hs.host())
   hs.facts_pending = false
   if not f then
      error(("facts of %s: %s"):format(hs.name, tostring(err)), 0)
   end
   hs.facts = f
   return f
end

-- Unwrap a secret value, remembering it so output hides it.
local function reveal(rs, v)
   if playbook.is_secret(v) then
      rs.out:secret(v.value)
      return v.value
   end
   return v
end

local function lookup(rs, hs, play_vars, k)
   local v = rs.extra[k]
   if v == nil then
      v = hs.registered[k]
   end
   if v == nil and play_vars then
      v = play_vars[k]
   end
   if v == nil then
      v = hs.vars[k]
   end
   if v == nil and rs.play_defaults then
      v = rs.play_defaults[k]
   end
   return reveal(rs, v)
end

--- The variables view of host state hs in a play.
---@param rs table run state {extra, groups, hosts, out, play_hosts}
---@param hs table host state {name, vars, registered, facts?, host()}
---@param play_vars table|nil
---@param item any loop item, if any
function M.view(rs, hs, play_vars, item)
   local view = {}
   local mt = {}
   mt.__index = function(_, k)
      if k == "inventory_hostname" then
         return hs.name
      elseif k == "groups" then
         return rs.groups
      elseif k == "play_hosts" then
         return rs.play_hosts
      elseif k == "hostvars" then
         return setmetatable({}, {
            __index = function(_, name)
               local other = rs.hosts[name]
               if not other then
                  error(("hostvars: no host named '%s'"):format(tostring(name)), 2)
               end
               return M.view(rs, other, play_vars)
            end,
         })
      elseif k == "facts" then
         return M.facts(hs)
      elseif k == "ansible_facts" then
         return M.facts(hs).ansible
      elseif k == "item" and item ~= nil then
         return item
      elseif (k == "inventory_file" or k == "inventory_dir" or k == "playbook_dir") and rs[k] then
         return rs[k]
      elseif k == "ansible_check_mode" then
         return rs.check == true
      end
      local v = lookup(rs, hs, play_vars, k)
      if v == nil then
         error(("undefined variable '%s' (host %s)"):format(tostring(k), hs.name), 2)
      end
      return v
   end
   mt.__newindex = function(_, k)
      error(("variables are read-only here: cannot set '%s'; use register or -e"):format(tostring(k)), 2)
   end
   mt.__call = function(_, k, default)
      local ok, v = pcall(mt.__index, view, k)
      if ok and v ~= nil then
         return v
      end
      return default
   end
   return setmetatable(view, mt)
end

local function merge_into(t, src, rs)
   for k, v in pairs(src or {}) do
      t[k] = reveal(rs, v)
   end
end

-- Plain (metatable-free) variables of one host, for the template engine.
local function plain_of(rs, hs, play_vars, with_facts)
   local t = {}
   merge_into(t, rs.play_defaults, rs)
   merge_into(t, hs.vars, rs)
   merge_into(t, play_vars, rs)
   merge_into(t, hs.registered, rs)
   merge_into(t, rs.extra, rs)
   t.inventory_hostname = hs.name
   t.inventory_file, t.inventory_dir, t.playbook_dir = rs.inventory_file, rs.inventory_dir, rs.playbook_dir
   t.ansible_check_mode = rs.check == true
   if with_facts and hs.facts then
      t.facts = hs.facts
      t.ansible_facts = hs.facts.ansible
   end
   return t
end

--- A plain table of everything a template can see, gathering facts first
-- when the template mentions them (hostvars' facts for every play host).
---@param source string the template text (to see whether facts are needed)
function M.plain(rs, hs, play_vars, item, source)
   local need_facts = source and (source:find("facts", 1, true) ~= nil)
   local need_hostvars = source and source:find("hostvars", 1, true) ~= nil
   if need_facts then
      M.facts(hs)
      if need_hostvars then
         for _, name in ipairs(rs.play_hosts) do
            M.facts(rs.hosts[name])
         end
      end
   end
   local t = plain_of(rs, hs, play_vars, true)
   t.groups = rs.groups
   t.play_hosts = rs.play_hosts
   if item ~= nil then
      t.item = item
   end
   if need_hostvars then
      local hv = {}
      for name, other in pairs(rs.hosts) do
         hv[name] = plain_of(rs, other, play_vars, true)
      end
      t.hostvars = hv
   end
   return t
end

M.BUILTINS = BUILTINS
return M
