--- The command line: parses argv (handed over by main.c) and runs what it
-- asks for. Exit codes: 0 success, 1 the script failed (or a host failed),
-- 2 usage error, 3 a host was unreachable, 130 interrupted. Errors raised by a script
-- propagate to main.c, which prints the message (file:line: message) with a
-- traceback and exits 1.
local runtime = require("etcdrun.core.runtime")

local M = {}

-- name -> {key, takes_value, repeatable}: built from the one description of
-- the command line (etcdrun.cli.options), which --help and the man page render
local cli_options = require("etcdrun.cli.options")
local OPTIONS = cli_options.parser_table()

local function usage_error(msg)
   io.stderr:write("etcdrun: ", msg, "\nTry 'etcdrun --help'.\n")
   return 2
end

local function print_version()
   local v = runtime.versions()
   io.stdout:write(("etcdrun %s\n"):format(v.etcdrun))
   for _, k in ipairs({ "lua", "libssh", "openssl", "libarchive", "libcurl" }) do
      io.stdout:write(("  %-10s %s\n"):format(k, v[k]))
   end
end

local function number_option(opts, key, name, min)
   if opts[key] == nil then
      return true
   end
   local n = tonumber(opts[key])
   if not n or n < min then
      return nil, ("option %s needs a number >= %s, got '%s'"):format(name, min, opts[key])
   end
   opts[key] = n
   return true
end

-- Whether argv[i...] is known options, then -a: the word before them is a
-- host pattern (`etcdrun web -l 'web:!b' -a uptime`).
local function before_args(argv, i)
   while argv[i] do
      local name = argv[i]:match("^(%-%-[%w%-]+)=") or argv[i]
      if name == "-a" or name == "--args" then
         return true
      end
      local spec = OPTIONS[name]
      if not spec then
         return false
      end
      i = i + ((spec[2] and name == argv[i]) and 2 or 1)
   end
   return false
end

