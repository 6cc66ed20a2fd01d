-- debug: show a message or a variable's value in the task's result; never
-- changes anything (changed = false).
--
-- `var` names a variable of the host (ctx.vars), with dots for fields and
-- numbers for list items: "hostname_out.stdout", "groups.etcd.1". An
-- undefined variable is shown as such, as Ansible does, not failed: debug
-- is for looking. Tables are shown with sorted keys, so output is stable.
--
-- Strings are quoted with \n, \" and \\ escaped; the runner's output
-- redaction hides a secret in that escaped form too (etcdrun.output), so
-- `debug var=` of a registered key or password prints <secret>.
local M = {
   examples = [[task "where" { debug = { msg = "{{ inventory_hostname }} is {{ ansible_host }}" } }]],
   doc = "Show a message or a variable's value; changes nothing.",
   args = {
      msg = { type = "any", doc = "what to show (a string, or any value: tables are rendered)" },
      var = { type = "string", doc = "name of a variable to show, e.g. 'result.stdout'" },
   },
   exclusive = { { "msg", "var" } },
}

local ESC = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }

-- A string quoted on one line: "etcd1\n", as JSON and Python show it.
local function quote(s)
   return '"' .. s:gsub('[%c"\\]', function(ch)
      return ESC[ch] or ("\\x%02x"):format(ch:byte())
   end) .. '"'
end

-- A value as readable text: strings as they are at the top, quoted inside
-- tables; keys sorted; cycles cut.
local function render(v, top, seen)
   local t = type(v)
   if t == "string" then
      return top and v or quote(v)
   elseif t ~= "table" then
      return tostring(v)
   end
   local mt = getmetatable(v)
   if type(mt) == "table" and mt.__tostring then
      return tostring(v) -- a secret() value shows as <secret>, not its fields
   end
   seen = seen or {}
   if seen[v] then
      return "<cycle>"
   end
   seen[v] = true
   local parts, count = {}, 0
   for _ in pairs(v) do
      count = count + 1
   end
   if count == #v then -- a sequence (or empty): [a, b]
      for i = 1, #v do
         parts[i] = render(v[i], false, seen)
      end
      seen[v] = nil
      return "[" .. table.concat(parts, ", ") .. "]"
   end
   local keys = {}
   for k in pairs(v) do
      keys[#keys + 1] = k
   end
   table.sort(keys, function(a, b)
      if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then
         return a < b
      end
      return type(a) < type(b)
   end)
   for _, k in ipairs(keys) do
      parts[#parts + 1] = ("%s = %s"):format(tostring(k), render(v[k], false, seen))
   end
   seen[v] = nil
   return "{" .. table.concat(parts, ", ") .. "}"
end

local function lookup(vars, name)
   local v = vars
   for part in name:gmatch("[^%.]+") do
      if type(v) ~= "table" then
         return nil
      end
      local n = tonumber(part)
      if n and v[math.tointeger(n)] ~= nil then
         v = v[math.tointeger(n)]
      else
         v = v[part]
      end
   end
   return v
end

--- The state: the variable's value (nil when undefined), when `var` is given.
function M.gather(ctx, args)
   if not args.var then
      return {}
   end
   -- the runner's variables view raises on an undefined name
   local ok, v = pcall(lookup, ctx.vars or {}, args.var)
   if not ok or v == nil then
      return { defined = false }
   end
   return { defined = true, value = v }
end

--- The decision: the text to show; never a change.
function M.plan(state, args)
   if args.var then
      if not state.defined then
         return { changed = false, msg = ("%s: VARIABLE IS NOT DEFINED!"):format(args.var) }
      end
      local v = state.value
      return { changed = false, msg = ("%s = %s"):format(args.var, render(v, false)), result = { value = v } }
   end
   local msg = args.msg
   if msg == nil then
      msg = "Hello world!"
   end
   return { changed = false, msg = render(msg, true) }
end

return M
