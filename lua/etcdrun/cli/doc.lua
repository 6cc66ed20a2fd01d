--- Module documentation, like ansible-doc: `etcdrun doc` lists the modules
-- one line each, `etcdrun doc MODULE` shows one module's arguments (type,
-- required, default, choices), its constraints and an example. The REPL's
-- `:doc` and the man page (docs/man/mkman.lua) use the same functions, and
-- everything comes from the module's own `doc`, `args` and `examples`.
local module = require("etcdrun.module")

local M = {}

--- The directories searched for site modules: ETCDRUN_PATH's (the built-in
--- directory is always searched).
function M.search()
   return module.search_path(nil)
end

--- A module's first sentence (its line in the list).
---@param mod table
function M.summary(mod)
   local doc = (mod.doc or ""):gsub("%s+", " ")
   return doc:match("^(.-%.)%s+%u") or doc
end

local function show(v)
   if type(v) == "string" then
      return ("%q"):format(v)
   elseif type(v) == "table" then
      local parts = {}
      for i, x in ipairs(v) do
         parts[i] = show(x)
      end
      return "{ " .. table.concat(parts, ", ") .. " }"
   end
   return tostring(v)
end
M.show = show

--- One module as data: { name, doc, args = { {name, type, required, default,
--- choices, doc, secret, elements}... } sorted (required first), constraints
--- = { "text"... }, example }.
---@param name string
---@param mod table
function M.describe(name, mod)
   local args = {}
   for k, s in pairs(mod.args or {}) do
      args[#args + 1] = {
         name = k, type = s.type or "any", required = s.required == true, doc = s.doc or "",
         default = s.default ~= nil and show(s.default) or nil, secret = s.secret == true,
         choices = s.choices and show(s.choices):gsub("^{ ", ""):gsub(" }$", "") or nil,
         elements = s.elements, absolute = s.absolute,
      }
   end
   table.sort(args, function(a, b)
      if a.required ~= b.required then
         return a.required
      end
      return a.name < b.name
   end)
   local constraints = {}
   for _, set in ipairs(mod.one_of or {}) do
      constraints[#constraints + 1] = "exactly one of " .. table.concat(set, ", ")
   end
   local exactly = {}
   for _, set in ipairs(mod.one_of or {}) do
      exactly[table.concat(set, ", ")] = true
   end
   for _, set in ipairs(mod.exclusive or {}) do
      local s = table.concat(set, ", ")
      if not exactly[s] then -- "exactly one" says "at most one" already
         constraints[#constraints + 1] = "at most one of " .. s
      end
   end
   for _, r in ipairs(mod.required_if or {}) do
      constraints[#constraints + 1] = ("%s = %s needs %s"):format(r[1], show(r[2]), table.concat(r[3], ", "))
   end
   return { name = name, doc = (mod.doc or ""):gsub("%s+", " "), args = args, constraints = constraints,
      example = mod.examples }
end

local wrap = require("etcdrun.cli.options").wrap

--- The text `etcdrun doc NAME` and `:doc NAME` print.
---@param d table from M.describe
function M.text(d)
   local out = { ("%s: %s"):format(d.name, wrap(d.doc, 76 - #d.name, (" "):rep(#d.name + 2))),
      "", "arguments (= required, - optional):" }
   for _, a in ipairs(d.args) do
      out[#out + 1] = ("  %s %s (%s%s)"):format(a.required and "=" or "-", a.name,
         a.type .. (a.elements and (" of " .. a.elements) or ""), a.secret and ", secret" or "")
      if a.doc ~= "" then
         out[#out + 1] = "      " .. wrap(a.doc, 72, "      ")
      end
      if a.choices then
         out[#out + 1] = "      choices: " .. a.choices
      end
      if a.default then
         out[#out + 1] = "      default: " .. a.default
      end
   end
   if #d.constraints > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "constraints: " .. table.concat(d.constraints, "; ")
   end
   if d.example then
      out[#out + 1] = ""
      out[#out + 1] = "example:"
      out[#out + 1] = "  " .. d.example:gsub("\n", "\n  ")
   end
   return table.concat(out, "\n") .. "\n"
end

--- `etcdrun doc` (the list) or `etcdrun doc MODULE`.
---@param name string|nil
---@param write fun(s: string)
---@return integer exit code
function M.main(name, write)
   local search = M.search()
   if not name then
      local names = module.list(search)
      local width = 0
      for _, n in ipairs(names) do
         width = math.max(width, #n)
      end
      for _, n in ipairs(names) do
         local ok, mod = pcall(module.load, n, search)
         write(("%-" .. width .. "s  %s\n"):format(n, ok and mod and M.summary(mod) or ("(does not load: "
            .. tostring(mod) .. ")")))
      end
      return 0
   end
   local ok, mod, err = pcall(module.load, name, search)
   if not ok or not mod then
      io.stderr:write(("etcdrun: doc: %s (etcdrun doc lists the modules)\n"):format(ok and err or mod))
      return 1
   end
   write(M.text(M.describe(name, mod)))
   return 0
end

return M
