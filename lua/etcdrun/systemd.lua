--- systemd unit files and `systemctl show` output: the raising facade over
-- etcdrun.core.systemd (shapes documented at the top of runtime/systemd.c).
--
--   parse_unit(text, name?) -> { {"Unit", {{"Description", "etcd"}, ...}}, ... }
--   render(units)           -> unit file text, from that list form or the map
--                              form { Unit = { After = {"a", "b"} }, Service = {...} }
--                              ([Unit] first, [Install] last, keys sorted)
--   parse_show(text)        -> { { ActiveState = "active", ... }, ... } one per unit
--
-- parse_unit and parse_show raise "systemd.parse_unit: etcd.service:7: ..."
-- on bad text; `try` holds the originals returning nil, err, "EPARSE".
-- render raises on a malformed table (misuse) in both.
local core = require("etcdrun.core.systemd")

local M = require("etcdrun.raising").wrap(core, "systemd")

--- Every value of `key` in `section` (repeated sections and keys included),
-- in file order: what systemd would see for a list-valued directive before
-- applying resets by empty assignments.
---@param sections table parse_unit's result
---@param section string e.g. "Install"
---@param key string e.g. "WantedBy"
---@return string[]
function M.values(sections, section, key)
   local out = {}
   for _, s in ipairs(sections) do
      if s[1] == section then
         for _, kv in ipairs(s[2]) do
            if kv[1] == key then
               out[#out + 1] = kv[2]
            end
         end
      end
   end
   return out
end

return M
