--- The REPL's colon commands (`:on`, `:hosts`, `:check`, `:etcd`, `:pki`,
-- `:doc`, `:help`, `:quit`). Each takes the session and the text after the
-- command word; a failure raises a message (the REPL prints it and goes on).
local module = require("etcdrun.module")
local doc = require("etcdrun.cli.doc")
local targets = require("etcdrun.repl.targets")

local M = {}

--- name, argument synopsis, what it does: for :help and completion.
M.list = {
   { "on", "PATTERN", "set the target hosts (an inventory pattern: etcd, etcd1:etcd2, etcd:!etcd3)" },
   { "hosts", "[PATTERN]", "list the target hosts (or those PATTERN matches) and their connections" },
   { "check", "on|off", "check mode: modules report what they would change and change nothing" },
   { "etcd", "ARGS", "run etcdctl ARGS on the first target with the cluster's TLS files" },
   { "pki", "[DIR]", "show or set the PKI directory :etcd reads etcdctl.env from" },
   { "doc", "MODULE", "a module's description and arguments" },
   { "help", "", "this text" },
   { "quit", "", "leave (also Ctrl-D)" },
}

local HELP_TAIL = [[
!CMD                 run a shell command on every target; identical outputs are grouped
module{args}         run a module on every target (file, copy, template, systemd, ...) and
                     print each host's status and diff; modules.NAME{...} reaches them all
host(NAME)           the session's host object (exec, read, stat, ...); sh(CMD) is !CMD
                     returning the results by host; inventory, etcdrun: as in scripts
Tab completes, the up arrow and Ctrl-R recall history; Ctrl-C interrupts the running
command on every host; Ctrl-D leaves.
]]

local commands = {}

function commands.on(self, arg)
   if arg == "" then
      self:write(self.pattern .. "\n")
      return
   end
   local ok, err = self:on(arg)
   if not ok then
      error(err, 0)
   end
   local list = {}
   for i, h in ipairs(self.targets) do
      list[i] = h.name
   end
   self:write(("%d host%s: %s\n"):format(#list, #list == 1 and "" or "s", table.concat(list, ", ")))
end

function commands.hosts(self, arg)
   local hosts = self.targets
   if arg ~= "" then
      local err
      hosts, err = self.inv:hosts(arg, self.limit)
      if not hosts then
         error(err, 0)
      end
   end
   local w = 4
   for _, h in ipairs(hosts) do
      w = math.max(w, #h.name)
   end
   for _, h in ipairs(hosts) do
      self:write(("%-" .. w .. "s  %-15s %-8s %-13s %s\n"):format(h.name, h.address, h.user or "-",
         self.pool.state(h.name), table.concat(h.groups or {}, ",")))
   end
end

function commands.check(self, arg)
   if arg == "on" or arg == "off" then
      self.check = arg == "on"
   elseif arg ~= "" then
      error("usage: :check on|off", 0)
   end
   self:write(("check mode %s\n"):format(self.check and "on: nothing is changed" or "off"))
end

function commands.pki(self, arg)
   if arg ~= "" then
      self.pki_dir = arg
   end
   self:write(self:pki() .. "\n")
end

function commands.etcd(self, arg)
   local r, err = targets.etcdctl(self, arg, self:pki())
   if not r then
      self.failures = self.failures + 1
      error(err, 0)
   end
   if r.error then
      self.failures = self.failures + 1
      error(("%s: %s"):format(r.name, r.error), 0)
   end
   self:write(r.stdout)
   if r.stderr ~= "" then
      self:write_err((r.stderr:gsub("\n$", "")))
   end
   if r.status ~= 0 then
      self.failures = self.failures + 1
      self:write_err(("etcdctl exited %d (on %s)"):format(r.status, r.name))
   end
end

-- the same text as `etcdrun doc NAME` (etcdrun.cli.doc): one renderer
function commands.doc(self, arg)
   local mod, err = module.load(arg, self.search)
   if not mod then
      error(err, 0)
   end
   self:write(doc.text(doc.describe(arg, mod)))
end

function commands.help(self)
   for _, c in ipairs(M.list) do
      self:write(("%-20s %s\n"):format(":" .. c[1] .. (c[2] ~= "" and " " .. c[2] or ""), c[3]))
   end
   self:write(HELP_TAIL)
end

function commands.quit(self)
   self.done = true
end
commands.exit, commands.q = commands.quit, commands.quit

--- Run `:name arg`.
---@param session table
---@param name string
---@param arg string the rest of the line, trimmed
function M.run(session, name, arg)
   local f = commands[name]
   if not f then
      error(("unknown command ':%s' (:help lists them)"):format(name), 0)
   end
   return f(session, arg)
end

return M
