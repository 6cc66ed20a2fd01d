--- Writes a man page to stdout: `./etcdrun docs/man/mkman.lua etcdrun.1` or
-- `... etcdrun-playbook.7` (the Makefile's `man` target; the package build
-- runs it too). Nothing in a page is written twice: options, exit statuses,
-- environment, files and examples come from etcdrun.cli.options (which
-- renders --help), module references from etcdrun.cli.doc (which renders
-- `etcdrun doc` and the REPL's :doc, from each module's doc, args and
-- examples), the prose from README.md and modules/README.md.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local top = here .. "/../.."
local roff = dofile(here .. "/roff.lua")
local options = require("etcdrun.cli.options")
local doc = require("etcdrun.cli.doc")
local module = require("etcdrun.module")
local runtime = require("etcdrun.core.runtime")

local page = arg[1]

local function read(path)
   local f = assert(io.open(top .. "/" .. path, "r"))
   local s = f:read("a")
   f:close()
   return s
end

-- The date of the release (debian/changelog's), so a rebuild gives the same page.
local function date()
   local stamp = read("debian/changelog"):match("\n %-%- [^\n]->  %a+, (%d+ %a+ %d+)")
   local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
      Nov = 11, Dec = 12 }
   local d, m, y = stamp:match("(%d+) (%a+) (%d+)")
   return ("%04d-%02d-%02d"):format(tonumber(y), months[m], tonumber(d))
end

local out = {}
local function w(s)
   out[#out + 1] = s
end
local B, E = roff.code, roff.escape

local function header(name, section, title, summary)
   w(('.TH %s %s "%s" "etcdrun %s" "%s"'):format(name:upper(), section, date(), runtime.versions().etcdrun, title))
   w(".SH NAME")
   w(name .. " \\- " .. E(summary))
end

local function tp(label, text)
   w(".TP")
   w(label)
   w(roff.inline(text))
end

local function etcdrun_1()
   header("etcdrun", 1, "User Commands", "drive etcd clusters and Linux nodes over SSH with Lua playbooks")
   w(".SH SYNOPSIS")
   for _, s in ipairs(options.SYNOPSIS) do
      w(".br")
      w(B(s[1]))
   end
   w(".SH DESCRIPTION")
   local intro = read("README.md"):match("^# etcdrun\n(.-)\n## ")
   w(roff.convert(intro, { levels = {} }))
   w(".PP")
   w("The playbook DSL, variables, check mode, secrets and every module are in")
   w(".BR etcdrun\\-playbook (7);")
   w(B("etcdrun doc MODULE") .. " shows one module.")
   w(".SH COMMANDS")
   for _, s in ipairs(options.SYNOPSIS) do
      tp(B(s[1]), s[2])
   end
   tp(B("etcdrun complete options|hosts|playbooks|modules [-i INVENTORY]"),
      "the words the shell completion offers, one a line (used by the bash and zsh completion)")
   w(".SH OPTIONS")
   w("Options may come before or after the playbook, " .. B("repl") .. " or the host pattern.")
   for _, o in ipairs(options.OPTIONS) do
      local names = {}
      for i, n in ipairs(o[1]) do
         names[i] = B(n)
      end
      tp(table.concat(names, ", ") .. (o[2] and (" \\fI" .. E(o[2]) .. "\\fR") or ""), o[5])
   end
   w(".SH EXIT STATUS")
   for _, e in ipairs(options.EXIT) do
      tp(B(e[1]), e[2])
   end
   w(".SH ENVIRONMENT")
   for _, e in ipairs(options.ENVIRONMENT) do
      tp(B(e[1]), e[2])
   end
   w(".SH FILES")
   for _, f in ipairs(options.FILES) do
      tp(B(f[1]), f[2])
   end
   w(".SH EXAMPLES")
   for _, x in ipairs(options.EXAMPLES) do
      tp(B(x[1]), x[2])
   end
   w(".SH SEE ALSO")
   w(".BR etcdrun\\-playbook (7),")
   w(".BR ssh_config (5),")
   w(".BR etcdctl (1)")
end

local function module_section(name)
   local d = doc.describe(name, module.load(name))
   w(".SS " .. name)
   w(roff.inline(d.doc))
   for _, a in ipairs(d.args) do
      local what = a.type .. (a.elements and (" of " .. a.elements) or "") .. (a.required and ", required" or "")
         .. (a.secret and ", secret" or "")
      local text = a.doc
      if a.choices then
         text = text .. "; choices: " .. a.choices
      end
      if a.default then
         text = text .. "; default: " .. a.default
      end
      tp(B(a.name) .. " (" .. E(what) .. ")", text)
   end
   if #d.constraints > 0 then
      w(".PP")
      w("Constraints: " .. E(table.concat(d.constraints, "; ")) .. ".")
   end
   if d.example then
      w(".PP")
      w("Example:")
      w(".RS 4\n.nf")
      w((E(d.example):gsub("%-", "\\-")))
      w(".fi\n.RE")
   end
end

local function playbook_7()
   header("etcdrun-playbook", 7, "Miscellaneous",
      "etcdrun's playbooks and modules: the DSL, variables, check mode, secrets, the module contract")
   w(".SH DESCRIPTION")
   local readme = read("README.md")
   w(roff.convert(roff.section(readme, "## Playbooks and modules"), { levels = { [3] = "SH" } }))
   w(".SH THE MODULE CONTRACT")
   local contract = read("modules/README.md")
   w(roff.convert(contract:match("\n(## The contract\n.*)$"), { levels = { [2] = "SS", [3] = "SS" } }))
   w(".SH MODULES")
   w("The built-in modules, from each module's own documentation (" .. B("etcdrun doc MODULE")
      .. " prints the same):")
   for _, name in ipairs(module.list()) do
      module_section(name)
   end
   w(".SH SEE ALSO")
   w(".BR etcdrun (1)")
end

local pages = { ["etcdrun.1"] = etcdrun_1, ["etcdrun-playbook.7"] = playbook_7 }
if not pages[page] then
   io.stderr:write("usage: etcdrun docs/man/mkman.lua etcdrun.1|etcdrun-playbook.7\n")
   return 2
end
pages[page]()
io.write((table.concat(out, "\n"):gsub("\n+", "\n")) .. "\n")
return 0
