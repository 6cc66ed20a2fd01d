--- Table-driven decision specs: a module's plan(state, args, opts) run
-- through module.plan (arguments validated, defaults filled), no node.
--
--   plancases.run(it, "copy", {
--      { name = "...", state = { ...as gather returns it... }, args = { ... },
--        opts = { check = true }, want = { changed = true, msg = "..." } },
--   })
--
-- Every field of `want` is compared with the plan's (plancases.NONE: the
-- field is absent); `also(plan)`, when given, asserts anything else.
local module = require("etcdrun.module")
local assert = require("luassert")

local M = {}

M.NONE = setmetatable({}, { __tostring = function() return "<none>" end })

--- A stat as gather parses it: st("file", "0644", "root") plus extra fields.
---@param t string file, dir, link, char, ...
---@param mode string octal
---@param user? string owner and group name (uid/gid 0 for root, else 1000)
---@param extra? table more fields (size, digest, ...)
function M.st(t, mode, user, extra)
   user = user or "root"
   local id = user == "root" and 0 or 1000
   local s = { type = t, mode = tonumber(mode, 8), uid = id, gid = id, user = user, group = user, size = 0 }
   for k, v in pairs(extra or {}) do
      s[k] = v
   end
   return s
end

--- A copy of base with the fields of over (for args and states that differ a little).
function M.merge(base, over)
   local t = {}
   for k, v in pairs(base) do
      t[k] = v
   end
   for k, v in pairs(over or {}) do
      t[k] = v
   end
   return t
end

--- One `it` per case, in a describe of the caller's (busted's `it` is the
--- spec file's, so it is passed in).
---@param it function
---@param name string module name
---@param cases table[]
function M.run(it, name, cases)
   local mod = assert(module.load(name))
   for _, c in ipairs(cases) do
      it(c.name, function()
         local plan, err = module.plan(mod, c.state, c.args, c.opts)
         assert.is_table(plan, err)
         for k, v in pairs(c.want) do
            if v == M.NONE then
               assert.is_nil(plan[k], k)
            else
               assert.are.same(v, plan[k], k)
            end
         end
         if c.also then
            c.also(plan)
         end
      end)
   end
end

return M
