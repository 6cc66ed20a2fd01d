--- etcdrun.inventory.yamlfile: Ansible's YAML inventory format (its `yaml` inventory
-- plugin), read with libyaml (etcdrun.core.yaml) into the model the INI reader fills:
--   all:                      # top-level keys are groups, usually just all
--     vars: { ansible_user: root }
--     hosts:
--       lonely:               # a host without vars: empty or null
--     children:
--       etcd:
--         hosts:
--           etcd[1:3]:        # ranges and name:port as in INI
--             etcd_role: member
--         vars: {...}
--         children: {...}     # nested groups, defined where they are listed
-- Values keep their YAML types (YAML 1.1 as Ansible's loader reads them: yes is true).
-- Where Ansible only warns (a group key other than hosts, vars and children, a section
-- that is not a mapping) this is an error naming file:line, as a typo should be.
local model = require("etcdrun.inventory.model")

local raise, show = model.raise, model.show
local check_group_name, check_var_name = model.check_group_name, model.check_var_name
local parse_host_token, new_model, group = model.parse_host_token, model.new_model, model.group
local add_host, set_group_var, add_child, finish = model.add_host, model.set_group_var,
   model.add_child, model.finish

local NULL = require("etcdrun.inventory.pyliteral").null -- None (cjson.null)
local SECTIONS = { hosts = true, vars = true, children = true }

local function kind(v)
   if v == NULL then
      return "null"
   end
   if type(v) == "table" then
      return next(v) ~= nil and #v > 0 and "a list" or "a mapping"
   end
   return type(v) == "string" and ("'%s'"):format(show(v)) or ("%s %s"):format(type(v), tostring(v))
end

local function build(text, name)
   local doc, meta = require("etcdrun.core.yaml").load(text, name)
   if doc == nil then -- (a document may be false: `off`)
      raise(meta:match("^(.-:%d+):") or name, meta:match("^.-:%d+:%d+: (.*)$") or meta)
   end
   local m = new_model(name)
   local function at(line)
      return ("%s:%d"):format(name, line)
   end
   local function keys_of(t)
      return meta[t] and meta[t].keys or {}
   end
   local function line_of(t, k)
      local e = meta[t]
      return e and (k ~= nil and e.lines[k] or e.line) or 1
   end
   local function is_map(v)
      return type(v) == "table" and meta[v] ~= nil
   end

   local parse_group
   -- One group's mapping (or null), entered from `where` (the line of its name).
   function parse_group(gname, data, where, depth)
      if type(gname) ~= "string" then
         raise(where, ("a group name must be a string, got %s"):format(kind(gname)))
      end
      check_group_name(gname, where)
      if depth > 50 then
         raise(where, "groups nested deeper than 50")
      end
      group(m, gname).defined = true
      if data == NULL then
         return
      end
      if not is_map(data) then
         raise(where, ("group '%s' must be a mapping of hosts, vars and children, got %s")
            :format(gname, kind(data)))
      end
      for _, section in ipairs(keys_of(data)) do
         local sat = at(line_of(data, section))
         if not SECTIONS[section] then
            raise(sat, ("unknown key '%s' in group '%s' (expected hosts, vars or children)")
               :format(show(tostring(section)), gname))
         end
         local body = data[section]
         if type(body) == "string" then -- Ansible: `hosts: h1` is { h1: null }
            local one = body
            body = { [one] = NULL }
            meta[body] = { keys = { one }, lines = { [one] = line_of(data, section) } }
         end
         if body ~= NULL and not is_map(body) then
            raise(sat, ("'%s' of group '%s' must be a mapping, got %s"):format(section, gname, kind(body)))
         end
         if body ~= NULL then
            for _, k in ipairs(keys_of(body)) do
               local kat = at(line_of(body, k))
               local v = body[k]
               if section == "vars" then
                  if type(k) ~= "string" then
                     raise(kat, ("a variable name must be a string, got %s"):format(kind(k)))
                  end
                  check_var_name(k, kat, k)
                  set_group_var(m, gname, k, v, kat)
               elseif section == "children" then
                  parse_group(k, v, kat, depth + 1)
                  add_child(m, gname, k, kat, nil)
               else
                  if type(k) ~= "string" and math.type(k) ~= "integer" then
                     raise(kat, ("a host name must be a string, got %s"):format(kind(k)))
                  end
                  local names, port = parse_host_token(tostring(k), kat)
                  local vars = {}
                  if port then
                     vars[1] = { "ansible_port", math.tointeger(tonumber(port)) }
                  end
                  if v ~= NULL then
                     if not is_map(v) then
                        raise(kat, ("the vars of host '%s' must be a mapping, got %s"):format(show(tostring(k)),
                           kind(v)))
                     end
                     for _, vk in ipairs(keys_of(v)) do
                        local vat = at(line_of(v, vk))
                        if type(vk) ~= "string" then
                           raise(vat, ("a variable name must be a string, got %s"):format(kind(vk)))
                        end
                        check_var_name(vk, vat, vk)
                        vars[#vars + 1] = { vk, v[vk] }
                     end
                  end
                  for _, hname in ipairs(names) do
                     -- hosts of all itself are ungrouped unless another group lists them
                     add_host(m, gname == "all" and "ungrouped" or gname, hname, vars, kat)
                  end
               end
            end
         end
      end
   end

   if doc == NULL then
      return finish(m) -- an empty file: an empty inventory, as Ansible reads it
   end
   if not is_map(doc) then
      raise(at(1), ("a YAML inventory must be a mapping of groups, got %s"):format(kind(doc)))
   end
   if doc.plugin ~= nil then
      raise(at(line_of(doc, "plugin")), "this is an inventory plugin's configuration, which etcdrun "
         .. "does not run; write the hosts in the all:/children:/hosts: form")
   end
   for _, gname in ipairs(keys_of(doc)) do
      parse_group(gname, doc[gname], at(line_of(doc, gname)), 0)
   end
   return finish(m)
end

return { build = build }
