--- A managed node: one SSH session, opened on first use and reused for every
-- command and file operation of the run, plus the remote file operations
-- modules build on. Every method is straight-line code: inside the
-- scheduler it yields while the host's SSH worker does the I/O.
--
-- Failures return nil, "op: reason (host[:path])", CODE like the core does;
-- methods raise only on misuse.
local ssh = require("etcdrun.core.ssh")
local fs = require("etcdrun.core.fs")
local sched = require("etcdrun.sched")
local shell = require("etcdrun.shell")
local fa = require("etcdrun.fileattrs")

local M = {}

---@class Host
---@field name string inventory name
---@field address string where to connect
---@field vars table merged inventory variables
local Host = {}
Host.__index = Host

local q = shell.quote

--- Pull `-F path` out of ansible_ssh_common_args/ansible_ssh_extra_args, the
-- way an Ansible inventory names its ssh_config.
local function ssh_config_from(vars)
   for _, key in ipairs({ "ansible_ssh_common_args", "ansible_ssh_extra_args" }) do
      local args = vars and vars[key]
      if type(args) == "string" then
         local path = args:match("%-F%s*(%S+)")
         if path then
            return path
         end
      end
   end
end

local function expand_home(path)
   if path and path:sub(1, 2) == "~/" then
      return (os.getenv("HOME") or "") .. path:sub(2)
   end
   return path
end

