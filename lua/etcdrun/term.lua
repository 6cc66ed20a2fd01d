--- etcdrun.term: the operator's terminal, for a playbook that asks before it
-- does something it cannot undo (playbooks/reset.lua).
local runtime = require("etcdrun.core.runtime")

local M = {}

--- Whether file descriptor fd (0 stdin, 1 stdout, 2 stderr) is a terminal.
---@param fd integer
---@return boolean
M.isatty = runtime.isatty

--- Ask the operator: write prompt to standard error (standard output may be
-- --json events) and read one line from standard input.
---@param prompt string
---@return string|nil line without its newline, nil at end of input
function M.ask(prompt)
   io.stderr:write(prompt)
   io.stderr:flush()
   return io.read("l")
end

return M
