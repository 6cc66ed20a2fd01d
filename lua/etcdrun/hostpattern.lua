--- Host patterns with Ansible's meaning
-- (https://docs.ansible.com/ansible/latest/inventory_guide/intro_patterns.html),
-- evaluated against an inventory by lua/etcdrun/inventory.lua.
--
-- A pattern is a string, or an array of strings taken as a union:
--   all, *           every host of the inventory
--   etcd             the hosts of group etcd (its children's included) and/or
--                    the host named etcd: a name matches a group and a host alike
--   etcd*, 198.18.0.?, etcd[ab]
--                    a glob (fnmatch: * ? [seq] [!seq]) on group and host names
--   ~^etcd%d$        a Lua pattern (not a Python regex: no `|`), anchored at the
--                    start like Python's re.match, on group and host names
--   a:b  a,b         union (`,` wins when both appear; whitespace also separates
--                    when there is no `,`, as in Ansible)
--   a:&b             intersection
--   a:!b             exclusion
-- Whatever their position, unions are taken first, then intersections, then
-- exclusions; a pattern made only of & and ! terms starts from `all`.
-- Host names are matched, never ansible_host addresses: `198.18.0.*` selects
-- hosts whose inventory name is such an address.
-- An IPv6 name (fe80::1) is one term and not split on its colons.
-- Subscripts, as Ansible: etcd[0] (the first), etcd[-1] (the last), etcd[1:] (from
--   the second), etcd[0:2] (the first three: both ends included), indexing the hosts
--   the term matches in Ansible's order (a group's own hosts, then its children's).
--   Any [digits] after a name is a subscript, never a glob set; an index out of range
--   selects nothing (with the "matches no host" warning).
-- An empty pattern means all; an empty --limit means no limit.
local M = {}

local eval_subscript

local function trim(s)
   local i = s:find("%S")
   if not i then
      return ""
   end
   return s:match(".*%S", i)
end

-- Where the set that opens with the '[' at i closes, or nil. fnmatch: a set
-- runs to the next ']' (a ']' right after '[' or '[!' belongs to the set).
local function set_end(glob, i)
   local j = i + 1
   if glob:sub(j, j) == "!" then
      j = j + 1
   end
   if glob:sub(j, j) == "]" then
      j = j + 1
   end
   return glob:find("]", j, true)
end

-- Whether a glob has a '[' that no ']' closes.
local function unclosed_bracket(glob)
   local i = glob:find("[", 1, true)
   while i do
      local close = set_end(glob, i)
      if not close then
         return true
      end
      i = glob:find("[", close + 1, true)
   end
   return false
end

-- Split one string into terms {op = "|" | "&" | "!", text = "..."}.
local function split_one(s, out)
   local parts = {}
   if s:find(",", 1, true) then
      for p in (s .. ","):gmatch("([^,]*),") do
         table.insert(parts, trim(p))
      end
   else
      local bare = s:gsub("^[!&]", "")
      local colons = select(2, bare:gsub(":", ""))
      if colons >= 2 and bare:match("^[%x:%.]+$") then
         -- An IPv6 address names one host; its colons separate nothing.
         table.insert(parts, trim(s))
      else
         -- ':' and whitespace separate terms, except inside [...].
         local cur, depth = {}, false
         for i = 1, #s do
            local c = s:sub(i, i)
            if depth then
               table.insert(cur, c)
               if c == "]" then
                  depth = false
               end
            elseif c == "[" then
               depth = true
               table.insert(cur, c)
            elseif c == ":" or c:match("%s") then
               table.insert(parts, table.concat(cur))
               cur = {}
            else
               table.insert(cur, c)
            end
         end
         table.insert(parts, table.concat(cur))
      end
   end
   for _, p in ipairs(parts) do
      if p ~= "" then
         local op, text = p:match("^([!&]?)(.*)$")
         if text == "" then
            return nil, ("host pattern '%s': '%s' needs a name after it"):format(s, op)
         end
         local sub
         if text:sub(1, 1) ~= "~" then
            -- Ansible's PATTERN_WITH_SUBSCRIPT: name[-?N] or name[N:M?] (or the old N-M)
            local base, idx = text:match("^(.+)%[(%-?%d+)%]$")
            if base then
               sub = { tonumber(idx) }
            else
               local b2, from, to = text:match("^(.+)%[(%d+)[:%-](%d*)%]$")
               if b2 then
                  base, sub = b2, { tonumber(from), to == "" and -1 or tonumber(to) }
               end
            end
            if sub then
               if #tostring(sub[1]) > 9 or (sub[2] and #tostring(sub[2]) > 9) then
                  return nil, ("host pattern '%s': subscript in '%s' is too large"):format(s, text)
               end
               text = base
            end
         end
         if text:sub(1, 1) ~= "~" and unclosed_bracket(text) then
            -- a glob keeps a '[' with no ']' as a literal, but no host is named so
            return nil, ("host pattern '%s': '[' in '%s' is not closed"):format(s, text)
         end
         table.insert(out, { op = op == "" and "|" or op, text = text, sub = sub })
      end
   end
   return out
end

--- Split a pattern into its terms.
---@param pattern string|string[]
---@return table[]|nil terms { {op = "|"|"&"|"!", text = string}, ... }
---@return string|nil err
function M.split(pattern)
   local list = type(pattern) == "table" and pattern or { pattern }
   local terms = {}
   for i, s in ipairs(list) do
      if type(s) ~= "string" then
         error(("host pattern: item %d is a %s, expected a string"):format(i, type(s)), 2)
      end
      local ok, err = split_one(s, terms)
      if not ok then
         return nil, err
      end
   end
   if #terms == 0 then
      local text = table.concat(list, ",")
      if not text:find("[^%s,:]") then
         return { { op = "|", text = "all" } } -- Ansible: an empty pattern is all
      end
      return nil, ("host pattern '%s' is empty: name a group or host (or all)"):format(text)
   end
   return terms
end

--- Translate an fnmatch glob into an anchored Lua pattern.
---@param glob string
---@return string
function M.glob_to_lua(glob)
   local out, i, n = { "^" }, 1, #glob
   while i <= n do
      local c = glob:sub(i, i)
      if c == "*" then
         table.insert(out, ".*")
      elseif c == "?" then
         table.insert(out, ".")
      elseif c == "[" then
         -- a set (set_end); without its ']', '[' is literal
         local close = set_end(glob, i)
         if not close then
            table.insert(out, "%[")
         else
            local body = glob:sub(i + 1, close - 1)
            local neg = false
            if body:sub(1, 1) == "!" then
               neg, body = true, body:sub(2)
            end
            body = body:gsub("[%%%]%^]", "%%%0")
            table.insert(out, "[" .. (neg and "^" or "") .. body .. "]")
            i = close
         end
      else
         table.insert(out, (c:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")))
      end
      i = i + 1
   end
   table.insert(out, "$")
   return table.concat(out)
end

-- A matcher for one term's text: function(name) -> bool (may raise for a malformed
-- Lua pattern), or nil for a plain name.
local function matcher(text)
   if text:sub(1, 1) == "~" then
      local pat = text:sub(2)
      if pat:sub(1, 1) ~= "^" then
         pat = "^" .. pat
      end
      return function(name)
         return name:find(pat) ~= nil
      end
   elseif text:find("[*?[]") then
      local pat = M.glob_to_lua(text)
      return function(name)
         return name:find(pat) ~= nil
      end
   end
   return nil
end

-- The set of host indexes one term selects; `matched` tells whether any
-- group or host name matched (an existing empty group counts).
local function eval_term(view, text, sub)
   local set, matched = {}, false
   local m = matcher(text)
   if sub then
      return eval_subscript(view, text, m, sub)
   end
   if m then
      -- A malformed Lua pattern only shows when it is matched.
      local ok, err = pcall(function()
         for _, g in ipairs(view.group_names) do
            if m(g) then
               matched = true
               for _, i in ipairs(view.groups[g]) do
                  set[i] = true
               end
            end
         end
         for i, name in ipairs(view.names) do
            if m(name) then
               matched = true
               set[i] = true
            end
         end
      end)
      if not ok then
         return nil, ("host pattern '%s': %s"):format(text, tostring(err):gsub("^.-:%d+: ", ""))
      end
   else
      local g = view.groups[text]
      if g then
         matched = true
         for _, i in ipairs(g) do
            set[i] = true
         end
      end
      local i = view.index[text]
      if i then
         matched = true
         set[i] = true
      elseif not matched and view.implicit then
         i = view.implicit(text)
         if i then
            matched = true
            set[i] = true
         end
      end
   end
   return set, matched
end

-- A subscripted term, as Ansible's _enumerate_matches then _apply_subscript: the
-- hosts of every matching group (in inventory group order), then the matching hosts
-- (for a plain name only when no group matched), duplicates kept; then the index.
eval_subscript = function(view, text, m, sub)
   local list, matched = {}, false
   local function take(g)
      matched = true
      for _, i in ipairs(view.ordered and view.ordered(g) or view.groups[g]) do
         list[#list + 1] = i
      end
   end
   local ok, err = pcall(function()
      if m then
         for _, g in ipairs(view.group_names) do
            if m(g) then
               take(g)
            end
         end
         for i, name in ipairs(view.names) do
            if m(name) then
               matched = true
               list[#list + 1] = i
            end
         end
      else
         if view.groups[text] then
            take(text)
         elseif view.index[text] then
            matched = true
            list[#list + 1] = view.index[text]
         end
      end
   end)
   if not ok then
      return nil, ("host pattern '%s': %s"):format(text, tostring(err):gsub("^.-:%d+: ", ""))
   end
   local set, n = {}, #list
   local from, to = sub[1], sub[2]
   if to and to ~= 0 then -- [a:b], both ends included; [a:] runs to the end
      if to == -1 then
         to = n - 1
      end
      for k = from + 1, math.min(to + 1, n) do
         set[list[k]] = true
      end
   else -- [i] (and Ansible's quirk: [i:0] is [i])
      local k = from < 0 and n + from + 1 or from + 1
      if k >= 1 and k <= n then
         set[list[k]] = true
      end
   end
   return set, matched and next(set) ~= nil
end

--- Evaluate a pattern against an inventory view.
-- view = { names = {host names in order}, index = {name -> i},
--          group_names = {ordered}, groups = {name -> {host indexes}},
--          implicit = function(name) -> i|nil (optional) }
---@param view table
---@param pattern string|string[]
---@return table|nil set host index -> true
---@return string[]|string warnings (terms that matched no group or host) or err
function M.select(view, pattern)
   local terms, err = M.split(pattern)
   if not terms then
      return nil, err
   end
   local union, inter, excl = {}, {}, {}
   for _, t in ipairs(terms) do
      table.insert(t.op == "|" and union or t.op == "&" and inter or excl, t)
   end
   if #union == 0 then
      union = { { op = "|", text = "all" } }
   end
   local warnings = {}
   local result = {}
   local function term(t)
      local set, matched = eval_term(view, t.text, t.sub)
      if not set then
         return nil, matched
      end
      if not matched and t.text ~= "all" then
         local shown = t.text .. (t.sub and ("[%s]"):format(t.sub[2] and t.sub[1] .. ":"
            .. (t.sub[2] == -1 and "" or t.sub[2]) or t.sub[1]) or "")
         table.insert(warnings, ("host pattern '%s' matches no group or host")
            :format(t.op == "|" and shown or t.op .. shown))
      end
      return set
   end
   for _, t in ipairs(union) do
      local set, terr = term(t)
      if not set then
         return nil, terr
      end
      for i in pairs(set) do
         result[i] = true
      end
   end
   for _, t in ipairs(inter) do
      local set, terr = term(t)
      if not set then
         return nil, terr
      end
      for i in pairs(result) do
         if not set[i] then
            result[i] = nil
         end
      end
   end
   for _, t in ipairs(excl) do
      local set, terr = term(t)
      if not set then
         return nil, terr
      end
      for i in pairs(set) do
         result[i] = nil
      end
   end
   return result, warnings
end

return M
