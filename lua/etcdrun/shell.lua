--- Building POSIX shell command lines safely.
local M = {}

--- Quote one word for /bin/sh: the result is always a single literal word.
---@param s string|number
---@return string
function M.quote(s)
   s = tostring(s)
   if s ~= "" and not s:find("[^%w_%-%./=:,@+%%]") then
      return s
   end
   return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Join words into a command line, quoting each.
---@param words string[]
function M.join(words)
   local out = {}
   for i, w in ipairs(words) do
      out[i] = M.quote(w)
   end
   return table.concat(out, " ")
end

return M
