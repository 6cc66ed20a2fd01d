--- etcdrun.inventory.model: what the INI and Lua readers share. They fill a model
-- (groups, hosts, vars, child edges, each value with where it was set), then finish()
-- checks references and cycles, resolves membership and variable precedence and
-- normalises the connection fields, as documented in lua/etcdrun/inventory.lua.
-- Errors that are the input's fault are raised as ParseError values and turned into
-- nil, err by protect(); anything else raised is a bug and propagates.
local M = {}
local NULL = require("etcdrun.inventory.pyliteral").null -- None (cjson.null)

--- Most hosts one inventory may define (ranges included).
M.MAX_HOSTS = 100000

-- Errors that are the input's fault carry this metatable; anything else raised while
-- parsing is a bug and is re-raised (the fuzz harness relies on that).
local ParseError = {}

local function raise(where, msg)
   error(setmetatable({ msg = where .. ": " .. msg }, ParseError), 0)
end

local function protect(f, ...)
   local ok, res = pcall(f, ...)
   if ok then
      return res
   end
   if getmetatable(res) == ParseError then
      return nil, res.msg, "EINVENTORY"
   end
   error(res, 0)
end

local function trim(s)
   local i = s:find("%S")
   if not i then
      return ""
   end
   return s:match(".*%S", i)
end

-- A user-supplied string as it appears in a message, cut when long.
local function show(s)
   s = tostring(s)
   if #s > 60 then
      s = s:sub(1, 57) .. "..."
   end
   return s
end

local function show_value(v)
   if type(v) == "string" then
      return "'" .. show(v) .. "'"
   end
   return tostring(v)
end

local function count(s, ch)
   return select(2, s:gsub(ch, ""))
end

