--- The command line: parses argv (handed over by main.c) and runs what it
-- asks for. Exit codes: 0 success, 1 the script failed, 2 usage error.
-- Errors raised by a script propagate to main.c, which prints the message
-- (file:line: message) with a traceback and exits 1.
local runtime = require("etcdrun.core.runtime")

local M = {}

local USAGE = [==[
usage: etcdrun [options] FILE.lua [ARGS...]
       etcdrun -e CODE [-e CODE...] [FILE.lua [ARGS...]]

Runs Lua 5.4 with the etcdrun runtime loaded: the global table `etcdrun`
holds fs, template, x509, archive and http (each also require("etcdrun.NAME")).

options:
  -e CODE        run CODE (may be given more than once, runs before FILE)
  -              read the script from standard input
  --version      print etcdrun's version and the libraries it runs with
  -h, --help     print this help
  --             stop handling options

exit status: 0 success, 1 the script failed, 2 usage error
]==]

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

--- Parse argv into { codes = {...}, script = path|nil, script_index = i } or nil, usage message.
---@param argv table argv as main.c passes it (argv[0] is the program)
function M.parse(argv)
   local opts = { codes = {} }
   local i = 1
   while argv[i] do
      local a = argv[i]
      if a == "--" then
         i = i + 1
         break
      elseif a == "-e" then
         if not argv[i + 1] then
            return nil, "option '-e' needs an argument"
         end
         table.insert(opts.codes, argv[i + 1])
         i = i + 2
      elseif a == "--version" or a == "-v" then
         opts.version = true
         i = i + 1
      elseif a == "-h" or a == "--help" then
         opts.help = true
         i = i + 1
      elseif a == "-" then
         break
      elseif a:sub(1, 1) == "-" then
         return nil, ("unknown option '%s'"):format(a)
      else
         break
      end
   end
   if argv[i] then
      opts.script = argv[i]
      opts.script_index = i
   end
   return opts
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

---@param argv table
---@return integer exit code
function M.main(argv)
   local opts, err = M.parse(argv)
   if not opts then
      return usage_error(err)
   end
   if opts.help then
      io.stdout:write(USAGE)
      return 0
   end
   if opts.version then
      print_version()
      return 0
   end
   if #opts.codes == 0 and not opts.script then
      return usage_error("nothing to run: give FILE.lua or -e CODE")
   end

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
      local chunk, lerr = loadfile(path)
      if not chunk then
         io.stderr:write("etcdrun: ", lerr, "\n")
         return 1
      end
      local args = {}
      for i = 1, #_G.arg do
         args[i] = _G.arg[i]
      end
      local rc = chunk(table.unpack(args))
      if math.type(rc) == "integer" then
         return rc
      end
   end
   return 0
end

return M
