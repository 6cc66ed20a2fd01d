--- How the REPL shows a value: tables readably (sequence first, then keys
-- sorted, nested with indentation, short ones on one line), bounded in depth
-- and width so that printing `_G` or a cyclic structure stays usable.
local M = {}

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat
   return then true until while]]):gmatch("%a+") do
   KEYWORDS[w] = true
end

local WIDTH = 80 -- a table that fits in this many columns goes on one line

local function quote(s)
   return (("%q"):format(s):gsub("\\\n", "\\n"))
end

local function scalar(v)
   local t = type(v)
   if t == "string" then
      return quote(v)
   elseif t == "number" and math.type(v) == "float" and v == math.floor(v) and v > -1e15 and v < 1e15 then
      return ("%.1f"):format(v)
   end
   local mt = getmetatable(v)
   if t == "table" and type(mt) == "table" and mt.__tostring then
      return tostring(v)
   end
   return tostring(v)
end

local function key_text(k)
   if type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then
      return k
   end
   return "[" .. scalar(k) .. "]"
end

-- "etcd2" before "etcd10": digit runs compare as numbers
local function natural_less(a, b)
   local i, j = 1, 1
   while i <= #a and j <= #b do
      local da, db = a:match("^%d+", i), b:match("^%d+", j)
      if da and db then
         local na, nb = tonumber(da), tonumber(db)
         if na ~= nb then
            return na < nb
         end
         i, j = i + #da, j + #db
      else
         local ca, cb = a:sub(i, i), b:sub(j, j)
         if ca ~= cb then
            return ca < cb
         end
         i, j = i + 1, j + 1
      end
   end
   if #a - i ~= #b - j then
      return #a - i < #b - j
   end
   return a < b
end
M.natural_less = natural_less

-- numbers first (numerically), then strings, then anything else by its text
local function key_less(a, b)
   local ta, tb = type(a), type(b)
   if ta == "number" and tb == "number" then
      return a < b
   elseif ta ~= tb then
      local rank = { number = 1, string = 2 }
      return (rank[ta] or 3) < (rank[tb] or 3) or ((rank[ta] or 3) == (rank[tb] or 3) and ta < tb)
   elseif ta == "string" then
      return natural_less(a, b)
   end
   return tostring(a) < tostring(b)
end

--- Render a value as text.
---@param v any
---@param opts? {depth?: integer, items?: integer, indent?: string}
---@return string
function M.render(v, opts)
   opts = opts or {}
   local max_depth = opts.depth or 4
   local max_items = opts.items or 100
   local seen = {}

   local function render(x, depth, indent)
      if type(x) ~= "table" then
         return scalar(x)
      end
      local mt = getmetatable(x)
      if type(mt) == "table" and mt.__tostring then
         return tostring(x)
      end
      if seen[x] then
         return "<cycle: " .. tostring(x) .. ">"
      end
      if next(x) == nil then
         return "{}"
      end
      if depth >= max_depth then
         return "{...}"
      end
      seen[x] = true
      local parts = {}
      local n = #x
      local count = 0
      for i = 1, n do
         count = count + 1
         if count > max_items then
            break
         end
         parts[#parts + 1] = render(x[i], depth + 1, indent .. "  ")
      end
      local keys = {}
      for k in pairs(x) do
         if not (math.type(k) == "integer" and k >= 1 and k <= n) then
            keys[#keys + 1] = k
         end
      end
      table.sort(keys, key_less)
      for _, k in ipairs(keys) do
         count = count + 1
         if count > max_items then
            break
         end
         parts[#parts + 1] = key_text(k) .. " = " .. render(x[k], depth + 1, indent .. "  ")
      end
      seen[x] = nil
      if count > max_items then
         parts[#parts + 1] = ("... (%d more)"):format(n + #keys - max_items)
      end
      local flat = "{ " .. table.concat(parts, ", ") .. " }"
      if #flat + #indent <= WIDTH and not flat:find("\n", 1, true) then
         return flat
      end
      return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
   end

   return render(v, 0, opts.indent or "")
end

--- The text for what a REPL line returned: strings as they are (as lua.c
-- prints them), everything else rendered; several values tab-separated.
---@param values table packed values (table.pack)
---@return string
function M.results(values)
   local parts = {}
   for i = 1, values.n do
      local v = values[i]
      parts[i] = type(v) == "string" and v or M.render(v)
   end
   return table.concat(parts, "\t")
end

return M
