--- etcdrun.inventory.pyliteral: Python's ast.literal_eval, the way Ansible's INI
-- inventory plugin evaluates each value (host line `k=v` and [g:vars] lines): a value
-- that is a Python literal becomes that value, anything else stays the string it was.
--   123, 0x1F, 0o17, 0b101, 1_000, -3   -> integers     1.5, 1e3, .5  -> floats
--   True, False                          -> booleans     None          -> cjson.null
--   'x', "x", u'x', r'x\n', 'a' 'b'      -> strings (Python escapes decoded)
--   [..], (..), {k: v}                   -> Lua arrays and tables, nested
-- Not evaluated (kept as the string, where Ansible would make a Python object that Lua has
-- no form of): integers beyond 64 bits, complex numbers (1j), sets ({1, 2}), bytes (b'x'),
-- tuple or None dictionary keys.
-- cjson.null is None in JSON and in templates; a sentinel where cjson is absent (the fuzzer)
local has_cjson, cjson = pcall(require, "cjson")
local null = has_cjson and cjson.null or setmetatable({}, { __name = "null" })

local M = {}

--- The value None becomes (shared by the inventory readers).
M.null = null

local ESC = { n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", f = "\f", v = "\v", ["\\"] = "\\",
   ["'"] = "'", ['"'] = '"', ["\n"] = "" }

local P = {}
P.__index = P

function P:ws()
   local s = self.s
   while true do
      local _, e = s:find("^[ \t\r\n\f\v]+", self.i)
      if e then
         self.i = e + 1
      elseif s:sub(self.i, self.i) == "#" then
         local nl = s:find("\n", self.i, true)
         self.i = nl and nl + 1 or #s + 1
      else
         return
      end
   end
end

function P:fail()
   error(P, 0) -- not a literal: the caller keeps the string
end

