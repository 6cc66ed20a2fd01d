--- Unified diffs of text, for --diff. Files a module diffs are configs and
-- units (small), so a plain LCS over lines is enough and exact.
local M = {}

local function lines(s)
   local t = {}
   if s == nil or s == "" then
      return t
   end
   for line in (s:sub(-1) == "\n" and s or s .. "\n"):gmatch("(.-)\n") do
      t[#t + 1] = line
   end
   return t
end

-- Edit script from an LCS table: list of {op, line} with op " ", "-", "+".
local function edits(a, b)
   local n, m = #a, #b
   -- trim the common head and tail so the table stays small for typical edits
   local head = 0
   while head < n and head < m and a[head + 1] == b[head + 1] do
      head = head + 1
   end
   local tail = 0
   while tail < n - head and tail < m - head and a[n - tail] == b[m - tail] do
      tail = tail + 1
   end
   local out = {}
   for i = 1, head do
      out[#out + 1] = { " ", a[i] }
   end
   local an, bm = n - head - tail, m - head - tail
   if an * bm > 4000000 then
      -- too big to align: show it as a replacement
      for i = head + 1, head + an do
         out[#out + 1] = { "-", a[i] }
      end
      for j = head + 1, head + bm do
         out[#out + 1] = { "+", b[j] }
      end
   else
      local L = {}
      for i = an, 0, -1 do
         L[i] = {}
         for j = bm, 0, -1 do
            if i == an or j == bm then
               L[i][j] = 0
            elseif a[head + i + 1] == b[head + j + 1] then
               L[i][j] = L[i + 1][j + 1] + 1
            else
               L[i][j] = math.max(L[i + 1][j], L[i][j + 1])
            end
         end
      end
      local i, j = 0, 0
      while i < an or j < bm do
         if i < an and j < bm and a[head + i + 1] == b[head + j + 1] then
            out[#out + 1] = { " ", a[head + i + 1] }
            i, j = i + 1, j + 1
         elseif j < bm and (i == an or L[i][j + 1] > L[i + 1][j]) then
            out[#out + 1] = { "+", b[head + j + 1] }
            j = j + 1
         else
            out[#out + 1] = { "-", a[head + i + 1] }
            i = i + 1
         end
      end
   end
   for i = n - tail + 1, n do
      out[#out + 1] = { " ", a[i] }
   end
   return out
end

--- A unified diff (3 lines of context) between two texts, "" when equal.
---@param before string|nil
---@param after string|nil
---@param label? string the path shown in the ---/+++ header
---@return string
function M.unified(before, after, label)
   if (before or "") == (after or "") then
      return ""
   end
   local es = edits(lines(before), lines(after))
   local out = {
      ("--- %s (before)"):format(label or "a"),
      ("+++ %s (after)"):format(label or "b"),
   }
   local ctx = 3
   local k = 1
   local ai, bi = 1, 1 -- line numbers at position k
   local pos = {}
   for idx, e in ipairs(es) do
      pos[idx] = { ai, bi }
      if e[1] ~= "+" then
         ai = ai + 1
      end
      if e[1] ~= "-" then
         bi = bi + 1
      end
   end
   while k <= #es do
      if es[k][1] == " " then
         k = k + 1
      else
         local from = math.max(1, k - ctx)
         local to
         -- extend the hunk while changes are within 2*ctx of each other
         local last_change = k
         local j = k
         while j <= #es do
            if es[j][1] ~= " " then
               last_change = j
            elseif j - last_change > 2 * ctx then
               break
            end
            j = j + 1
         end
         to = math.min(#es, last_change + ctx)
         local acount, bcount = 0, 0
         for x = from, to do
            if es[x][1] ~= "+" then
               acount = acount + 1
            end
            if es[x][1] ~= "-" then
               bcount = bcount + 1
            end
         end
         out[#out + 1] = ("@@ -%d,%d +%d,%d @@"):format(pos[from][1], acount, pos[from][2], bcount)
         for x = from, to do
            out[#out + 1] = es[x][1] .. es[x][2]
         end
         k = to + 1
      end
   end
   return table.concat(out, "\n") .. "\n"
end

return M
