-- The man pages are generated (docs/man/mkman.lua, as `make man` runs it)
-- from the tables --help and `etcdrun doc` render; this spec fails if a
-- page loses an option, an exit status, a module or an argument, if groff
-- warns about a page, or if the page and --help / `etcdrun doc` disagree.
local helper = require("support.helper")
local module = require("etcdrun.module")
local options = require("etcdrun.cli.options")
local q = helper.q

-- A page as roff and as plain text (groff, wide lines, no hyphenation),
-- with groff's warnings.
local function page(name)
   local ws = helper.tmpdir()
   local src = ws .. "/" .. name
   local _, err, code = helper.run(("ETCDRUN_PATH= %s docs/man/mkman.lua %s > %s"):format(q(helper.etcdrun), name,
      q(src)))
   assert.are.equal(0, code, err)
   local text, warnings = helper.run(("groff -t -man -Tascii -P-cbou -rLL=400n -rHY=0 -ww %s"):format(q(src)))
   return helper.read(src), (text:gsub("%s+", " ")), warnings
end

-- Text as a page shows it: spaces collapsed, Markdown's `code` marks gone.
local function flat(s)
   return (s:gsub("%s+", " "):gsub("`", ""))
end

-- Whether plain `want` is in `text`; the message names it (not the whole page).
local function has(text, want)
   assert(text:find(want, 1, true), ("the page lacks %q"):format(want))
end

describe("etcdrun(1)", function()
   local roff, text, warnings
   setup(function()
      roff, text, warnings = page("etcdrun.1")
   end)

   it("is valid man roff: groff has no warning", function()
      assert.matches('^%.TH ETCDRUN 1 "%d%d%d%d%-%d%d%-%d%d" "etcdrun ', roff)
      assert.are.equal("", warnings)
   end)

   it("has every option --help has, with the same text", function()
      local help = helper.run(q(helper.etcdrun) .. " --help")
      local n = 0
      for _, o in ipairs(options.OPTIONS) do
         local label = options.label(o)
         assert.matches("\n  " .. label:gsub("%p", "%%%0"), help) -- the help shows it ...
         has(text, " " .. label .. " " .. flat(o[5])) -- ... and the page
         n = n + 1
      end
      assert.is_true(n >= 30)
      for _, flag in ipairs({ "--list-hosts", "--list-tasks", "--list-tags", "--syntax-check", "--start-at-task" }) do
         assert.matches(" " .. flag:gsub("%p", "%%%0") .. " ", text)
      end
   end)

   it("says every exit status, environment variable, file and example", function()
      for _, section in ipairs({ "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO", "SYNOPSIS" }) do
         assert.matches(" " .. section .. " ", text, 1, true)
      end
      for _, list in ipairs({ options.EXIT, options.ENVIRONMENT, options.FILES, options.EXAMPLES }) do
         for _, e in ipairs(list) do
            has(text, " " .. e[1] .. " " .. flat(e[2]))
         end
      end
      for code in ("0 1 2 3 130"):gmatch("%d+") do
         assert.matches(" EXIT STATUS.* " .. code .. " ", text)
      end
      for _, var in ipairs({ "ETCDRUN_HOME", "ETCDRUN_PATH", "XDG_STATE_HOME", "XDG_CACHE_HOME" }) do
         assert.matches(" " .. var .. " ", text, 1, true)
      end
   end)
end)

describe("etcdrun-playbook(7)", function()
   local text, warnings
   setup(function()
      local _
      _, text, warnings = page("etcdrun-playbook.7")
   end)

   it("is valid man roff: groff has no warning", function()
      assert.are.equal("", warnings)
   end)

   it("says the DSL, variables and their precedence, check mode, secrets and the module contract", function()
      for _, words in ipairs({ "Variables, lowest precedence first", "-C/--check never changes anything",
         " SECRETS ", "What is secret", " THE MODULE CONTRACT ", "gather(ctx, args)", "plan(", " MODULES " }) do
         has(text, words)
      end
   end)

   it("has every built-in module with every argument, as `etcdrun doc` has them", function()
      for _, name in ipairs(module.list()) do
         local mod = module.load(name)
         local d = require("etcdrun.cli.doc").describe(name, mod)
         has(text, " " .. name .. " " .. flat(d.doc))
         local shown = helper.run(q(helper.etcdrun) .. " doc " .. name)
         for _, a in ipairs(d.args) do
            has(text, " " .. a.name .. " (" .. a.type)
            assert.matches(" " .. a.name .. " (" .. a.type, shown, 1, true)
            if a.doc ~= "" then
               has(text, flat(a.doc))
               assert.matches(flat(a.doc), flat(shown), 1, true)
            end
         end
         has(text, flat(mod.examples))
      end
   end)
end)
