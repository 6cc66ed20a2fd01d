--- The Markdown our READMEs are written in, as man(7) roff: headings,
-- paragraphs, bullet and numbered lists (with continuation lines), fenced and
-- indented code blocks, two-column tables, `code`, **bold** and links. Just
-- what the man pages take from README.md and modules/README.md, so that the
-- prose has one source (docs/man/mkman.lua).
local M = {}

--- Escape text for roff: backslashes, and a line starting with . or '.
local GLYPHS = { ["→"] = "\\(->", ["—"] = "\\(em", ["–"] = "\\(en" }

function M.escape(s)
   s = s:gsub("\\", "\\e")
   for u, g in pairs(GLYPHS) do -- roff input is ASCII: the few non-ASCII glyphs our docs use
      s = s:gsub(u, g)
   end
   return (s:gsub("^([.'])", "\\&%1"):gsub("\n([.'])", "\n\\&%1"))
end

-- Code is set in bold and its hyphens are real minus signs (options).
local function code(s)
   return "\\fB" .. M.escape(s):gsub("%-", "\\-") .. "\\fR"
end
M.code = code

--- Inline Markdown of one paragraph's text.
function M.inline(s)
   local out, at = {}, 1
   while at <= #s do
      local a, b, c = s:find("`([^`]+)`", at)
      local text = s:sub(at, (a or #s + 1) - 1)
      text = text:gsub("%[([^%]]+)%]%(([^)]+)%)", "%1 (%2)")
      text = M.escape(text):gsub("%*%*(.-)%*%*", "\\fB%1\\fR"):gsub("\\e%*%*", "**")
      out[#out + 1] = text
      if not a then
         break
      end
      out[#out + 1] = code(c)
      at = b + 1
   end
   return table.concat(out)
end

local function cells(line)
   local t = {}
   for c in line:gsub("^%s*|", ""):gsub("|%s*$", ""):gmatch("[^|]+") do
      t[#t + 1] = c:match("^%s*(.-)%s*$")
   end
   return t
end

--- Convert Markdown text to roff. opts.level maps a heading's level (#
--- count) to "SH", "SS" or nil (dropped).
---@param text string
---@param opts {levels: table<integer, string|nil>}
function M.convert(text, opts)
   local lines = {}
   for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      lines[#lines + 1] = l
   end
   local out, i, para = {}, 1, nil
   local function flush()
      if para then
         out[#out + 1] = M.inline(table.concat(para, " "))
         para = nil
      end
   end
   local function block(from, pred, strip)
      out[#out + 1] = ".PP\n.RS 4\n.nf"
      while lines[from] and pred(lines[from]) do
         out[#out + 1] = M.escape(strip(lines[from])):gsub("%-", "\\-")
         from = from + 1
      end
      out[#out + 1] = ".fi\n.RE"
      return from
   end
   while i <= #lines do
      local l = lines[i]
      local hashes, title = l:match("^(#+)%s+(.*)$")
      if hashes then
         flush()
         local macro = opts.levels[#hashes]
         if macro then
            title = M.inline(title)
            out[#out + 1] = ("." .. macro .. " " .. (macro == "SH" and title:upper() or title))
         end
         i = i + 1
      elseif l:match("^```") then
         flush()
         i = block(i + 1, function(x) return not x:match("^```") end, function(x) return x end) + 1
      elseif l:match("^    %S") and not para then
         flush()
         i = block(i, function(x) return x:match("^    ") or (x == "" and (lines[i + 1] or ""):match("^    ")) end,
            function(x) return x:sub(5) end)
      elseif l:match("^|") then
         flush()
         local header = true
         while lines[i] and lines[i]:match("^|") do
            if not lines[i]:match("^|[%s%-|:]+$") then
               local c = cells(lines[i])
               if not header then
                  out[#out + 1] = ".TP\n" .. M.inline(c[1]) .. "\n" .. M.inline(table.concat(c, " ", 2))
               end
               header = false
            end
            i = i + 1
         end
      elseif l:match("^%s*[-*] ") or l:match("^%s*%d+%. ") then
         flush()
         local mark, rest = l:match("^%s*([-*]) (.*)$")
         local tag = "\\(bu 2"
         if not mark then
            mark, rest = l:match("^%s*(%d+%.) (.*)$")
            tag = mark .. " 4"
         end
         out[#out + 1] = ".IP " .. tag
         para = { rest }
         i = i + 1
         while lines[i] and lines[i]:match("^%s+%S") and not lines[i]:match("^%s*[-*] ")
            and not lines[i]:match("^%s*%d+%. ") do
            para[#para + 1] = lines[i]:match("^%s*(.-)%s*$")
            i = i + 1
         end
         flush()
      elseif l:match("^%s*$") then
         flush()
         i = i + 1
      else
         if not para then
            out[#out + 1] = ".PP"
            para = {}
         end
         para[#para + 1] = l:match("^%s*(.-)%s*$")
         i = i + 1
      end
   end
   flush()
   return table.concat(out, "\n") .. "\n"
end

--- The part of a Markdown text from the heading `from` (exactly, with its
--- #s) up to the next heading of the same or a higher level.
function M.section(text, from)
   local a = text:find("\n" .. from:gsub("%p", "%%%0") .. "\n", 1) or (text:sub(1, #from + 1) == from .. "\n"
      and 0)
   assert(a, "no section " .. from)
   local level = #from:match("^#+")
   local rest = text:sub(a + 1)
   local stop = #rest + 1
   local at = #from + 2
   while true do
      local s, _, hashes = rest:find("\n(#+)%s", at)
      if not s then
         break
      end
      if #hashes <= level then
         stop = s
         break
      end
      at = s + 1
   end
   return rest:sub(1, stop - 1)
end

return M