-- A string literal at self.i (prefix included); nil if there is none.
function P:str()
   local s = self.s
   local prefix, q = s:match("^([rRuUbBfF]?[rRbB]?)(['\"])", self.i)
   if not q then
      return nil
   end
   local lp = prefix:lower()
   if lp:find("[bf]") or #prefix == 2 and lp ~= "ur" and lp ~= "ru" then
      self:fail() -- bytes and f-strings are not strings here
   end
   if lp == "ur" or lp == "ru" then
      self:fail()
   end
   local raw = lp:find("r") ~= nil
   local i = self.i + #prefix
   local quote = s:sub(i, i + 2) == q:rep(3) and q:rep(3) or q
   i = i + #quote
   local out = {}
   while true do
      if i > #s then
         self:fail()
      end
      if s:sub(i, i + #quote - 1) == quote then
         self.i = i + #quote
         return table.concat(out)
      end
      local c = s:sub(i, i)
      if c == "\n" and #quote == 1 then
         self:fail()
      elseif c == "\\" and raw then
         out[#out + 1] = s:sub(i, i + 1)
         i = i + 2
      elseif c == "\\" then
         local e = s:sub(i + 1, i + 1)
         if ESC[e] then
            out[#out + 1] = ESC[e]
            i = i + 2
         elseif e == "x" or e == "u" or e == "U" then
            local n = e == "x" and 2 or e == "u" and 4 or 8
            local hex = s:sub(i + 2, i + 1 + n)
            if #hex ~= n or not hex:match("^%x+$") then
               self:fail()
            end
            local cp = tonumber(hex, 16)
            if cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
               self:fail()
            end
            out[#out + 1] = utf8.char(cp)
            i = i + 2 + n
         elseif e:match("[0-7]") then
            local oct = s:match("^[0-7][0-7]?[0-7]?", i + 1)
            out[#out + 1] = utf8.char(tonumber(oct, 8))
            i = i + 1 + #oct
         elseif e == "N" then
            self:fail() -- \N{name}: no Unicode names here; keep the string
         else
            out[#out + 1] = "\\" .. e
            i = i + 2
         end
      else
         out[#out + 1] = c
         i = i + 1
      end
   end
end

-- A number (no sign) at self.i.
function P:number()
   local s, i = self.s, self.i
   local function digits(pat, at)
      local e = s:match("^" .. pat .. "()", at)
      return e
   end
   local base, body, e
   local pfx = s:sub(i, i + 1):lower()
   if pfx == "0x" or pfx == "0o" or pfx == "0b" then
      local set = pfx == "0x" and "%x" or pfx == "0o" and "[0-7]" or "[01]"
      local j = i + 2
      local parts = {}
      while true do
         if s:sub(j, j) == "_" then
            j = j + 1
         end
         local d = s:match("^" .. set, j)
         if not d then
            break
         end
         parts[#parts + 1] = d
         j = j + 1
      end
      if #parts == 0 or s:sub(j - 1, j - 1) == "_" then
         self:fail()
      end
      base, body, e = pfx == "0x" and 16 or pfx == "0o" and 8 or 2, table.concat(parts), j
   else
      local int_end = digits("%d[%d_]*", i)
      local j = int_end or i
      local isfloat = false
      if s:sub(j, j) == "." and (int_end or s:match("^%d", j + 1)) then
         isfloat = true
         j = digits("[%d_]*", j + 1) or j + 1
      end
      if not int_end and not isfloat then
         self:fail()
      end
      local exp = s:match("^[eE][+-]?%d[%d_]*()", j)
      if exp then
         isfloat, j = true, exp
      end
      if s:match("^[jJ]", j) then
         self:fail() -- complex
      end
      local text = s:sub(i, j - 1)
      if text:find("__", 1, true) or text:find("_$") or text:find("_[.eE]") or text:find("[.eE]_") then
         self:fail()
      end
      text = text:gsub("_", "")
      self.i = j
      if isfloat then
         return tonumber(text) + 0.0
      end
      if text:match("^0%d") and text:match("[1-9]") then
         self:fail() -- 007: Python refuses leading zeros
      end
      local v = math.tointeger(tonumber(text))
      if not v or #text > 19 or (#text == 19 and text > "9223372036854775807") then
         self:fail() -- beyond 64 bits
      end
      return v
   end
   self.i = e
   if s:match("^[%w_]", e) then
      self:fail()
   end
   local v = 0
   for k = 1, #body do
      local d = tonumber(body:sub(k, k), base)
      if v > (math.maxinteger - d) // base then
         self:fail()
      end
      v = v * base + d
   end
   return v
end

function P:value(depth)
   if depth > 100 then
      self:fail()
   end
   self:ws()
   local s = self.s
   local c = s:sub(self.i, self.i)
   local first = self:str()
   if first then
      local parts = { first }
      while true do
         self:ws()
         local more = self:str()
         if not more then
            break
         end
         parts[#parts + 1] = more
      end
      return table.concat(parts)
   end
   if c == "-" or c == "+" then
      self.i = self.i + 1
      self:ws()
      local paren = s:sub(self.i, self.i) == "("
      if paren then
         self.i = self.i + 1
         self:ws()
      end
      if not s:match("^[%d.]", self.i) then
         self:fail()
      end
      local v = self:number()
      if paren then
         self:ws()
         if s:sub(self.i, self.i) ~= ")" then
            self:fail()
         end
         self.i = self.i + 1
      end
      return c == "-" and -v or v
   end
   if c:match("[%d.]") then
      return self:number()
   end
   local word = s:match("^[%a_][%w_]*", self.i)
   if word then
      self.i = self.i + #word
      if word == "True" then
         return true
      elseif word == "False" then
         return false
      elseif word == "None" then
         return null
      end
      self:fail()
   end
   if c == "[" or c == "(" or c == "{" then
      local close = c == "[" and "]" or c == "(" and ")" or "}"
      self.i = self.i + 1
      local out, n, isdict, commas = {}, 0, nil, 0
      while true do
         self:ws()
         if s:sub(self.i, self.i) == close then
            self.i = self.i + 1
            break
         end
         local v = self:value(depth + 1)
         self:ws()
         if c == "{" and isdict ~= false and s:sub(self.i, self.i) == ":" then
            isdict = true
            self.i = self.i + 1
            local kt = type(v)
            if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
               self:fail()
            end
            out[v] = self:value(depth + 1)
            self:ws()
         elseif c == "{" then
            self:fail() -- a set, or a dict entry without ':'
         else
            n = n + 1
            out[n] = v
         end
         local d = s:sub(self.i, self.i)
         if d == "," then
            commas = commas + 1
            self.i = self.i + 1
         elseif d ~= close then
            self:fail()
         end
      end
      if c == "(" and n == 1 and commas == 0 then
         return out[1] -- (x) is x, not a tuple
      end
      return out
   end
   self:fail()
end

--- The value a Python literal denotes, or nil when text is not one (or not one Lua
-- can hold). Leading and trailing blanks are ignored, as literal_eval does.
---@param text string
---@return any|nil
function M.eval(text)
   local p = setmetatable({ s = text, i = 1 }, P)
   local ok, v = pcall(function()
      local v = p:value(0)
      p:ws()
      if p.i <= #text then
         p:fail()
      end
      return v
   end)
   if not ok then
      if v == P then
         return nil
      end
      error(v, 0)
   end
   return v
end

return M