--- Parse argv into an options table, or nil and a usage message.
-- Positional words: opts.script (+ opts.script_index) or, with -a, opts.pattern.
---@param argv table argv as main.c passes it (argv[0] is the program)
function M.parse(argv)
   local opts = { codes = {}, keys = {}, tags = {}, skip_tags = {}, ask_secret = {}, verbose = 0 }
   local i = 1
   while argv[i] do
      local a = argv[i]
      local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
      name = name or a
      local spec = OPTIONS[name]
      if a == "--" then
         i = i + 1
         break
      elseif a == "-" then
         break
      elseif spec then
         local key, takes, repeatable = spec[1], spec[2], spec[3]
         local value = true
         if takes then
            value = inline or argv[i + 1]
            if value == nil then
               return nil, ("option '%s' needs an argument"):format(name)
            end
            if not inline then
               i = i + 1
            end
         elseif inline then
            return nil, ("option '%s' takes no argument"):format(name)
         end
         if repeatable == "count" then
            opts.verbose = opts.verbose + 1
         elseif repeatable == "count2" then
            opts.verbose = opts.verbose + 2
         elseif repeatable then
            table.insert(opts[key], value)
         else
            opts[key] = value
         end
         i = i + 1
      elseif a:sub(1, 1) == "-" then
         return nil, ("unknown option '%s'"):format(a)
      elseif opts.command == nil and before_args(argv, i + 1) then
         -- `etcdrun PATTERN [-l LIMIT ...] -a CMD`: the pattern comes before -a, as with ansible
         opts.pattern = a
         i = i + 1
      elseif opts.command ~= nil and not opts.pattern then
         opts.pattern = a
         i = i + 1
      else
         break
      end
   end
   if argv[i] then
      if opts.command then
         return nil, ("unexpected argument '%s' in ad-hoc mode"):format(argv[i])
      end
      opts.script = argv[i]
      opts.script_index = i
   end
   if opts.host_key and opts.host_key ~= "strict" and opts.host_key ~= "accept-new" then
      return nil, ("--host-key must be 'strict' or 'accept-new', got '%s'"):format(opts.host_key)
   end
   local ok, err = number_option(opts, "forks", "--forks", 1)
   if ok then
      ok, err = number_option(opts, "timeout", "--timeout", 1)
   end
   if ok then
      ok, err = number_option(opts, "command_timeout", "--command-timeout", 0.1)
   end
   if not ok then
      return nil, err
   end
   if opts.command and not opts.pattern then
      return nil, "ad-hoc mode needs a host pattern: etcdrun [-i hosts] PATTERN -a COMMAND"
   end
   -- with a FILE, `-e key=value` and `-e @file` are extra variables (as with
   -- ansible-playbook); any other -e, and every -e without a FILE, is code
   opts.extra = {}
   if opts.script then
      local codes = {}
      for _, e in ipairs(opts.codes) do
         if e:match("^[%a_][%w_]*=") or e:sub(1, 1) == "@" then
            opts.extra[#opts.extra + 1] = e
         else
            codes[#codes + 1] = e
         end
      end
      opts.codes = codes
   end
   local function split(list)
      local out = {}
      for _, v in ipairs(list) do
         for t in v:gmatch("[^,%s]+") do
            out[#out + 1] = t
         end
      end
      return out
   end
   opts.tags, opts.skip_tags = split(opts.tags), split(opts.skip_tags)
   opts.listing = opts.list_hosts or opts.list_tasks or opts.list_tags or opts.syntax_check
   return opts
end

--- Extra variables from `-e key=value` and `-e @vars.lua` (later wins).
function M.extra_vars(list)
   local vars = {}
   for _, e in ipairs(list) do
      if e:sub(1, 1) == "@" then
         local path = e:sub(2)
         local chunk, err = loadfile(path, "t", require("etcdrun.playbook").env())
         if not chunk then
            return nil, err
         end
         local ok, t = pcall(chunk)
         if not ok then
            return nil, tostring(t)
         end
         if type(t) ~= "table" then
            return nil, ("%s: a vars file must return a table"):format(path)
         end
         for k, v in pairs(t) do
            vars[k] = v
         end
      else
         local k, v = e:match("^([%a_][%w_]*)=(.*)$")
         vars[k] = v
      end
   end
   return vars
end

--- Merge options parsed from the words after a playbook or `repl` into
-- the options parsed before it: lists are appended, -v counts add up.
function M.merge(opts, more)
   for k, v in pairs(more) do
      if type(v) == "table" then
         for _, x in ipairs(v) do
            table.insert(opts[k], x)
         end
      elseif k == "verbose" then
         opts.verbose = opts.verbose + v
      else
         opts[k] = v
      end
   end
end

-- The global `arg` as lua.c makes it: arg[0] the script, arg[1..] its
-- arguments, negative indices for the interpreter and its options.
local function make_arg(argv, script_index)
   local t = {}
   local base = script_index or #argv + 1
   for i = 0, #argv do
      t[i - base] = argv[i]
   end
   return t
end

local function run_playbook(value, opts)
   local playbook = require("etcdrun.playbook")
   local pb, err = playbook.from_value(value, opts.script)
   if not pb then
      io.stderr:write("etcdrun: ", err, "\n")
      return 1
   end
   if opts.limit then
      -- a malformed --limit is found before any host is touched
      local terms, perr = require("etcdrun.hostpattern").split(opts.limit)
      if not terms then
         return usage_error("limit: " .. perr)
      end
   end
   local listing = require("etcdrun.cli.listing")
   local start_skip
   if opts.start_at_task then
      start_skip, err = listing.start_at(pb, opts.start_at_task)
      if not start_skip then
         return usage_error(err)
      end
   end
   local inventory = require("etcdrun.inventory")
   local inv
   if opts.listing and not opts.list_hosts then -- no inventory needed: nothing runs
      return listing.print(pb, opts, nil, io.write)
   end
   inv, err = inventory.load(opts.inventory or "hosts")
   if not inv then
      io.stderr:write("etcdrun: ", err, "\n")
      return 1
   end
   if opts.listing then
      return listing.print(pb, opts, inv, io.write)
   end
   local extra
   extra, err = M.extra_vars(opts.extra)
   if not extra then
      io.stderr:write("etcdrun: ", err, "\n")
      return 1
   end
   for _, name in ipairs(opts.ask_secret or {}) do
      if not name:match("^[%a_][%w_]*$") then
         return usage_error(("--ask-secret %s: not a variable name"):format(name))
      end
      local typed, perr = runtime.getpass(name .. ": ")
      if not typed then
         io.stderr:write("etcdrun: --ask-secret ", name, ": ", tostring(perr), "\n")
         return 1
      end
      extra[name] = playbook.secret(typed)
   end
   local conn
   conn, err = require("etcdrun.adhoc").connection_options(opts, inv:hosts("all") or {})
   if not conn then
      io.stderr:write("etcdrun: ", err, "\n")
      return 1
   end
   return require("etcdrun.runner").run(pb, inv, {
      check = opts.check,
      diff = opts.diff,
      forks = opts.forks,
      limit = opts.limit,
      tags = opts.tags,
      skip_tags = opts.skip_tags,
      start_skip = start_skip,
      extra = extra,
      conn = conn,
      json = opts.json,
      verbose = opts.verbose,
   })
end

local INTERRUPTED = setmetatable({}, { __tostring = function() return "interrupted" end })

local function run_script(argv, opts)
   _G.arg = make_arg(argv, opts.script_index)
   _G.etcdrun = require("etcdrun")
   for n, code in ipairs(opts.codes) do
      local chunk, lerr = load(code, "=(command line" .. (n > 1 and " " .. n or "") .. ")")
      if not chunk then
         io.stderr:write("etcdrun: ", lerr, "\n")
         return 1
      end
      chunk()
   end
   if opts.script then
      local path = opts.script ~= "-" and opts.script or nil
      local playbook = require("etcdrun.playbook")
      -- scripts and playbooks alike run strict: a typo'd global is an error.
      -- A script may require etcdrun.core.*, a playbook may not (sealed below).
      local env = playbook.env({ arg = _G.arg, etcdrun = _G.etcdrun }, { internal = "defer", fallback = _G })
      local chunk, lerr = loadfile(path, "t", env)
      if not chunk then
         io.stderr:write("etcdrun: ", lerr, "\n")
         return 1
      end
      -- a playbook's own mistakes (a DSL call without a name, an undefined
      -- global) name file:line: no traceback of the runtime's internals
      local ok, rc = xpcall(chunk, function(e)
         if playbook.is_user_error(e) then
            return e
         end
         if runtime.interrupted() then -- Ctrl-C while the file ran: nothing to debug
            return INTERRUPTED
         end
         if type(e) ~= "string" then
            local mt = getmetatable(e)
            e = mt and mt.__tostring and tostring(e) or ("(error object is a %s value)"):format(type(e))
         end
         return debug.traceback(e, 2)
      end, table.unpack(_G.arg, 1, #_G.arg))
      if rc == INTERRUPTED then
         io.stderr:write(("etcdrun: interrupted (Ctrl-C) in %s\n"):format(
            path or "standard input"))
         return 130
      end
      if not ok then
         io.stderr:write("etcdrun: ", tostring(rc), "\n")
         return 1
      end
      if playbook.is_playbook(rc) then
         local internal = require("etcdrun.sandbox").seal(env)
         if internal then
            io.stderr:write("etcdrun: ", internal, "\n")
            return 1
         end
         -- options may follow a playbook's name (`etcdrun site.lua -C -D`)
         local rest = { [0] = argv[0] }
         for i = 1, #_G.arg do
            rest[i] = _G.arg[i]
         end
         if #rest > 0 then
            local more, perr = M.parse(rest)
            if not more then
               return usage_error(perr)
            end
            if more.script then
               return usage_error(("unexpected argument '%s' after the playbook"):format(more.script))
            end
            M.merge(opts, more)
            -- a bare -e after the playbook is an extra var too
            for _, e in ipairs(more.codes) do
               table.insert(opts.extra, e)
            end
         end
         return run_playbook(rc, opts)
      end
      if opts.listing or opts.start_at_task then
         -- a file is known to be no playbook only once it ran: say so rather than ignore the flag
         return usage_error(("%s returns no plays: --list-*, --syntax-check and --start-at-task are for a "
            .. "playbook"):format(path or "standard input"))
      end
      if math.type(rc) == "integer" then
         return rc
      end
   end
   return 0
end

---@param argv table
---@return integer exit code
function M.main(argv)
   local opts, err = M.parse(argv)
   if not opts then
      return usage_error(err)
   end
   if opts.help then
      io.stdout:write(cli_options.help())
      return 0
   end
   if opts.version then
      print_version()
      return 0
   end
   if opts.command then
      return require("etcdrun.adhoc").main(opts)
   end
   if opts.script == "doc" or opts.script == "complete" then
      -- `etcdrun doc [MODULE]`; `etcdrun complete WHAT [-i INV]` (for the shell completion)
      local words = {}
      for i = opts.script_index + 1, #argv do
         words[#words + 1] = argv[i]
      end
      if opts.script == "complete" then
         return require("etcdrun.cli.complete").main(words, opts, io.write)
      end
      if #words > 1 then
         return usage_error(("doc: unexpected argument '%s' (etcdrun doc [MODULE])"):format(words[2]))
      end
      return require("etcdrun.cli.doc").main(words[1], io.write)
   end
   if opts.script == "repl" then
      -- `etcdrun [options] repl [options] [PATTERN]`: options may come after `repl` too
      local rest = { [0] = argv[0] }
      for i = opts.script_index + 1, #argv do
         rest[#rest + 1] = argv[i]
      end
      local more, perr = M.parse(rest)
      if not more then
         return usage_error(perr)
      end
      if more.script_index and rest[more.script_index + 1] then
         return usage_error(("repl: unexpected argument '%s' after the pattern"):format(rest[more.script_index + 1]))
      end
      M.merge(opts, more)
      opts.pattern = more.script
      return require("etcdrun.repl").main(opts)
   end
   if #opts.codes == 0 and not opts.script then
      return usage_error("nothing to run: give FILE.lua, -e CODE or PATTERN -a COMMAND")
   end
   return run_script(argv, opts)
end

return M