--- Create a host object. Nothing is connected until the first operation.
---@param spec table {name, address?, user?, port?, key_file?, vars?}
---@param opts? table connection options shared by all hosts: known_hosts,
--- host_key ("strict"|"accept-new"), identities, passphrase, ssh_config,
--- timeout, command_timeout, become, become_pass
---@return Host
function M.new(spec, opts)
   assert(type(spec) == "table" and spec.name, "host.new: spec.name is required")
   opts = opts or {}
   local vars = spec.vars or {}
   local become = opts.become
   if become == nil then
      become = vars.ansible_become == true or vars.ansible_become == "true" or vars.ansible_become == "yes"
   end
   local identities = {}
   for _, k in ipairs(opts.identities or {}) do
      identities[#identities + 1] = expand_home(k)
   end
   if spec.key_file then
      identities[#identities + 1] = expand_home(spec.key_file)
   end
   return setmetatable({
      name = spec.name,
      address = spec.address or vars.ansible_host or spec.name,
      user = spec.user or vars.ansible_user,
      port = tonumber(spec.port or vars.ansible_port),
      vars = vars,
      become = become,
      _opts = opts,
      _identities = identities,
      _ssh_config = opts.ssh_config or ssh_config_from(vars),
   }, Host)
end

--- Append a newly trusted host key line to a known_hosts file, atomically:
-- readers see the old file or the new one, never a torn line. A symlinked
-- known_hosts stays a link: the file it resolves to is rewritten (the
-- `follow` rule of modules/README.md); a dangling link is refused.
function M.remember_host_key(path, line)
   path = expand_home(path)
   local lst = fs.stat(path, { follow = false })
   if lst and lst.type == "link" then
      local real = fs.realpath(path)
      if not real then
         return nil, ("known_hosts %s is a symlink to %s, which does not exist: create that file to "
            .. "accept new host keys into it"):format(path, lst.target or "?"), "ENOENT"
      end
      path = real
   end
   local dir = path:match("^(.*)/[^/]*$")
   if dir and dir ~= "" then
      fs.mkdir(dir, { mode = 448 })
   end
   local old = fs.read(path) or ""
   if old ~= "" and old:sub(-1) ~= "\n" then
      old = old .. "\n"
   end
   -- an existing file keeps its mode (fs.write's default); a new one is 0600.
   -- libssh's exported line ends in a newline already: no blank line after it
   return fs.write(path, old .. line:gsub("\n+$", "") .. "\n", { mode = not fs.stat(path) and 384 or nil })
end

--- Open the session (once). Later calls return the first outcome.
---@return boolean|nil ok, string? err, string? code
function Host:connect()
   if self._session then
      return true
   end
   if self._unreachable then
      return nil, self._unreachable[1], self._unreachable[2]
   end
   local o = self._opts
   local session = ssh.session({
      name = self.name,
      host = self.address,
      user = self.user,
      port = self.port,
      config = self._ssh_config or (o.read_ssh_config == false and false or nil),
      known_hosts = o.known_hosts and expand_home(o.known_hosts) or nil,
      identities = self._identities,
      passphrase = o.passphrase,
      agent = o.agent,
      host_key = o.host_key,
      timeout = o.timeout,
   })
   local r, err, code = sched.await(session:submit("connect"))
   if not r then
      session:close()
      self._unreachable = { err, code }
      return nil, err, code
   end
   if r.known_hosts_line then
      local file = o.known_hosts or "~/.ssh/known_hosts"
      local ok, werr = M.remember_host_key(file, r.known_hosts_line)
      if not ok then
         session:close()
         self._unreachable = { werr, "EHOSTKEY" }
         return nil, werr, "EHOSTKEY"
      end
   end
   self.host_key = { type = r.host_key_type, fingerprint = r.fingerprint }
   self._session = session
   return true
end

--- Whether connect() failed: the host is unreachable for this run.
function Host:unreachable()
   return self._unreachable ~= nil
end

-- How sudo is used, found once per host: no password needed, or the
-- password fed on stdin (never on a command line, never in output).
function Host:_sudo_mode()
   if self._sudo then
      return self._sudo
   end
   local r, err, code = self:_raw_exec("sudo -n true", { timeout = 30 })
   if not r then
      return nil, err, code
   end
   if r.status == 0 then
      self._sudo = "nopass"
   elseif self._opts.become_pass then
      self._sudo = "password"
   else
      return nil,
         ("become: sudo on %s needs a password: run with --ask-become-pass"):format(self.name),
         "EBECOME"
   end
   return self._sudo
end

function Host:_raw_exec(cmd, opts)
   local ok, err, code = self:connect()
   if not ok then
      return nil, err, code
   end
   return sched.await(self._session:submit("exec", cmd, opts))
end

--- Run a command; returns {stdout, stderr, status, truncated} whatever the
-- exit status (a non-zero status is the caller's to judge), or nil, err, code
-- when it could not run (unreachable, timeout, lost connection).
---@param cmd string a shell command line
---@param opts? {stdin?: string, timeout?: number, become?: boolean, max_output?: integer}
function Host:exec(cmd, opts)
   opts = opts or {}
   local become = opts.become
   if become == nil then
      become = self.become
   end
   local xopts = {
      stdin = opts.stdin,
      timeout = opts.timeout or self._opts.command_timeout,
      max_output = opts.max_output,
   }
   if become and self.user ~= "root" then
      local mode, err, code = self:_sudo_mode()
      if not mode then
         return nil, err, code
      end
      if mode == "nopass" then
         cmd = "sudo -n -- sh -c " .. q(cmd)
      else
         cmd = "sudo -k -S -p '' -- sh -c " .. q(cmd)
         xopts.stdin = self._opts.become_pass .. "\n" .. (opts.stdin or "")
      end
      xopts.kill_prefix = "sudo -n"
      local r, xerr, xcode = self:_raw_exec(cmd, xopts)
      if r and r.status ~= 0 and r.stderr:find("incorrect password", 1, true) then
         return nil, ("become: sudo on %s rejected the password"):format(self.name), "EBECOME"
      end
      return r, xerr, xcode
   end
   return self:_raw_exec(cmd, xopts)
end

-- Run a file command; a failure is nil, "host.op: reason (host:path)", CODE
-- (fileattrs.failure maps it).
function Host:_file_cmd(op, path, cmd, opts)
   local r, err, code = self:exec(cmd, opts)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      return fa.failure("host." .. op, self.name, path, r, true)
   end
   return r
end

--- stat a remote path: {type, mode, uid, gid, user, group, size, mtime} or
-- nil, "host.stat: No such file or directory (host:path)", "ENOENT".
---@param path string
---@param opts? {follow?: boolean}
function Host:stat(path, opts)
   local r, err, code = self:_file_cmd("stat", path, fa.stat_cmd(path, not (opts and opts.follow == false)))
   if not r then
      return nil, err, code
   end
   local st = fa.parse_stat(r.stdout:match("^[^\n]*"))
   if not st then
      return nil, ("host.stat: unexpected output %q (%s:%s)"):format(r.stdout, self.name, path), "EREMOTE"
   end
   return st
end

--- Read a remote file's content.
function Host:read(path, opts)
   local data, err, code
   if self.become and self.user ~= "root" then
      local r
      r, err, code = self:_file_cmd("read", path, "cat -- " .. q(path))
      data = r and r.stdout
   else
      local ok
      ok, err, code = self:connect()
      if not ok then
         return nil, err, code
      end
      data, err, code = sched.await(self._session:submit("get", path))
   end
   -- {missing = false}: a file that is not there reads as false, a distinct
   -- answer from a failure (a permission error must not read as "absent")
   if data == nil and code == "ENOENT" and opts and opts.missing == false then
      return false
   end
   return data, err, code
end

--- sha256 of a remote file (sha256sum on the node), so unchanged files are
-- never sent again.
function Host:sha256(path)
   local r, err, code = self:_file_cmd("sha256", path, "sha256sum -- " .. q(path))
   if not r then
      return nil, err, code
   end
   return r.stdout:match("^(%x+)")
end

local function temp_name(dir, base)
   return ("%s/.%s.etcdrun-%08x%04x"):format(dir, base, math.random(0, 0x7fffffff), math.random(0, 0xffff))
end

local function split_path(path)
   local dir, base = path:match("^(.*)/([^/]+)$")
   if not dir then
      return ".", path
   end
   return dir == "" and "/" or dir, base
end

-- The mode/owner/group of opts for fileattrs.fix_cmd, a string mode read as octal.
local function attrs(opts, path)
   return { mode = opts.mode and fs.mode(opts.mode, path), owner = opts.owner, group = opts.group }
end

-- The command that gives a staged temp file its owner and mode and renames
-- it over path. Without mode/owner the existing file's are kept.
local function finalize_cmd(tmp, path, opts)
   local parts = { ("if [ -e %s ]; then chmod --reference=%s %s && chown --reference=%s %s; fi")
      :format(q(path), q(path), q(tmp), q(path), q(tmp)) }
   parts[#parts + 1] = fa.fix_cmd(tmp, attrs(opts, path))
   parts[#parts + 1] = ("mv -f -T %s %s"):format(q(tmp), q(path))
   -- in the same command: temp files of this name that killed runs left
   -- behind (untouched for 10 minutes; a live transfer keeps touching its own)
   local dir, base = split_path(path)
   parts[#parts + 1] = ("{ find %s -maxdepth 1 -type f -name %s -mmin +10 -exec rm -f -- {} + 2>/dev/null; true; }")
      :format(q(dir), q("." .. base:gsub("[%*%?%[\\]", "\\%0") .. ".etcdrun-*"))
   return table.concat(parts, " && ")
end

--- Write content to a remote file atomically: staged next to the target,
-- given owner and mode, then renamed over it. A failed or interrupted
-- transfer leaves the old file as it was and no temp file behind.
---@param path string absolute path on the node
---@param data string|nil content (nil with opts.from: a local file to stream)
---@param opts? {mode?: integer, owner?: string|integer, group?: string|integer, from?: string}
function Host:write(path, data, opts)
   opts = opts or {}
   local ok, err, code = self:connect()
   if not ok then
      return nil, err, code
   end
   local dir, base = split_path(path)
   local final = temp_name(dir, base)
   local sudo = self.become and self.user ~= "root"
   -- with sudo, the login user stages in /tmp and root copies it next to the target
   local staged = sudo and temp_name("/tmp", "stage") or final
   local put_ok, perr, pcode = sched.await(self._session:submit("put", data, staged, {
      mode = sudo and 384 or (opts.mode or 420),
      exclusive = true,
      from = opts.from,
   }))
   if not put_ok then
      if pcode == "ENOENT" then
         return nil, ("host.write: No such file or directory (%s:%s)"):format(self.name, dir), pcode
      end
      return nil, perr:gsub("^ssh%.put", "host.write"), pcode
   end
   local cmd = finalize_cmd(final, path, opts)
   if sudo then
      cmd = ("(umask 077 && cp -- %s %s) && rm -f -- %s && %s"):format(q(staged), q(final), q(staged), cmd)
   end
   local r
   r, err, code = self:_file_cmd("write", path, cmd)
   if not r then
      self:exec(("rm -f -- %s %s"):format(q(staged), q(final)))
      return nil, err, code
   end
   return true
end

--- Copy a local file to the node, atomically, streaming (any size).
function Host:put_file(local_path, path, opts)
   local o = {}
   for k, v in pairs(opts or {}) do
      o[k] = v
   end
   o.from = local_path
   return self:write(path, nil, o)
end

--- Fetch a remote file into a local path (written atomically).
function Host:get_file(path, local_path, opts)
   local ok, err, code = self:connect()
   if not ok then
      return nil, err, code
   end
   return sched.await(self._session:submit("get", path, { to = local_path, mode = opts and opts.mode }))
end

--- mkdir -p with the mode (and owner) given to the last component.
function Host:mkdir(path, opts)
   opts = opts or {}
   local fix = fa.fix_cmd(path, attrs(opts, path))
   local cmd = "mkdir -p -- " .. q(path) .. (fix and (" && " .. fix) or "")
   local r, err, code = self:_file_cmd("mkdir", path, cmd)
   return r and true, err, code
end

--- Remove a file (or a tree with recursive=true). Missing is not an error.
-- Refuses "/" and empty paths, because no caller ever means them.
function Host:remove(path, opts)
   local norm = path:gsub("/+", "/"):gsub("/%.$", "")
   if norm == "" or norm == "/" or norm == "/." then
      error(("host.remove: refusing to remove %q (%s)"):format(path, self.name), 2)
   end
   local flags = opts and opts.recursive and "-rf" or "-f"
   local r, err, code = self:_file_cmd("remove", path, ("rm %s -- %s"):format(flags, q(path)))
   return r and true, err, code
end

--- Close the session (also done when the host object is collected).
function Host:close()
   if self._session then
      self._session:close()
      self._session = nil
   end
end

M.Host = Host
return M
