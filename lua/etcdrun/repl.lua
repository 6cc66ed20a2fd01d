--- The REPL: `etcdrun repl [-i hosts] [PATTERN]`, a Lua 5.4 prompt bound to
-- the inventory, for the ad-hoc work between playbook runs.
--
--   etcd[3]> !systemctl is-active etcd        a shell command on every target
--   etcd[3]> file{path="/etc/etcd", state="directory"}   a module on every target
--   etcd[3]> :on etcd1:etcd2                  change the targets (:hosts lists them)
--   etcd[3]> :etcd endpoint status -w table   etcdctl with the cluster's TLS files
--   etcd[3]> x = host("etcd1"):read("/etc/hostname")     any Lua, with the runtime
--
-- Lines are read as lua.c reads them: `return <line>` is tried first so an
-- expression prints its value, and an incomplete chunk continues on the next
-- line. Sessions to nodes stay open for the whole REPL. Interactive input
-- (a terminal) goes through libedit (etcdrun.core.edit) with history and
-- completion; otherwise lines come from stdin and no prompt is printed.
local runtime = require("etcdrun.core.runtime")
local fs = require("etcdrun.core.fs")
local adhoc = require("etcdrun.adhoc")
local module = require("etcdrun.module")
local output = require("etcdrun.output")
local localhost = require("etcdrun.localhost")
local pretty = require("etcdrun.repl.pretty")
local targets = require("etcdrun.repl.targets")
local completion = require("etcdrun.repl.complete")
local commands = require("etcdrun.repl.commands")

local M = {}

local Session = {}
Session.__index = Session

-- Values a module call or a command printed already during the current
-- line: the REPL does not print them again as the line's result (reset for
-- each line, so a variable holding one prints later).
local printed = setmetatable({}, { __mode = "k" })

-- Before a session exists (no secret is known yet).
local function write_err(msg)
   io.stderr:write(msg, "\n")
   io.stderr:flush()
end

--- Create a session.
---@param opts table parsed CLI options (inventory, pattern, limit, forks, check, pki) and
--- conn (connection options), inv (a loaded inventory, else opts.inventory is loaded),
--- stdout (file, default io.stdout), interactive (boolean)
---@return table|nil session, string? err
function M.session(opts)
   local inv = opts.inv
   if not inv then
      local err
      inv, err = require("etcdrun.inventory").load(opts.inventory or "hosts")
      if not inv then
         return nil, err
      end
   end
   local stdout = opts.stdout or io.stdout
   local self = setmetatable({
      inv = inv,
      limit = opts.limit,
      forks = opts.forks or 50,
      check = opts.check or false,
      pki_dir = opts.pki,
      stdout = stdout,
      interactive = opts.interactive or false,
      cwd = os.getenv("PWD") or ".",
      failures = 0,
      search = module.search_path(nil),
      controller = localhost.new("controller", opts.conn),
      -- verbose 1: a module's msg and output (debug, command) are what one asks for here
      out = output.new({ diff = true, verbose = 1, stream = stdout }),
      pool = targets.pool(opts.conn or {}),
      targets = {},
   }, Session)
   -- everything the session prints goes through self.out's redaction: the
   -- inventory's secrets, the passwords given, and every value a module or
   -- secret() marks during the session
   local conn = opts.conn or {}
   self.out:secret(conn.become_pass)
   self.out:secret(conn.passphrase)
   for _, spec in ipairs(inv:hosts("all") or {}) do
      self.out:learn(spec.vars)
   end
   local ok, err = self:on(opts.pattern or "all")
   if not ok then
      return nil, err
   end
   self.env = self:make_env()
   return self
end

--- Print a value's text (a result, command output): redacted.
function Session:write(s)
   self.stdout:write(self.out:redact(s))
end

--- Print an error or a warning on stderr: redacted.
function Session:write_err(msg)
   io.stderr:write(self.out:redact(tostring(msg)), "\n")
   io.stderr:flush()
end

--- Set the targets from a host pattern; on no match the old targets stay.
function Session:on(pattern)
   local hosts, warning = self.inv:hosts(pattern, self.limit)
   if not hosts then
      return nil, warning
   end
   if warning and #hosts > 0 then
      self:write_err("warning: " .. warning)
   end
   if #hosts == 0 then
      return nil, ("no hosts match '%s'"):format(pattern)
   end
   self.pattern, self.targets = pattern, hosts
   return true
end

--- The PKI directory :etcd reads etcdctl.env from: set with :pki (relative
-- to the working directory), else the first target's `etcd_pki_dir`, else
-- pki; those two relative to the inventory file's directory, as the cluster
-- playbook resolves them.
function Session:pki()
   if self.pki_dir then
      return self.pki_dir:sub(1, 1) == "/" and self.pki_dir or (self.cwd .. "/" .. self.pki_dir)
   end
   local first = self.targets[1]
   local dir = (first and first.vars and first.vars.etcd_pki_dir) or "pki"
   if dir:sub(1, 1) ~= "/" then
      local inv = self.inv.name and fs.stat(self.inv.name) and self.inv.name:match("^(.*)/[^/]*$")
      local base = inv and (inv:sub(1, 1) == "/" and inv or (self.cwd .. "/" .. inv)) or self.cwd
      dir = base .. "/" .. dir
   end
   return dir
