--- The handler journal: handlers notified but not run yet are written on
-- the controller while they wait, so a run killed between a change and its
-- handler (kill -9, a lost controller) replays the handler on the next run
-- instead of leaving, say, a changed config without its restart.
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")

local journal = {}

--- The journal of a playbook run against an inventory (both names made
--- absolute against $PWD).
function journal.path(playbook_file, inventory)
   local base = os.getenv("XDG_STATE_HOME")
   if not base or base == "" then
      base = (os.getenv("HOME") or "/tmp") .. "/.local/state"
   end
   local function abs(p)
      return p:sub(1, 1) == "/" and p or ((os.getenv("PWD") or ".") .. "/" .. p)
   end
   local key = abs(playbook_file) .. "\0" .. abs(tostring(inventory or ""))
   return ("%s/etcdrun/pending-handlers/%s.json"):format(base, fs.sha256(key):sub(1, 16))
end

function journal.load(path)
   local text = fs.read(path)
   local ok, t = pcall(cjson.decode, text or "{}")
   return ok and type(t) == "table" and t or {}
end

function journal.save(rs)
   if rs.check or not rs.journal_path then
      return
   end
   local dir = rs.journal_path:match("^(.*)/[^/]*$")
   fs.mkdir(dir, { mode = 448 })
   if next(rs.pending) == nil then
      fs.remove(rs.journal_path)
   else
      fs.write(rs.journal_path, cjson.encode(rs.pending), { mode = 384 })
   end
end

return journal
