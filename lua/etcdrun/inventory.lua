--- etcdrun.inventory: the hosts a run targets, read from an Ansible INI
-- inventory (the seed's `hosts` file as it is), an Ansible YAML inventory (hosts.yml:
-- all:/children:/hosts:/vars:, see etcdrun.inventory.yamlfile) or a Lua file.
--
-- API
--   inventory.load(path)        -> inv | nil, err, code
--   inventory.parse(text, name) -> inv | nil, err, code   (the format: inventory.detect)
--   inventory.parse_ini(text, name), parse_yaml(text, name), parse_lua(text, name): one format
--   inv:hosts([pattern [, limit]]) -> {host...}, warning|nil  | nil, err, "EPATTERN"
--   inv:host(name)   -> host | nil
--   inv:groups()     -> {group...} in inventory order (all, ungrouped, then first mention)
--   inv.groups[name] -> group;  inv.name -> the name given to parse/load
-- (Implementation: etcdrun.inventory.model, .ini and .luafile; patterns: etcdrun.hostpattern.)
-- Errors are returned, never raised, when the input is at fault:
--   "<name>:<line>: <what was expected>" (code EINVENTORY) for an INI or YAML file,
--   "<name>: groups.etcd.hosts[2]: <what>" for a Lua file (tables have no lines),
--   "inventory: cannot read <path>: <strerror>" (code ENOENT, EACCES, EISDIR or EIO).
-- A bad argument type (a bug in the caller) raises.
--
-- Host object (shared between calls: treat as read-only)
--   name        inventory name;  index: position in inventory order
--   vars        merged variables (precedence below), values as written
--   groups      names of every group it belongs to, directly or through children,
--               `all` excepted, in inventory order
--   address     ansible_host (or ansible_ssh_host), else name
--   user        ansible_user (or ansible_ssh_user), else nil
--   port        ansible_port (or ansible_ssh_port, or host:port) as an integer, else nil
--   key_file    ansible_ssh_private_key_file (or ansible_private_key_file), `~/` expanded
--   known_hosts etcdrun_known_hosts, `~/` expanded: an extra known_hosts file
--   become      ansible_become as a boolean (yes/no, true/false, on/off, 1/0), default false
--   become_user ansible_become_user, else nil (ansible_become_method may only be sudo)
--   connection  "ssh" (ansible_connection unset, ssh, smart, paramiko, libssh) or "local"
--   implicit    true only for the implicit localhost (below)
-- A wrong type or value for these (ansible_port=abc) is a load error naming where it was set.
--
-- Group object: { name, hosts = every host name in it, its children's included, in
-- inventory order (what Ansible's groups['x'] gives), own_hosts = the hosts listed in the
-- group itself, vars = its own vars, children = child names, parents = parent names,
-- depth = longest distance from all }.
--
-- Variable precedence, lowest first (Ansible's): the vars of the host's groups ordered by
-- depth (all = 0, a top group = 1, its children 2, ...), then ansible_group_priority
-- (a number, default 1), then group name; then the host's own vars. So all < parent
-- group < child group < host; of two unrelated groups at the same depth the one whose
-- name sorts last wins. A host or group defined twice is merged: later values win.
--
-- INI format, as Ansible's ini plugin reads it:
--   - `#` or `;` first on a line is a comment; lines before any section are in `ungrouped`;
--   - [g] and [g:hosts] list hosts, [g:vars] sets `key=value` per line, [g:children] lists
--     one group name per line; [g:vars] needs g declared somewhere by [g] or [g:children],
--     and a child must be declared somewhere too (both are errors in Ansible as well, and
--     they catch typos); a group may be declared after it is referred to;
--   - a host line is `name[:port] [key=value ...]`, split like a shell line (Python's
--     shlex: '...' and "..." quote, \ escapes, an unquoted # starts a comment anywhere);
--     `name` may hold ranges: etcd[1:3], node[01:10], node[0:10:2], rack[a:c];
--     IPv6 names are written fe80::1 or [fe80::1]:2222;
--   - values are evaluated as Python literals, as Ansible's ini plugin does
--     (etcdrun.inventory.pyliteral): 2222 is an integer, True a boolean, [1, 'a'] a list,
--     {'k': 1} a table, None cjson.null, "'x'" the string x; what is not a literal
--     (abc, 10.0.0.1, yes, 007, foo # bar) stays the string written. host:port gives an
--     integer ansible_port. In [g:vars], everything after the first `=` is the value.
--   - group names: letters, digits, `_`, `-`, `.`; variable names: Lua/Python identifiers.
--   - cycles in children are errors; a group cannot list `all` as a child.
--
-- Lua format: a file that returns
--   {
--      vars  = { ansible_user = "root" },       -- vars of group all
--      hosts = { "lonely" },                     -- hosts outside any group (ungrouped)
--      groups = {
--         etcd = {
--            hosts = {                           -- an array keeps its order...
--               { "etcd1", ansible_host = "198.18.0.11" },
--               { "etcd2", ansible_host = "198.18.0.12" },
--               "etcd3",                         -- a host without vars of its own
--            },
--            vars = { etcd_version = "3.4.23" },
--            children = { "etcd_new" },          -- names of groups defined in `groups`
--         },
--         etcd_new = { hosts = { etcd4 = { ansible_port = 2222 } } },  -- ...a map is sorted
--      },
--   }
-- Every key is optional; any other key is an error naming the file and the path to it.
-- Inventory order: top-level hosts first, then groups in name order (natural: etcd2 before
-- etcd10), each group's hosts in array order or, for a map, natural name order.
-- Host names take ranges and :port as in INI. Values may be any Lua value but a function,
-- userdata or thread. The file runs with no access to io, os (but os.getenv), require or
-- load; reading an undefined global is an error.
--
-- At most 100000 hosts (ranges included) per inventory, so a typo like node[1:10000000]
-- fails with a message instead of eating the memory.
--
-- Implicit localhost: the pattern `localhost` (or 127.0.0.1, ::1), when the inventory has
-- no such host, selects a host named localhost with connection "local" and the vars of
-- `all` (as in Ansible); it belongs to no group and `all` does not include it.
local hostpattern = require("etcdrun.hostpattern")
local model = require("etcdrun.inventory.model")
local ini = require("etcdrun.inventory.ini")
local luafile = require("etcdrun.inventory.luafile")
local yamlfile = require("etcdrun.inventory.yamlfile")

local M = {}

local Inventory = {}
Inventory.__index = Inventory

local function pattern_text(p)
   return type(p) == "table" and table.concat(p, ",") or tostring(p)
end

--- The hosts a pattern (and an optional --limit pattern) selects, in inventory order,
-- each once. A pattern that selects nothing, or a term that names no group or host,
-- gives a warning as second value; a malformed pattern gives nil, err, "EPATTERN".
---@param pattern string|string[]|nil default "all"
---@param limit string|string[]|nil
---@return table[]|nil hosts
---@return string|nil warning_or_err
function Inventory:hosts(pattern, limit)
   if pattern == nil then
      pattern = "all"
   end
   for _, p in ipairs({ pattern, limit or "" }) do
      if type(p) ~= "string" and type(p) ~= "table" then
         error(("inventory:hosts: a pattern must be a string or a list of strings, got %s")
            :format(type(p)), 2)
      end
   end
   local set, warnings = hostpattern.select(self._view, pattern)
   if not set then
      return nil, warnings, "EPATTERN"
   end
   -- Ansible: --limit '' (a script's empty $LIMIT) is no limit
   local lt = type(limit) == "table" and table.concat(limit, ",") or limit
   if lt ~= nil and not lt:find("[^%s,:]") then
      limit = nil
   end
   if limit ~= nil then
      local lset, lw = hostpattern.select(self._view, limit)
      if not lset then
         return nil, "limit: " .. lw, "EPATTERN"
      end
      for _, w in ipairs(lw) do
         table.insert(warnings, "limit: " .. w)
      end
      for i in pairs(set) do
         if not lset[i] then
            set[i] = nil
         end
      end
   end
   local idx = {}
   for i in pairs(set) do
      idx[#idx + 1] = i
   end
   table.sort(idx)
   local list = {}
   for _, i in ipairs(idx) do
      list[#list + 1] = self._list[i] or self._localhost
   end
   if #list == 0 and #warnings == 0 then
      if limit ~= nil then
         table.insert(warnings, ("no hosts match '%s' limited to '%s'")
            :format(pattern_text(pattern), pattern_text(limit)))
      else
         table.insert(warnings, ("no hosts match '%s'"):format(pattern_text(pattern)))
      end
   end
   return list, #warnings > 0 and table.concat(warnings, "; ") or nil
end

--- The host of that inventory name, or nil.
---@param name string
---@return table|nil
function Inventory:host(name)
   return self._byname[name]
end

local function wrap(inv, err, code)
   if not inv then
      return nil, err, code
   end
   return setmetatable(inv, Inventory)
end

---------------------------------------------------------------------------
-- Entry points
---------------------------------------------------------------------------

local function check_args(fname, text, name)
   if type(text) ~= "string" then
      error(("inventory.%s: text must be a string, got %s"):format(fname, type(text)), 3)
   end
   if name ~= nil and type(name) ~= "string" then
      error(("inventory.%s: name must be a string, got %s"):format(fname, type(name)), 3)
   end
   return name or "inventory"
end

--- Parse an Ansible INI inventory.
---@param text string
---@param name string|nil used in messages (default "inventory")
---@return table|nil inv
---@return string|nil err "<name>:<line>: <what was expected>"
---@return string|nil code "EINVENTORY"
function M.parse_ini(text, name)
   name = check_args("parse_ini", text, name)
   return wrap(model.protect(ini.parse, text, name))
end

--- Parse an Ansible YAML inventory (all:/children:/hosts:/vars:, see
-- etcdrun.inventory.yamlfile).
---@param text string
---@param name string|nil used in messages (default "inventory")
---@return table|nil inv
---@return string|nil err "<name>:<line>: <what was expected>"
---@return string|nil code "EINVENTORY"
function M.parse_yaml(text, name)
   name = check_args("parse_yaml", text, name)
   return wrap(model.protect(yamlfile.build, text, name))
end

--- Run a Lua inventory (see the header for its shape) and read the table it returns.
---@param text string
---@param name string|nil
---@return table|nil inv
---@return string|nil err
---@return string|nil code "EINVENTORY"
function M.parse_lua(text, name)
   name = check_args("parse_lua", text, name)
   local chunk, err = load(text, "=" .. name, "t", luafile.sandbox())
   if not chunk then
      return nil, err, "EINVENTORY"
   end
   local ok, res = pcall(chunk)
   if not ok then
      res = tostring(res)
      if res:sub(1, #name + 1) ~= name .. ":" then
         res = name .. ": " .. res
      end
      return nil, res, "EINVENTORY"
   end
   return wrap(model.protect(luafile.build, res, name))
end

--- "lua", "yaml" or "ini": Lua when name ends in .lua, or the first non-blank text is a
-- `--` comment or `return`; YAML when name ends in .yml, .yaml or .json, or the text
-- starts with a `---` line, or its first line that is not blank or a # comment is a bare
-- `name:` (INI has `[group]` or host lines there).
---@param text string
---@param name string|nil
---@return string
function M.detect(text, name)
   if name and name:match("%.lua$") then
      return "lua"
   end
   if name and (name:match("%.ya?ml$") or name:match("%.json$")) then
      return "yaml"
   end
   local first = text:match("^%s*(%S[^\n]*)")
   if first and first:match("^%-%-%-%s*$") then
      return "yaml" -- a YAML document start alone on its line
   end
   if first and (first:sub(1, 2) == "--" or first:match("^return%f[^%w_]")) then
      return "lua"
   end
   for line in text:gmatch("[^\n]+") do
      local l = line:match("^%s*(.-)%s*$")
      if l ~= "" and l:sub(1, 1) ~= "#" then
         if l:match("^[%w_.-]+:$") or l:match("^[%w_.-]+:%s+[#{]") then
            return "yaml"
         end
         break
      end
   end
   return "ini"
end

--- Parse an inventory in either format (see detect).
---@param text string
---@param name string|nil
---@return table|nil inv
---@return string|nil err
---@return string|nil code
function M.parse(text, name)
   check_args("parse", text, name)
   local format = M.detect(text, name)
   if format == "lua" then
      return M.parse_lua(text, name)
   elseif format == "yaml" then
      return M.parse_yaml(text, name)
   end
   return M.parse_ini(text, name)
end

local ERRNO = { [2] = "ENOENT", [13] = "EACCES", [21] = "EISDIR" }

--- Read and parse an inventory file; messages name it as given.
---@param path string
---@return table|nil inv
---@return string|nil err
---@return string|nil code
function M.load(path)
   if type(path) ~= "string" then
      error(("inventory.load: path must be a string, got %s"):format(type(path)), 2)
   end
   local f, err, errno = io.open(path, "rb")
   local text
   if f then
      text, err, errno = f:read("a")
      f:close()
      if not text then
         err = path .. ": " .. tostring(err)
      end
   end
   if not text then
      return nil, "inventory: cannot read " .. err, ERRNO[errno] or "EIO"
   end
   return M.parse(text, path)
end

return M
