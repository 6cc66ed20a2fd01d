--- The `etcdrun` table scripts see: the public facades, loaded on first use
-- so that a script which only renders a template never initialises OpenSSL
-- or libcurl state it does not need.
local facades = {
   fs = "etcdrun.fs",
   template = "etcdrun.template",
   x509 = "etcdrun.x509",
   archive = "etcdrun.archive",
   http = "etcdrun.http",
}

local M = {}

M.version = require("etcdrun.core.runtime").versions().etcdrun

return setmetatable(M, {
   __index = function(t, k)
      local mod = facades[k]
      if not mod then
         error("etcdrun." .. tostring(k) .. " does not exist", 2)
      end
      local v = require(mod)
      rawset(t, k, v)
      return v
   end,
})