-- Natural order: digit runs compare as numbers (etcd2 < etcd10).
local function natural_key(s)
   return (s:gsub("%d+", function(d)
      d = d:gsub("^0+(%d)", "%1")
      return ("0"):rep(math.max(0, 20 - #d)) .. d
   end))
end

local function natural_sort(list)
   local keys = {}
   for _, s in ipairs(list) do
      keys[s] = natural_key(s)
   end
   table.sort(list, function(a, b)
      if keys[a] ~= keys[b] then
         return keys[a] < keys[b]
      end
      return a < b
   end)
   return list
end

local function expand_home(path)
   if path == "~" or path:sub(1, 2) == "~/" then
      local home = os.getenv("HOME")
      if home and home ~= "" then
         return home .. path:sub(2)
      end
   end
   return path
end

local function check_group_name(g, where)
   if not g:match("^[%w_%-%.]+$") then
      raise(where, ("invalid group name '%s' (expected letters, digits, '_', '-' and '.')")
         :format(show(g)))
   end
end

local function check_var_name(k, where, context)
   if k == "" then
      raise(where, ("missing variable name before '=' in '%s'"):format(show(context)))
   end
   if not k:match("^[%a_][%w_]*$") then
      raise(where, ("invalid variable name '%s' (expected letters, digits and '_', "
         .. "not starting with a digit)"):format(show(k)))
   end
end

---------------------------------------------------------------------------
-- Host names: ranges and ports
---------------------------------------------------------------------------

local LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

-- The values of one range body "1:3", "01:10:2", "a:c".
local function range_values(body, name, where)
   local function bad(why)
      raise(where, ("invalid host range '[%s]' in '%s': %s"):format(show(body), show(name), why))
   end
   local parts = {}
   for p in (body .. ":"):gmatch("([^:]*):") do
      table.insert(parts, p)
   end
   if #parts ~= 2 and #parts ~= 3 then
      bad("expected [start:end] or [start:end:step]")
   end
   local beg, fin = parts[1], parts[2]
   local step = 1
   if parts[3] then
      if not parts[3]:match("^%d%d?%d?%d?%d?%d?$") or tonumber(parts[3]) < 1 then
         bad("the step must be a positive number")
      end
      step = tonumber(parts[3])
   end
   if beg == "" then
      beg = "0"
   end
   if fin == "" then
      bad("the end is missing")
   end
   local out = {}
   if beg:match("^%a$") and fin:match("^%a$") then
      local i, j = LETTERS:find(beg, 1, true), LETTERS:find(fin, 1, true)
      if i > j then
         bad("the start comes after the end")
      end
      for k = i, j, step do
         table.insert(out, LETTERS:sub(k, k))
      end
      return out
   end
   if not beg:match("^%d+$") or not fin:match("^%d+$") then
      bad("expected numbers or single letters at both ends")
   end
   if #beg > 9 or #fin > 9 then
      bad("the numbers are too large")
   end
   local width
   if #beg > 1 and beg:sub(1, 1) == "0" then
      if #beg ~= #fin then
         bad("a zero-padded start and the end must have the same width")
      end
      width = #beg
   end
   local b, e = tonumber(beg), tonumber(fin)
   if b > e then
      bad("the start comes after the end")
   end
   if (e - b) // step + 1 > M.MAX_HOSTS then
      bad(("more than %d hosts"):format(M.MAX_HOSTS))
   end
   local fmt = width and ("%0" .. width .. "d") or "%d"
   for k = b, e, step do
      table.insert(out, fmt:format(k))
   end
   return out
end

local function check_literal(s, name, where)
   if not s:match("^[%w_%-%.]*$") then
      raise(where, ("invalid host name '%s' (expected letters, digits, '.', '-', '_', "
         .. "ranges like [1:3], or an IP address)"):format(show(name)))
   end
end

-- name (a range pattern) -> list of host names.
local function expand_ranges(name, where)
   local segments, total, pos = {}, 1, 1
   while true do
      local s = name:find("[", pos, true)
      if not s then
         break
      end
      local e = name:find("]", s, true)
      if not e then
         raise(where, ("unclosed '[' in host name '%s'"):format(show(name)))
      end
      local lit = name:sub(pos, s - 1)
      check_literal(lit, name, where)
      table.insert(segments, { lit })
      local values = range_values(name:sub(s + 1, e - 1), name, where)
      total = total * #values
      if total > M.MAX_HOSTS then
         raise(where, ("host name '%s' expands to more than %d hosts"):format(show(name), M.MAX_HOSTS))
      end
      table.insert(segments, values)
      pos = e + 1
   end
   local tail = name:sub(pos)
   check_literal(tail, name, where)
   table.insert(segments, { tail })
   -- The first range varies slowest, as in Ansible.
   local names = { "" }
   for _, seg in ipairs(segments) do
      local nxt = {}
      for _, prefix in ipairs(names) do
         for _, v in ipairs(seg) do
            nxt[#nxt + 1] = prefix .. v
         end
      end
      names = nxt
   end
   if names[1] == "" then
      raise(where, "expected a host name, got an empty string")
   end
   return names
end

-- A host token -> list of names, port string | nil.
local function parse_host_token(tok, where)
   if tok == "" then
      raise(where, "expected a host name, got an empty string")
   end
   if tok:find("=", 1, true) then
      raise(where, ("expected a host name before '%s'"):format(show(tok)))
   end
   local v6, port = tok:match("^%[([%x:%.]+)%]:(%d+)$")
   if v6 and count(v6, ":") >= 2 then
      return { v6 }, port
   end
   if tok:match("^[%x:%.]+$") and count(tok, ":") >= 2 then
      return { tok }
   end
   local outside = tok:gsub("%b[]", "")
   if outside:find("[", 1, true) then
      raise(where, ("unclosed '[' in host name '%s'"):format(show(tok)))
   end
   local colons = count(outside, ":")
   local name = tok
   if colons == 1 then
      if tok:sub(-1) == ":" then
         raise(where, ("host '%s' ends in ':' (expected a port number after it)"):format(show(tok)))
      end
      name, port = tok:match("^(.*):(%d+)$")
      if not name then
         raise(where, ("expected 'host:port' with a numeric port, got '%s'"):format(show(tok)))
      end
   elseif colons > 1 then
      check_literal(outside, tok, where)
   end
   return expand_ranges(name, where), port
end

---------------------------------------------------------------------------
-- The model both formats fill, then finish() checks and resolves
---------------------------------------------------------------------------

local function group(m, gname)
   local g = m.groups[gname]
   if not g then
      g = { name = gname, vars = {}, where = {}, own = {}, ownset = {}, children = {},
         childset = {} }
      m.groups[gname] = g
      table.insert(m.group_order, gname)
   end
   return g
end

local function new_model(name)
   local m = { name = name, groups = {}, group_order = {}, hosts = {}, host_order = {},
      edges = {}, seq = 0 }
   group(m, "all").defined = true
   group(m, "ungrouped").defined = true
   return m
end

local function next_seq(m)
   m.seq = m.seq + 1
   return m.seq
end

-- vars: array of {key, value}, applied in order.
local function add_host(m, gname, hname, vars, where)
   local h = m.hosts[hname]
   if not h then
      if #m.host_order >= M.MAX_HOSTS then
         raise(where, ("more than %d hosts"):format(M.MAX_HOSTS))
      end
      h = { name = hname, vars = {}, where = {}, direct = {} }
      m.hosts[hname] = h
      table.insert(m.host_order, hname)
   end
   for _, kv in ipairs(vars) do
      h.vars[kv[1]] = kv[2]
      h.where[kv[1]] = where
   end
   local g = group(m, gname)
   if not g.ownset[hname] then
      g.ownset[hname] = true
      table.insert(g.own, hname)
      table.insert(h.direct, gname)
   end
end

local function set_group_var(m, gname, k, v, where)
   local g = group(m, gname)
   g.vars[k] = v
   g.where[k] = where
end

local function add_child(m, parent, child, where, undefined_msg)
   if child == "all" then
      raise(where, ("group 'all' cannot be a child of '%s': every group is already in all")
         :format(parent))
   end
   local p = group(m, parent)
   group(m, child)
   if not p.childset[child] then
      p.childset[child] = true
      table.insert(p.children, child)
      table.insert(m.edges, { parent = parent, child = child, where = where,
         undefined = undefined_msg, seq = next_seq(m) })
   end
end

local TRUE = { ["true"] = true, yes = true, on = true, ["1"] = true, y = true }
local FALSE = { ["false"] = true, no = true, off = true, ["0"] = true, n = true }

local SSH_CONNECTIONS = { ssh = true, smart = true, paramiko = true, libssh = true }

-- The connection fields of a host from its merged vars.
local function normalise(h)
   local vars, where = h.vars, h.where
   local function pick(...)
      for _, k in ipairs({ ... }) do
         if vars[k] ~= nil and vars[k] ~= NULL then -- x=None in INI: as if unset
            return vars[k], k
         end
      end
   end
   local function bad(k, what, v)
      raise(where[k] or h.name, ("%s of host '%s' must be %s, got %s")
         :format(k, h.name, what, show_value(v)))
   end
   local function str(...)
      local v, k = pick(...)
      if v ~= nil and (type(v) ~= "string" or v == "") then
         bad(k, "a non-empty string", v)
      end
      return v
   end
   h.address = str("ansible_host", "ansible_ssh_host") or h.name
   h.user = str("ansible_user", "ansible_ssh_user")
   local port, pk = pick("ansible_port", "ansible_ssh_port")
   if port ~= nil then
      local n = type(port) == "string" and port:match("^%d%d?%d?%d?%d?$") and tonumber(port)
         or math.type(port) == "integer" and port
      if not n or n < 1 or n > 65535 then
         bad(pk, "a port number (1-65535)", port)
      end
      h.port = n
   end
   local key = str("ansible_ssh_private_key_file", "ansible_private_key_file")
   h.key_file = key and expand_home(key)
   local kh = str("etcdrun_known_hosts")
   h.known_hosts = kh and expand_home(kh)
   local become, bk = pick("ansible_become")
   if become == nil then
      h.become = false
   elseif type(become) == "boolean" then
      h.become = become
   elseif type(become) == "string" and TRUE[become:lower()] then
      h.become = true
   elseif type(become) == "string" and FALSE[become:lower()] then
      h.become = false
   elseif become == 1 or become == 0 then
      h.become = become == 1
   else
      bad(bk, "a boolean (true/false, yes/no)", become)
   end
   h.become_user = str("ansible_become_user")
   local method = str("ansible_become_method")
   if method and method ~= "sudo" then
      bad("ansible_become_method", "'sudo' (the only method etcdrun supports)", method)
   end
   local conn, ck = pick("ansible_connection")
   if conn == nil or SSH_CONNECTIONS[conn] then
      h.connection = "ssh"
   elseif conn == "local" then
      h.connection = "local"
   else
      bad(ck, "ssh or local", conn)
   end
end

local LOCALHOST = { localhost = true, ["127.0.0.1"] = true, ["::1"] = true }

-- Checks references and cycles, resolves groups and vars; returns the inventory table
-- (etcdrun.inventory gives it its methods).
local function finish(m)
   local all, ungrouped = m.groups.all, m.groups.ungrouped

   -- Undefined groups: report the first reference in file order.
   local first
   local function candidate(seq, where, msg)
      if not first or seq < first.seq then
         first = { seq = seq, where = where, msg = msg }
      end
   end
   for _, gname in ipairs(m.group_order) do
      local g = m.groups[gname]
      if not g.defined and g.vars_at then
         candidate(g.vars_at.seq, g.vars_at.where, g.vars_at.msg)
      end
   end
   for _, e in ipairs(m.edges) do
      if not m.groups[e.child].defined then
         candidate(e.seq, e.where, e.undefined)
      end
   end
   if first then
      raise(first.where, first.msg)
   end

   -- Cycles: iterative depth-first search; post-order gives children before parents.
   local color, post = {}, {}
   for _, root in ipairs(m.group_order) do
      if not color[root] then
         local stack = { { root, 0 } }
         color[root] = 1
         while #stack > 0 do
            local top = stack[#stack]
            local g = m.groups[top[1]]
            top[2] = top[2] + 1
            local child = g.children[top[2]]
            if not child then
               color[top[1]] = 2
               post[#post + 1] = top[1]
               stack[#stack] = nil
            elseif color[child] == 1 then
               local path, on = {}, false
               for _, fr in ipairs(stack) do
                  on = on or fr[1] == child
                  if on then
                     path[#path + 1] = fr[1]
                  end
               end
               path[#path + 1] = child
               local edge
               for _, e in ipairs(m.edges) do
                  if e.parent == top[1] and e.child == child then
                     edge = e
                  end
               end
               raise(edge.where, ("group '%s' as a child of '%s' makes a cycle: %s")
                  :format(child, top[1], table.concat(path, " -> ")))
            elseif not color[child] then
               color[child] = 1
               stack[#stack + 1] = { child, 0 }
            end
         end
      end
   end

   -- Parents, depth and ancestors, parents first.
   for _, gname in ipairs(m.group_order) do
      m.groups[gname].parents = {}
   end
   for _, e in ipairs(m.edges) do
      table.insert(m.groups[e.child].parents, e.parent)
   end
   -- Reverse post-order puts explicit parents first; all (never a child) has no parents.
   local anc = { all = {} }
   all.depth = 0
   for i = #post, 1, -1 do
      local g = m.groups[post[i]]
      if g.name ~= "all" then
         if #g.parents == 0 then
            g.parents = { "all" }
         end
         local set, d = {}, 0
         for _, p in ipairs(g.parents) do
            d = math.max(d, m.groups[p].depth + 1)
            set[p] = true
            for a in pairs(anc[p]) do
               set[a] = true
            end
         end
         g.depth = d
         anc[g.name] = set
      end
   end
   all.children = {}
   for _, gname in ipairs(m.group_order) do
      if gname ~= "all" and m.groups[gname].parents[1] == "all" then
         table.insert(all.children, gname)
      end
   end

   -- ungrouped: the hosts in no group but all and ungrouped.
   local ug = {}
   for _, hname in ipairs(m.host_order) do
      local h = m.hosts[hname]
      local other = false
      for _, g in ipairs(h.direct) do
         other = other or (g ~= "all" and g ~= "ungrouped")
      end
      if not other then
         ug[#ug + 1] = hname
      end
   end
   ungrouped.own, ungrouped.ownset = ug, {}
   for _, hname in ipairs(ug) do
      ungrouped.ownset[hname] = true
   end

   local function priority(g)
      local p = g.vars.ansible_group_priority
      if p == nil then
         return 1
      end
      local n = tonumber(p)
      if not n then
         raise(g.where.ansible_group_priority, ("ansible_group_priority of group '%s' must "
            .. "be a number, got %s"):format(g.name, show_value(p)))
      end
      return n
   end
   local prio = {}
   for _, gname in ipairs(m.group_order) do
      prio[gname] = priority(m.groups[gname])
   end
   local function by_precedence(a, b)
      local ga, gb = m.groups[a], m.groups[b]
      if ga.depth ~= gb.depth then
         return ga.depth < gb.depth
      end
      if prio[a] ~= prio[b] then
         return prio[a] < prio[b]
      end
      return a < b
   end

   local function merged(groupnames, own_vars, own_where)
      local vars, where = {}, {}
      for _, gname in ipairs(groupnames) do
         local g = m.groups[gname]
         for k, v in pairs(g.vars) do
            vars[k], where[k] = v, g.where[k]
         end
      end
      for k, v in pairs(own_vars) do
         vars[k], where[k] = v, own_where[k]
      end
      return vars, where
   end

   local inv = { name = m.name, _list = {}, _byname = {} }
   local members = {}
   for _, gname in ipairs(m.group_order) do
      members[gname] = {}
   end
   for i, hname in ipairs(m.host_order) do
      local h = m.hosts[hname]
      local in_group = { all = true }
      -- A host listed under [ungrouped] and under another group is not ungrouped.
      local direct = {}
      if ungrouped.ownset[hname] then
         direct = { "ungrouped" }
      else
         for _, g in ipairs(h.direct) do
            if g ~= "all" and g ~= "ungrouped" then
               direct[#direct + 1] = g
            end
         end
      end
      for _, g in ipairs(direct) do
         do
            in_group[g] = true
            for a in pairs(anc[g]) do
               in_group[a] = true
            end
         end
      end
      local names, listed = {}, {}
      for _, gname in ipairs(m.group_order) do
         if in_group[gname] then
            table.insert(members[gname], i)
            names[#names + 1] = gname
            if gname ~= "all" then
               listed[#listed + 1] = gname
            end
         end
      end
      table.sort(names, by_precedence)
      local host = { name = hname, index = i, groups = listed }
      host.vars, host.where = merged(names, h.vars, h.where)
      normalise(host)
      host.where = nil
      inv._list[i] = host
      inv._byname[hname] = host
   end

   -- The implicit localhost: vars of all, local connection.
   local lh = { name = "localhost", groups = {}, implicit = true }
   lh.vars, lh.where = merged({ "all" }, { ansible_connection = "local" },
      { ansible_connection = m.name })
   normalise(lh)
   lh.where = nil
   lh.index = #m.host_order + 1
   inv._localhost = lh

   local groups, order = {}, {}
   for _, gname in ipairs(m.group_order) do
      local g = m.groups[gname]
      local hosts = {}
      for _, i in ipairs(members[gname]) do
         hosts[#hosts + 1] = m.host_order[i]
      end
      local obj = { name = gname, hosts = hosts, own_hosts = g.own, vars = g.vars,
         children = g.children, parents = gname == "all" and {} or g.parents, depth = g.depth }
      if gname == "all" then
         obj.children = all.children
      end
      groups[gname] = obj
      order[#order + 1] = obj
   end
   -- inv.groups is both the map and, called as inv:groups(), the ordered list.
   inv.groups = setmetatable(groups, {
      __call = function()
         return table.move(order, 1, #order, 1, {})
      end,
   })

   local n = #m.host_order
   inv._view = {
      names = m.host_order,
      index = {},
      group_names = m.group_order,
      groups = members,
      implicit = function(text)
         if LOCALHOST[text] then
            return n + 1
         end
      end,
   }
   for i, hname in ipairs(m.host_order) do
      inv._view.index[hname] = i
   end
   -- A group's hosts in the order Ansible's Group.get_hosts() gives them (what its
   -- subscripts group[0] index): the group's own hosts, then its children's level by
   -- level, each level in the order the children were listed.
   inv._view.ordered = function(gname)
      local out, seen, gseen, level = {}, {}, { [gname] = true }, { gname }
      while #level > 0 do
         local nxt = {}
         for _, g in ipairs(level) do
            local own = g == "ungrouped" and groups.ungrouped.hosts or g ~= "all" and m.groups[g].own or {}
            for _, hname in ipairs(own) do
               local i = inv._view.index[hname]
               if i and not seen[i] then
                  seen[i] = true
                  out[#out + 1] = i
               end
            end
         end
         for _, g in ipairs(level) do
            for _, c in ipairs(groups[g].children) do
               if not gseen[c] then
                  gseen[c] = true
                  nxt[#nxt + 1] = c
               end
            end
         end
         level = nxt
      end
      return out
   end
   return inv
end


M.ParseError = ParseError
M.raise, M.protect, M.trim, M.show, M.show_value = raise, protect, trim, show, show_value
M.natural_sort, M.check_group_name, M.check_var_name = natural_sort, check_group_name,
   check_var_name
M.parse_host_token = parse_host_token
M.new_model, M.group, M.next_seq, M.add_host, M.set_group_var, M.add_child, M.finish =
   new_model, group, next_seq, add_host, set_group_var, add_child, finish

return M
