--- Tab completion for the REPL: given the text before the cursor, what to
-- insert, or (when the choice is ambiguous) the candidates to show. REPL
-- commands after `:`, host and group names in host patterns, shell lines
-- and Lua strings, module names after `:doc`, and Lua names (globals,
-- modules, fields after `.` and methods after `:`) everywhere else.
local natural_less = require("etcdrun.repl.pretty").natural_less

local M = {}

-- Is the end of `s` inside a '...' or "..." string literal?
local function in_string(s)
   local quote
   local i = 1
   while i <= #s do
      local c = s:sub(i, i)
      if quote then
         if c == "\\" then
            i = i + 1
         elseif c == quote then
            quote = nil
         end
      elseif c == "'" or c == '"' then
         quote = c
      elseif c == "-" and s:sub(i, i + 1) == "--" then
         return false -- a comment
      end
      i = i + 1
   end
   return quote ~= nil
end

-- Keys of a table and of the tables its metatable's __index chain holds.
local function fields(v, methods_only)
   local out, seen = {}, {}
   local depth = 0
   while v ~= nil and depth < 4 do
      if type(v) == "table" then
         for k, x in next, v do
            if type(k) == "string" and k:match("^[%a_][%w_]*$") and not seen[k]
               and (not methods_only or type(x) == "function") then
               seen[k] = true
               out[#out + 1] = k
            end
         end
      end
      local mt = getmetatable(v)
      v = type(mt) == "table" and type(mt.__index) == "table" and mt.__index or nil
      depth = depth + 1
   end
   return out
end

-- Resolve "a.b.c" in env without running code: raw lookups only (a lazy
-- table such as `etcdrun` shows what has been loaded).
local function resolve(env, path)
   local v = env
   for part in path:gmatch("[^%.:]+") do
      if type(v) ~= "table" then
         return nil
      end
      local x = rawget(v, part)
      if x == nil then
         local mt = getmetatable(v)
         local idx = type(mt) == "table" and mt.__index
         if type(idx) == "table" then
            x = rawget(idx, part)
         elseif type(idx) == "function" and v == env then
            x = idx(v, part) -- the REPL's own environment: builtins, then _G
         end
      end
      v = x
   end
   return v
end

--- Lay out candidates in columns for a terminal `width` wide.
function M.columns(list, width)
   local w = 0
   for _, s in ipairs(list) do
      w = math.max(w, #s)
   end
   w = w + 2
   local cols = math.max(1, (width or 80) // w)
   local rows = math.ceil(#list / cols)
   local lines = {}
   for r = 1, rows do
      local line = {}
      for c = 0, cols - 1 do
         local s = list[c * rows + r]
         if s then
            line[#line + 1] = s .. (" "):rep(w - #s)
         end
      end
      lines[r] = table.concat(line):gsub("%s+$", "")
   end
   return table.concat(lines, "\n") .. "\n"
end

--- What Tab does.
---@param before string the line up to the cursor
---@param width integer terminal width
---@param src table {commands = names, hosts = names, groups = names, modules = names, env = table}
---@return string|nil insert, string|nil show
function M.complete(before, width, src)
   local word
   local cands, suffix = {}, " "
   local function add(list)
      for _, s in ipairs(list or {}) do
         cands[#cands + 1] = s
      end
   end
   if before:match("^%s*:[%w_]*$") then
      word = before:match(":([%w_]*)$")
      add(src.commands)
   elseif before:match("^%s*:doc%s") then
      word = before:match("[%w_]*$")
      add(src.modules)
   elseif before:match("^%s*:on%s") or before:match("^%s*:hosts%s") then
      word = before:match("[^%s:&!,]*$")
      add(src.hosts)
      add(src.groups)
   elseif before:match("^%s*[!:]") or in_string(before) then
      word = before:match("[%w_%-%.]*$")
      add(src.hosts)
      add(src.groups)
      suffix = ""
   else
      local path = before:match("[%a_][%w_%.:]*$") or ""
      local prefix, sep, last = path:match("^(.*)([%.:])([%w_]*)$")
      suffix = ""
      if prefix then
         word = last
         local v = resolve(src.env, prefix)
         if v == nil then
            return nil
         end
         add(fields(v, sep == ":"))
      else
         word = before:match("[%w_]*$")
         if word == "" then
            return nil
         end
         add(fields(src.env))
         add(src.names)
      end
   end
   local matches, seen = {}, {}
   for _, c in ipairs(cands) do
      if c:sub(1, #word) == word and not seen[c] then
         seen[c] = true
         matches[#matches + 1] = c
      end
   end
   if #matches == 0 then
      return nil
   end
   table.sort(matches, natural_less)
   if #matches == 1 then
      return matches[1]:sub(#word + 1) .. suffix
   end
   local common = matches[1]
   for _, m in ipairs(matches) do
      while m:sub(1, #common) ~= common do
         common = common:sub(1, -2)
      end
   end
   if #common > #word then
      return common:sub(#word + 1)
   end
   return nil, M.columns(matches, width)
end

return M
