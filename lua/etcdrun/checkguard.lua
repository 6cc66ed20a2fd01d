--- Check mode writes nothing on the controller, structurally.
--
-- Code run under `checkguard.run(fn, ...)` (the runner runs every task of a
-- --check run that way, unless the task says `check_mode = false`; the REPL
-- does the same under `:check on`) cannot write to the controller's file
-- system: the primitives that write (etcdrun.core.fs's writers,
-- archive.extract, http.fetch to a file) refuse with
-- `nil, "ECHECK: ...", "ECHECK"` while the calling coroutine is guarded,
-- whoever calls them. A module or step that forgets check mode fails
-- visibly instead of writing. The raising facades (etcdrun.fs, ...) look
-- their core functions up at call time, so they are guarded too.
local M = {}

local WRITERS = {
   ["etcdrun.core.fs"] = { "write", "mkdir", "chmod", "chown", "remove", "mkdtemp", "symlink", "tempname",
      "sweep" },
   ["etcdrun.core.archive"] = { "extract" },
   ["etcdrun.core.http"] = { "fetch" },
}

-- guarded coroutines (the main thread is a coroutine too)
local guarded = setmetatable({}, { __mode = "k" })
local installed = false

local function install()
   installed = true
   for family, names in pairs(WRITERS) do
      local core = require(family)
      for _, name in ipairs(names) do
         local real = core[name]
         core[name] = function(...)
            if guarded[coroutine.running()] then
               return nil, ("ECHECK: check mode writes nothing on the controller: %s.%s(%s) refused"):format(
                  family:match("[^.]*$"), name, tostring((...))), "ECHECK"
            end
            return real(...)
         end
      end
   end
end

--- Call fn(...) with the controller's file system read-only for this
-- coroutine; returns what pcall(fn, ...) returns.
function M.run(fn, ...)
   if not installed then
      install()
   end
   local co = coroutine.running()
   local outer = guarded[co]
   guarded[co] = true
   local res = table.pack(pcall(fn, ...))
   guarded[co] = outer
   return table.unpack(res, 1, res.n)
end

--- Whether the calling coroutine is guarded.
function M.active()
   return guarded[coroutine.running()] == true
end

return M
