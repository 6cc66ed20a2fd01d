-- `etcdrun doc [MODULE]` (ansible-doc's counterpart) through the real binary,
-- the REPL's `:doc` giving the same text, and every built-in module's
-- example loading as a task of a playbook (its arguments checked).
local helper = require("support.helper")
local module = require("etcdrun.module")
local playbook = require("etcdrun.playbook")
local q = helper.q

local function builtin_names()
   local names = {}
   for _, f in ipairs(require("etcdrun.core.fs").list("modules")) do
      names[#names + 1] = f:match("^([%w_]+)%.lua$")
   end
   table.sort(names)
   return names
end

describe("etcdrun doc", function()
   it("lists every module, one line each with its first sentence", function()
      local out, err, code = helper.run(q(helper.etcdrun) .. " doc")
      assert.are.equal(0, code, err)
      local lines = {}
      for l in out:gmatch("[^\n]+") do
         lines[#lines + 1] = l
      end
      local names = builtin_names()
      assert.are.equal(#names, #lines)
      for i, n in ipairs(names) do
         assert.matches("^" .. n .. " +%S", lines[i])
      end
      assert.matches("\nfile +Make a path a directory, a file, a symlink or absent, with mode, owner and group%.\n",
         out)
   end)

   it("shows one module's arguments: type, required, default, choices, constraints and an example", function()
      local out, err, code = helper.run(q(helper.etcdrun) .. " doc file")
      assert.are.equal(0, code, err)
      assert.matches("^file: Make a path", out)
      local mod = module.load("file")
      for name, spec in pairs(mod.args) do
         assert.matches("\n  [=-] " .. name .. " %(" .. spec.type .. "%)\n", out)
      end
      assert.matches("\n  = path %(path%)\n      path on the host\n", out)
      assert.matches('choices: "file", "directory", "link", "touch", "absent"\n', out, 1, true)
      assert.matches("  %- follow %(boolean%)\n.-      default: true\n", out)
      assert.matches('constraints: state = "link" needs src\n', out, 1, true)
      assert.matches('\nexample:\n  task "data directory" { file = {', out, 1, true)
   end)

   it("marks secret arguments and lists the elements of a list", function()
      local out = helper.run(q(helper.etcdrun) .. " doc x509_key")
      assert.matches("  %- passphrase %(string, secret%)\n", out)
      out = helper.run(q(helper.etcdrun) .. " doc release")
      assert.matches("  = files %(list of string%)\n", out)
   end)

   it("names an unknown module and exits 1; more than one word is a usage error", function()
      local out, err, code = helper.run(q(helper.etcdrun) .. " doc nosuch")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("no module named 'nosuch'", err, 1, true)
      out, err, code = helper.run(q(helper.etcdrun) .. " doc file copy")
      assert.are.equal("", out)
      assert.are.equal(2, code)
      assert.matches("unexpected argument 'copy'", err, 1, true)
   end)

   it("shows a site module on ETCDRUN_PATH", function()
      local out, err, code = helper.run("ETCDRUN_PATH=examples/modules " .. q(helper.etcdrun) .. " doc banner")
      assert.are.equal(0, code, err)
      assert.matches("^banner: ", out)
   end)

   it("is what the REPL's :doc prints", function()
      local ws = helper.tmpdir()
      helper.write(ws .. "/hosts", "[web]\na ansible_connection=local\n")
      local want = helper.run(q(helper.etcdrun) .. " doc x509_cert")
      local got, err, code = helper.run(("cd %s && printf ':doc x509_cert\\n' | %s repl -i hosts"):format(q(ws),
         q(helper.etcdrun)))
      assert.are.equal(0, code, err)
      assert.are.equal(want, got)
   end)
end)

describe("every built-in module's example", function()
   for _, name in ipairs(builtin_names()) do
      it(name .. " has one, and it loads as a task with valid arguments", function()
         local mod = module.load(name)
         assert.is_string(mod.examples)
         local src = ('return { play "p" { hosts = "all", tasks = { %s },\n'
            .. 'handlers = { handler "restart etcd" { debug = { msg = "x" } } } } }'):format(mod.examples)
         local chunk = assert(load(src, "=" .. name .. " example", "t", playbook.env()))
         local pb, err = playbook.from_value(chunk(), "/nonexistent/" .. name .. ".lua")
         assert.is_table(pb, err)
         local step = pb.plays[1].steps[1]
         assert.are.equal(name, step.module)
      end)
   end
end)
