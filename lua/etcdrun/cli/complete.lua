--- `etcdrun complete WHAT [-i INVENTORY]`: the words the shell completion
-- (completion/etcdrun.bash, completion/_etcdrun) offers, asked of the binary
-- so that they come from the same tables as the parser and the inventory
-- loader, never from a copy in shell:
--   options     every option: "NAME[ ARG]<TAB>help", one a line
--   hosts       group and host names of the inventory (-i, else ./hosts)
--   playbooks   the installed playbooks (<data dir>/playbooks/*.lua), absolute
--   modules     module names (built-in and ETCDRUN_PATH's)
-- Nothing is printed on error (an inventory that does not load): a Tab
-- must never spill messages over the command line.
local runtime = require("etcdrun.core.runtime")
local fs = require("etcdrun.core.fs")

local M = {}

local function inventory_of(words)
   local inv = "hosts"
   for i, w in ipairs(words) do
      if (w == "-i" or w == "--inventory") and words[i + 1] then
         inv = words[i + 1]
      elseif w:match("^%-%-inventory=") then
         inv = w:sub(#"--inventory=" + 1)
      end
   end
   return inv
end

local SOURCES = {}

function SOURCES.options(_, write)
   for _, o in ipairs(require("etcdrun.cli.options").OPTIONS) do
      for _, n in ipairs(o[1]) do
         if n ~= "-" and n ~= "--" then
            write(("%s%s\t%s\n"):format(n, o[2] and (" " .. o[2]) or "", o[5]))
         end
      end
   end
end

function SOURCES.hosts(words, write)
   local inv = require("etcdrun.inventory").load(inventory_of(words))
   if not inv then
      return
   end
   local seen = {}
   local function put(name)
      if not seen[name] then
         seen[name] = true
         write(name .. "\n")
      end
   end
   for _, g in ipairs(inv:groups()) do
      put(g.name)
   end
   for _, h in ipairs(inv:hosts("all") or {}) do
      put(h.name)
   end
end

function SOURCES.playbooks(_, write)
   local dir = runtime.abspath(runtime.root) .. "/playbooks"
   local names = {}
   for _, f in ipairs(fs.list(dir) or {}) do
      if f:match("%.lua$") then
         names[#names + 1] = f
      end
   end
   table.sort(names)
   for _, f in ipairs(names) do
      write(dir .. "/" .. f .. "\n")
   end
end

function SOURCES.modules(_, write)
   local module = require("etcdrun.module")
   for _, n in ipairs(module.list(module.search_path(nil))) do
      write(n .. "\n")
   end
end

---@param words string[] the words after `complete`
---@param write fun(s: string)
---@return integer exit code: 0, or 2 for an unknown WHAT
function M.main(words, _, write)
   local source = SOURCES[words[1] or ""]
   if not source then
      io.stderr:write("etcdrun: complete: say options, hosts, playbooks or modules\n")
      return 2
   end
   local rest = {}
   for i = 2, #words do
      rest[#rest + 1] = words[i]
   end
   local ok = pcall(source, rest, write)
   return ok and 0 or 1
end

return M