end

function Session:prompt()
   return ("%s[%d]%s> "):format(self.pattern, #self.targets, self.check and " (check)" or "")
end

--- The module callable `name{args}`: validate, run on every target, print
-- each host's status and diff; returns results by host name.
function Session:module_caller(name)
   return function(args)
      local mod, err = module.load(name, self.search)
      if not mod then
         error(err, 0)
      end
      local vargs, secrets = module.validate(mod, args)
      if not vargs then
         error(secrets, 0)
      end
      for _, s in ipairs(secrets) do
         self.out:secret(s)
      end
      local res = targets.module(self, mod, vargs)
      local by_name = {}
      for _, r in ipairs(res) do
         self.out:result("task", nil, { name = name }, r.name, r.result, r.duration)
         if r.result.failed then
            self.failures = self.failures + 1
         end
         by_name[r.name] = r.result
      end
      printed[by_name] = true
      return by_name
   end
end

--- `!CMD` and sh(CMD): run, print grouped, return results by host name.
function Session:command(cmd)
   local res = targets.command(self, cmd)
   self.failures = self.failures + targets.print_command(function(s)
      self:write(s)
   end, res)
   local by_name = {}
   for _, r in ipairs(res) do
      by_name[r.name] = r
   end
   printed[by_name] = true
   return by_name
end

-- Lua globals whose name a module also has (assert, debug): a library table
-- becomes callable as the module, a function stays Lua's (modules.NAME reaches
-- the module).
local function shadow(lua_value, call)
   if type(lua_value) ~= "table" then
      return lua_value
   end
   local copy = {}
   for k, v in pairs(lua_value) do
      copy[k] = v
   end
   return setmetatable(copy, {
      __call = function(_, args)
         return call(args)
      end,
   })
end

function Session:make_env()
   local builtins = {
      etcdrun = require("etcdrun"),
      inventory = self.inv,
      modules = {},
      host = function(name)
         local spec = self.inv:host(name)
         if not spec then
            error(("no host '%s' in the inventory"):format(tostring(name)), 2)
         end
         return self.pool.get(spec)
      end,
      sh = function(cmd)
         return self:command(cmd)
      end,
      -- as in a playbook: the value prints as <secret>, and its text is
      -- hidden in everything the session prints from now on
      secret = function(v)
         self.out:secret(v)
         return require("etcdrun.playbook").secret(v)
      end,
   }
   self.module_names = module.list(self.search)
   for _, name in ipairs(self.module_names) do
      local call = self:module_caller(name)
      builtins.modules[name] = call
      if _G[name] == nil then
         builtins[name] = call
      else
         builtins[name] = shadow(_G[name], call)
      end
   end
   self.builtins = builtins
   return setmetatable({}, {
      __index = function(_, k)
         local v = builtins[k]
         if v == nil then
            v = _G[k]
         end
         return v
      end,
   })
end

-- Evaluation -------------------------------------------------------------------

-- Run a compiled chunk; print what it returned (unless already printed).
function Session:run_chunk(fn)
   local values = table.pack(fn())
   if values.n == 1 and printed[values[1]] then
      return
   end
   if values.n > 0 then
      self:write(pretty.results(values) .. "\n")
   end
end

--- Feed one line of input. Returns "more" while a Lua chunk is incomplete.
-- Errors propagate (the loop prints them and goes on).
---@param line string
---@return string|nil
function Session:feed(line)
   for k in pairs(printed) do
      printed[k] = nil
   end
   if not self.buffer then
      local cmd, arg = line:match("^%s*:(%S*)%s*(.-)%s*$")
      if cmd then
         return commands.run(self, cmd, arg)
      end
      local shell_cmd = line:match("^%s*!(.*)$")
      if shell_cmd then
         self:command(shell_cmd)
         return
      end
      if line:match("^%s*$") then
         return
      end
      local fn = load("return " .. line, "=stdin", "t", self.env)
      if fn then
         return self:run_chunk(fn)
      end
      self.buffer = line
   else
      self.buffer = self.buffer .. "\n" .. line
   end
   local fn, err = load(self.buffer, "=stdin", "t", self.env)
   if not fn and err:match("<eof>$") then
      return "more"
   end
   self.buffer = nil
   if not fn then
      error(err, 0)
   end
   return self:run_chunk(fn)
end

