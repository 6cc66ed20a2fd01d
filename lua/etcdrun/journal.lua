--- The handler journal: handlers notified but not run yet are written on
-- the controller while they wait, so a run killed between a change and its
-- handler (kill -9, a lost controller) replays the handler on the next run
-- instead of leaving, say, a changed config without its restart.
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")

local journal = {}

function journal.path(playbook_file)
   local base = os.getenv("XDG_STATE_HOME")
   if not base or base == "" then
      base = (os.getenv("HOME") or "/tmp") .. "/.local/state"
   end
   local abs = playbook_file:sub(1, 1) == "/" and playbook_file or ((os.getenv("PWD") or ".") .. "/" .. playbook_file)
   return ("%s/etcdrun/pending-handlers/%s.json"):format(base, fs.sha256(abs):sub(1, 16))
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
