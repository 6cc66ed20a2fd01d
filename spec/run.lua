-- Runs busted (Debian's lua-busted, Lua 5.4 build) inside the etcdrun
-- binary, so every spec exercises the real runtime: `./etcdrun spec/run.lua
-- [busted options] [spec files]`. Defaults live in .busted.
package.path = "./spec/?.lua;" .. package.path
require("busted.runner")({ standalone = false })