--- Completion for the line editor.
function Session:complete(before, width)
   local names = {}
   for k in pairs(self.builtins) do
      names[#names + 1] = k
   end
   for k in pairs(_G) do
      if type(k) == "string" then
         names[#names + 1] = k
      end
   end
   local hosts = {}
   for _, h in ipairs(self.inv:hosts("all") or {}) do
      hosts[#hosts + 1] = h.name
   end
   local groups = {}
   for _, g in ipairs(self.inv:groups()) do
      groups[#groups + 1] = g.name
   end
   local cmds = {}
   for _, c in ipairs(commands.list) do
      cmds[#cmds + 1] = c[1]
   end
   return completion.complete(before, width, {
      commands = cmds,
      hosts = hosts,
      groups = groups,
      modules = self.module_names,
      env = self.env,
      names = names,
   })
end

function Session:close()
   self.pool.close()
end

-- The loop ----------------------------------------------------------------------

local function message_of(err)
   if type(err) == "string" then
      return err
   end
   local mt = getmetatable(err)
   if mt and mt.__tostring then
      return tostring(err)
   end
   return ("(error object is a %s value)"):format(type(err))
end

-- After Ctrl-C: let the SSH workers see it (they kill remote commands), then
-- clear it and make the next Ctrl-C interrupt again.
function Session:settle(edit)
   self.pool.settle(edit.sleep)
   -- a hook main.c set that has not fired yet fires on this call, not later
   if not pcall(edit.clear_interrupt) then
      edit.clear_interrupt()
   end
end

-- One line: read, evaluate, report. Returns false at the end of input.
function Session:step(reader, edit)
   local line, err, code = reader(self.buffer and ">> " or self:prompt())
   if not line then
      if code == "EINTR" then
         self.buffer = nil
         self:write("\n")
         return true
      end
      if err then
         self:write_err("etcdrun: " .. err)
      end
      if self.buffer then
         self.buffer = nil
         self.failures = self.failures + 1
         self:write_err("stdin: unfinished chunk at the end of input")
      end
      return false
   end
   local ok, perr = xpcall(self.feed, message_of, self, line)
   self.stdout:flush()
   if runtime.interrupted() then
      self:write_err("interrupted")
      self.buffer = nil
      self:settle(edit)
   elseif not ok then
      self.buffer = nil
      self.failures = self.failures + 1
      self:write_err(perr)
   end
   return not self.done
end

--- Read-eval-print until the end of input (Ctrl-D, :quit, EOF on stdin).
---@param edit table etcdrun.core.edit
function Session:loop(edit)
   local reader, editor
   if self.interactive then
      editor = assert(edit.new({
         complete = function(before, width)
            return self:complete(before, width)
         end,
      }))
      local hist = M.history_file()
      if hist then
         editor:load_history(hist)
      end
      reader = function(prompt)
         local line, err, code = editor:readline(prompt)
         if line and line:match("%S") then
            editor:add_history(line)
            if hist then
               editor:save_history(hist)
            end
         end
         return line, err, code
      end
   else
      reader = function()
         return io.stdin:read("l")
      end
   end
   -- a Ctrl-C landing between two protected calls ends up here: go on
   while true do
      local ok, more = pcall(self.step, self, reader, edit)
      if ok and not more then
         break
      elseif not ok then
         if not runtime.interrupted() then
            -- not Ctrl-C but a fault of the REPL itself: stop rather than spin
            self:write_err("etcdrun: " .. message_of(more))
            self.failures = self.failures + 1
            break
         end
         self:settle(edit)
      end
   end
   if editor then
      self:write("\n")
      editor:close()
   end
end

--- Where history is kept: $XDG_STATE_HOME/etcdrun/history, by default
-- ~/.local/state/etcdrun/history (the directory is created mode 0700).
---@return string|nil
function M.history_file()
   local state = os.getenv("XDG_STATE_HOME")
   if not state or state == "" then
      local home = os.getenv("HOME")
      if not home or home == "" then
         return nil
      end
      state = home .. "/.local/state"
   end
   local dir = state .. "/etcdrun"
   if not fs.stat(dir) then
      fs.mkdir(dir, { mode = 448, parents = true }) -- on failure, history is simply not saved
   end
   return dir .. "/history"
end

--- `etcdrun repl`: returns the exit code (non-interactive: 1 when a line
-- failed or a host failed, so a script notices).
---@param opts table parsed CLI options: inventory, pattern, limit, forks, check, connection options
---@return integer
function M.main(opts)
   local edit = require("etcdrun.core.edit")
   local inventory = require("etcdrun.inventory")
   local inv, err = inventory.load(opts.inventory or "hosts")
   if not inv then
      write_err("etcdrun: " .. err)
      return 1
   end
   local conn
   conn, err = adhoc.connection_options(opts, inv:hosts("all") or {})
   if not conn then
      write_err("etcdrun: " .. err)
      return 1
   end
   local o = {}
   for k, v in pairs(opts) do
      o[k] = v
   end
   o.conn = conn
   o.inv = inv
   o.interactive = runtime.isatty(0)
   local session
   session, err = M.session(o)
   if not session then
      write_err("etcdrun: " .. err)
      return 1
   end
   session:loop(edit)
   session:close()
   if not o.interactive and session.failures > 0 then
      return 1
   end
   return 0
end

return M
