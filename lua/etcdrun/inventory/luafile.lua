--- etcdrun.inventory.luafile: the Lua inventory format (its shape is documented in
-- lua/etcdrun/inventory.lua): a sandbox to run the file in, and the check of the table
-- it returns, into the same model as the INI reader.
local model = require("etcdrun.inventory.model")

local raise, show, show_value = model.raise, model.show, model.show_value
local check_group_name, check_var_name = model.check_group_name, model.check_var_name
local natural_sort, parse_host_token = model.natural_sort, model.parse_host_token
local new_model, group, add_host, set_group_var, add_child, finish = model.new_model,
   model.group, model.add_host, model.set_group_var, model.add_child, model.finish

local function sandbox()
   local env = {
      string = string, table = table, math = math, utf8 = utf8,
      ipairs = ipairs, pairs = pairs, next = next, select = select, type = type,
      tonumber = tonumber, tostring = tostring, error = error, assert = assert,
      pcall = pcall, os = { getenv = os.getenv },
      -- as in a playbook: a value printed as <secret> in every output
      secret = function(v)
         return require("etcdrun.playbook").secret(v)
      end,
   }
   return setmetatable(env, {
      __index = function(_, k)
         error(("undefined global '%s'"):format(tostring(k)), 2)
      end,
   })
end

local BAD_TYPES = { ["function"] = true, userdata = true, thread = true }

local function check_keys(t, where, allowed, list)
   for k in pairs(t) do
      if type(k) ~= "string" or not allowed[k] then
         raise(where, ("unknown key '%s' (expected %s)"):format(show(k), list))
      end
   end
end

-- A vars table -> array of {key, value} in name order.
local function lua_vars(t, where)
   if type(t) ~= "table" then
      raise(where, ("expected a table of variables, got %s"):format(type(t)))
   end
   local keys = {}
   for k, v in pairs(t) do
      if type(k) ~= "string" then
         raise(where, ("variable names must be strings, got %s"):format(show_value(k)))
      end
      check_var_name(k, where, k)
      if BAD_TYPES[type(v)] then
         raise(where .. "." .. k, ("a variable cannot hold a %s"):format(type(v)))
      end
      keys[#keys + 1] = k
   end
   table.sort(keys)
   local out = {}
   for _, k in ipairs(keys) do
      out[#out + 1] = { k, t[k] }
   end
   return out
end

-- A hosts value (array or map) -> adds each host to group gname.
local function lua_hosts(m, gname, hs, where)
   if type(hs) ~= "table" then
      raise(where, ("expected an array of hosts or a map of name = vars, got %s"):format(type(hs)))
   end
   local nkeys, strkeys = 0, 0
   for k in pairs(hs) do
      nkeys = nkeys + 1
      if type(k) == "string" then
         strkeys = strkeys + 1
      end
   end
   local entries = {}
   if strkeys == 0 then
      if nkeys ~= #hs then
         raise(where, "expected an array without holes")
      end
      for i, e in ipairs(hs) do
         local at = ("%s[%d]"):format(where, i)
         if type(e) == "string" then
            entries[#entries + 1] = { e, {}, at }
         elseif type(e) == "table" then
            local hname = e[1]
            if type(hname) ~= "string" then
               raise(at, "expected the host name as the first item, as in { \"etcd1\", ansible_host = ... }")
            end
            local vars = {}
            for k, v in pairs(e) do
               if k ~= 1 then
                  if type(k) ~= "string" then
                     raise(at, ("unexpected item [%s] (one name, then key = value)"):format(tostring(k)))
                  end
                  vars[k] = v
               end
            end
            entries[#entries + 1] = { hname, lua_vars(vars, at), at }
         else
            raise(at, ("expected a host name or { name, key = value... }, got %s"):format(type(e)))
         end
      end
   elseif strkeys == nkeys then
      local names = {}
      for k in pairs(hs) do
         names[#names + 1] = k
      end
      for _, hname in ipairs(natural_sort(names)) do
         local at = where .. "." .. hname
         local v = hs[hname]
         entries[#entries + 1] = { hname, v == true and {} or lua_vars(v, at), at }
      end
   else
      raise(where, "mixes array items and name = vars entries (use one form)")
   end
   for _, e in ipairs(entries) do
      local names, port = parse_host_token(e[1], e[3])
      local vars = e[2]
      if port then
         table.insert(vars, 1, { "ansible_port", port })
      end
      for _, hname in ipairs(names) do
         add_host(m, gname, hname, vars, e[3])
      end
   end
end

local TOP_KEYS = { vars = true, hosts = true, groups = true }
local GROUP_KEYS = { vars = true, hosts = true, children = true }

local function build_lua(t, name)
   local m = new_model(name)
   local top = name .. ": "
   if type(t) ~= "table" then
      raise(name, ("expected the file to return a table, got %s"):format(type(t)))
   end
   check_keys(t, name, TOP_KEYS, "groups, hosts or vars")
   if t.vars ~= nil then
      for _, kv in ipairs(lua_vars(t.vars, top .. "vars")) do
         set_group_var(m, "all", kv[1], kv[2], top .. "vars")
      end
   end
   if t.hosts ~= nil then
      lua_hosts(m, "ungrouped", t.hosts, top .. "hosts")
   end
   if t.groups ~= nil then
      if type(t.groups) ~= "table" then
         raise(top .. "groups", ("expected a table of name = group, got %s"):format(type(t.groups)))
      end
      local names = {}
      for k in pairs(t.groups) do
         if type(k) ~= "string" then
            raise(top .. "groups", ("group names must be strings, got %s"):format(show_value(k)))
         end
         names[#names + 1] = k
      end
      natural_sort(names)
      for _, gname in ipairs(names) do
         local at = top .. "groups." .. gname
         check_group_name(gname, top .. "groups")
         if gname == "all" or gname == "ungrouped" then
            raise(at, "use the top-level vars and hosts for the groups all and ungrouped")
         end
         local g = t.groups[gname]
         if type(g) ~= "table" then
            raise(at, ("expected a table with hosts, vars or children, got %s"):format(type(g)))
         end
         check_keys(g, at, GROUP_KEYS, "children, hosts or vars")
         group(m, gname).defined = true
         if g.vars ~= nil then
            for _, kv in ipairs(lua_vars(g.vars, at .. ".vars")) do
               set_group_var(m, gname, kv[1], kv[2], at .. ".vars")
            end
         end
         if g.hosts ~= nil then
            lua_hosts(m, gname, g.hosts, at .. ".hosts")
         end
      end
      for _, gname in ipairs(names) do
         local g = t.groups[gname]
         if g.children ~= nil then
            local at = top .. "groups." .. gname .. ".children"
            local ch = g.children
            if type(ch) ~= "table" then
               raise(at, ("expected an array of group names, got %s"):format(type(ch)))
            end
            local n = 0
            for _ in pairs(ch) do
               n = n + 1
            end
            if n ~= #ch then
               raise(at, "expected an array of group names")
            end
            for _, child in ipairs(ch) do
               if type(child) ~= "string" then
                  raise(at, ("expected group names, got %s"):format(type(child)))
               end
               check_group_name(child, at)
               add_child(m, gname, child, at,
                  ("lists group '%s', which is not defined in groups"):format(child))
            end
         end
      end
   end
   return finish(m)
end

return { sandbox = sandbox, build = build_lua }
