--- etcdrun.clock: time for modules and playbooks (deadlines, elapsed time).
local runtime = require("etcdrun.core.runtime")

local M = {}

--- Seconds (a float) on a clock that never jumps (CLOCK_MONOTONIC): only
-- differences mean something. Use it for deadlines, not os.time(), which
-- steps when the wall clock is set.
---@return number
M.monotonic = runtime.monotonic

return M
