--- The controller as a host: the same interface as etcdrun.host's Host
-- (exec, read, write, stat, mkdir, remove, sha256, put_file, get_file), done
-- locally, so a module runs unchanged on a node or on the controller (a
-- PKI directory, a download cache, a step that runs once).
local fs = require("etcdrun.core.fs")
local proc = require("etcdrun.core.proc")
local shell = require("etcdrun.shell")

local M = {}

---@class LocalHost
local LocalHost = {}
LocalHost.__index = LocalHost

--- A controller host object named `name` (default "controller").
function M.new(name, opts)
   return setmetatable({ name = name or "controller", address = "localhost", vars = {}, local_ = true,
      _opts = opts or {} }, LocalHost)
end

function LocalHost:connect()
   return true
end

function LocalHost:unreachable()
   return false
end

function LocalHost:close() end

--- Run a shell command locally: {stdout, stderr, status, truncated} or nil, err, code.
function LocalHost:exec(cmd, opts)
   opts = opts or {}
   return proc.run(cmd, {
      stdin = opts.stdin,
      timeout = opts.timeout or self._opts.command_timeout,
      max_output = opts.max_output,
   })
end

-- The core's messages say fs.<op>; callers of a host expect host.<op> (name:path).
local function rename_failure(self, op, path, ok, err, code)
   if ok == nil and err then
      local reason = err:match("^fs%.[%w_]+: (.-) %(.*%)$") or err
      return nil, ("host.%s: %s (%s:%s)"):format(op, reason, self.name, path), code
   end
   return ok, err, code
end

function LocalHost:stat(path, opts)
   local st, err, code = fs.stat(path, { follow = not (opts and opts.follow == false) })
   return rename_failure(self, "stat", path, st, err, code)
end

function LocalHost:read(path, opts)
   local data, err, code = rename_failure(self, "read", path, fs.read(path))
   if data == nil and code == "ENOENT" and opts and opts.missing == false then
      return false -- as Host:read: missing is an answer, not a failure
   end
   return data, err, code
end

function LocalHost:sha256(path)
   return rename_failure(self, "sha256", path, fs.sha256_file(path))
end

--- Atomic write with mode/owner/group (or a local file to copy with opts.from).
function LocalHost:write(path, data, opts)
   opts = opts or {}
   if opts.from then
      local content, err, code = fs.read(opts.from)
      if not content then
         return nil, err, code
      end
      data = content
   end
   return rename_failure(self, "write", path,
      fs.write(path, data, { mode = opts.mode, owner = opts.owner, group = opts.group }))
end

function LocalHost:put_file(local_path, path, opts)
   local o = { from = local_path }
   for k, v in pairs(opts or {}) do
      o[k] = v
   end
   return self:write(path, nil, o)
end

function LocalHost:get_file(path, local_path, opts)
   local data, err, code = fs.read(path)
   if not data then
      return rename_failure(self, "get", path, nil, err, code)
   end
   local ok
   ok, err, code = fs.write(local_path, data, { mode = opts and opts.mode or 384 })
   return ok and #data, err, code
end

function LocalHost:mkdir(path, opts)
   opts = opts or {}
   local ok, err, code = fs.mkdir(path, { mode = opts.mode })
   if ok ~= nil and (opts.owner or opts.group) then
      ok, err, code = fs.chown(path, opts.owner, opts.group)
   end
   return rename_failure(self, "mkdir", path, ok ~= nil and true or nil, err, code)
end

function LocalHost:remove(path, opts)
   local norm = path:gsub("/+", "/"):gsub("/%.$", "")
   if norm == "" or norm == "/" then
      error(("host.remove: refusing to remove %q (%s)"):format(path, self.name), 2)
   end
   local ok, err, code = fs.remove(path, { recursive = opts and opts.recursive or false })
   return rename_failure(self, "remove", path, ok ~= nil and true or nil, err, code)
end

M.LocalHost = LocalHost
M.quote = shell.quote
return M
