--- Shared test helpers: temp dirs, files, and running commands (the
-- etcdrun binary under test included) with stdout, stderr and exit code.
local M = {}

local fs = require("etcdrun.core.fs")

--- Absolute path of the binary under test (ETCDRUN, default ./etcdrun).
M.etcdrun = (function()
   local p = os.getenv("ETCDRUN") or "./etcdrun"
   if p:sub(1, 1) ~= "/" then
      local pwd = os.getenv("PWD") or io.popen("pwd"):read("l")
      p = pwd .. "/" .. p:gsub("^%./", "")
   end
   return p
end)()

--- Quote a string for /bin/sh.
function M.q(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpdirs = {}

--- A fresh private directory, removed when the spec process exits.
function M.tmpdir()
   local d = assert(fs.mkdtemp("/tmp/etcdrun-spec-"))
   table.insert(tmpdirs, d)
   return d
end

-- Remove temp dirs at exit: a __gc on a value held until lua_close.
M._cleanup = setmetatable({}, {
   __gc = function()
      for _, d in ipairs(tmpdirs) do
         fs.remove(d, { recursive = true })
      end
   end,
})

function M.write(path, data)
   local f = assert(io.open(path, "wb"))
   f:write(data)
   f:close()
end

function M.read(path)
   local f = io.open(path, "rb")
   if not f then
      return nil
   end
   local s = f:read("a")
   f:close()
   return s
end

--- Run a shell command; returns stdout, stderr, exit code.
function M.run(cmd)
   local errfile = os.tmpname()
   local p = io.popen("(" .. cmd .. ") 2>" .. M.q(errfile), "r")
   local out = p:read("a")
   local _, _, code = p:close()
   local err = M.read(errfile) or ""
   os.remove(errfile)
   return out, err, code
end

--- Run the binary under test with a -e chunk; returns stdout, stderr, code.
function M.etcdrun_e(code, ...)
   local args = { M.q(M.etcdrun), "-e", M.q(code) }
   for _, a in ipairs({ ... }) do
      table.insert(args, M.q(a))
   end
   return M.run(table.concat(args, " "))
end

return M
