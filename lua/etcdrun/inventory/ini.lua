--- etcdrun.inventory.ini: Ansible's INI inventory format, read as Ansible's ini plugin
-- reads it (the rules are listed in lua/etcdrun/inventory.lua).
local model = require("etcdrun.inventory.model")
local pyliteral = require("etcdrun.inventory.pyliteral")

local raise, trim, show = model.raise, model.trim, model.show
local check_group_name, check_var_name = model.check_group_name, model.check_var_name
local parse_host_token, new_model, group, next_seq = model.parse_host_token, model.new_model,
   model.group, model.next_seq
local add_host, set_group_var, add_child, finish = model.add_host, model.set_group_var,
   model.add_child, model.finish

-- Ansible's ini plugin runs ast.literal_eval on every value: 2222 is an integer, True a
-- boolean, [1, 2] a list, 'x' the string x; what is not a literal stays the string.
local function literal(v)
   local x = pyliteral.eval(v)
   if x == nil then
      return v
   end
   return x
end

-- Python shlex.split(line, comments=True) in POSIX mode.
local function shlex(line, where)
   local tokens, cur, have = {}, {}, false
   local i, n = 1, #line
   local function push()
      if have then
         tokens[#tokens + 1] = table.concat(cur)
      end
      cur, have = {}, false
   end
   while i <= n do
      local c = line:sub(i, i)
      if c == " " or c == "\t" or c == "\r" or c == "\n" then
         push()
      elseif c == "#" then
         break
      elseif c == "'" then
         local e = line:find("'", i + 1, true)
         if not e then
            raise(where, "unterminated ' quote")
         end
         cur[#cur + 1] = line:sub(i + 1, e - 1)
         have, i = true, e
      elseif c == '"' then
         local j, closed = i + 1, false
         while j <= n do
            local d = line:sub(j, j)
            if d == "\\" and (line:sub(j + 1, j + 1) == '"' or line:sub(j + 1, j + 1) == "\\") then
               cur[#cur + 1] = line:sub(j + 1, j + 1)
               j = j + 2
            elseif d == '"' then
               closed = true
               break
            else
               cur[#cur + 1] = d
               j = j + 1
            end
         end
         if not closed then
            raise(where, 'unterminated " quote')
         end
         have, i = true, j
      elseif c == "\\" then
         if i == n then
            raise(where, "nothing after '\\' at the end of the line")
         end
         cur[#cur + 1] = line:sub(i + 1, i + 1)
         have, i = true, i + 1
      else
         cur[#cur + 1] = c
         have = true
      end
      i = i + 1
   end
   push()
   return tokens
end

local SUFFIXES = { hosts = "hosts", vars = "vars", children = "children" }

local function parse_ini(text, name)
   local m = new_model(name)
   if text:sub(1, 3) == "\239\187\191" then
      text = text:sub(4)
   end
   local gname, state = "ungrouped", "hosts"
   local lineno = 0
   for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
      lineno = lineno + 1
      local at = name .. ":" .. lineno
      local line = trim(raw)
      local c = line:sub(1, 1)
      local header = false
      if c == "[" then
         local close = line:find("]", 2, true)
         if not close then
            raise(at, ("section header '%s' has no closing ']'"):format(show(line)))
         end
         local rest = trim(line:sub(close + 1))
         -- "[fe80::1]:2222 ..." is a host line, not a header.
         header = rest == "" or rest:sub(1, 1) == "#" or rest:sub(1, 1) == ";"
         if header then
            local inner = line:sub(2, close - 1)
            local g, suffix = inner:match("^([^:]*):(.*)$")
            g = g or inner
            if g == "" then
               raise(at, ("section header '%s' has no group name"):format(show(line)))
            end
            check_group_name(g, at)
            if suffix and not SUFFIXES[suffix] then
               raise(at, ("unknown section suffix ':%s' (expected :vars or :children)")
                  :format(show(suffix)))
            end
            gname, state = g, suffix or "hosts"
            local grp = group(m, g)
            if state == "vars" then
               if not grp.defined and not grp.vars_at then
                  grp.vars_at = { where = at, seq = next_seq(m), msg =
                     ("[%s:vars] sets variables of group '%s', which is not declared anywhere "
                        .. "(expected a [%s] or [%s:children] section)"):format(g, g, g, g) }
               end
            else
               grp.defined = true
            end
         end
      end
      if header or line == "" or c == "#" or c == ";" then -- luacheck: ignore 542
         -- nothing more on this line
      elseif state == "hosts" then
         local tokens = shlex(line, at)
         if #tokens > 0 then
            local names, port = parse_host_token(tokens[1], at)
            local vars = {}
            if port then -- an integer, as Ansible makes it
               vars[1] = { "ansible_port", math.tointeger(tonumber(port)) or port }
            end
            for i = 2, #tokens do
               local t = tokens[i]
               local k, v = t:match("^([^=]*)=(.*)$")
               if not k then
                  raise(at, ("expected 'key=value' after the host name, got '%s'"):format(show(t)))
               end
               check_var_name(k, at, t)
               vars[#vars + 1] = { k, literal(v) }
            end
            for _, hname in ipairs(names) do
               add_host(m, gname, hname, vars, at)
            end
         end
      elseif state == "vars" then
         local eq = line:find("=", 1, true)
         if not eq then
            raise(at, ("expected 'key=value' in [%s:vars], got '%s'"):format(gname, show(line)))
         end
         local k = trim(line:sub(1, eq - 1))
         check_var_name(k, at, line)
         set_group_var(m, gname, k, literal(trim(line:sub(eq + 1))), at)
      else
         local child, rest = line:match("^(%S+)(.*)$")
         rest = trim(rest)
         if rest ~= "" and rest:sub(1, 1) ~= "#" and rest:sub(1, 1) ~= ";" then
            raise(at, ("expected one group name per line in [%s:children], got '%s'")
               :format(gname, show(line)))
         end
         check_group_name(child, at)
         add_child(m, gname, child, at,
            ("[%s:children] lists group '%s', which is not declared anywhere "
               .. "(expected a [%s] or [%s:children] section)"):format(gname, child, child, child))
      end
   end
   return finish(m)
end

--- Parse INI text into an inventory table (raises ParseError on bad input).
return { parse = parse_ini }
