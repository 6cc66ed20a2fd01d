-- Shell completion through a real shell on a real terminal: bash with
-- Debian's bash-completion and completion/etcdrun.bash in tmux, keys typed,
-- Tab pressed, the pane read back. No node is needed: the inventory is a
-- file. The words come from `etcdrun complete ...`, tested here too.
local helper = require("support.helper")
local q = helper.q

local BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
local INVENTORY = "[webservers]\nalpha1 ansible_connection=local\nbeta2 ansible_connection=local\n"
   .. "[dbservers]\ngamma3 ansible_connection=local\n"

local function missing(cmd)
   local _, _, code = helper.run(cmd .. " >/dev/null 2>&1")
   return code ~= 0
end

describe("etcdrun complete", function()
   it("says every option of --help, with its argument and help", function()
      local out, err, code = helper.run(q(helper.etcdrun) .. " complete options")
      assert.are.equal(0, code, err)
      local help = helper.run(q(helper.etcdrun) .. " --help")
      local n = 0
      for line in help:gmatch("\n  (%-[^\n]*)") do
         for name in (line:match("^(.-)%s%s") or line):gmatch("%-%-?%w[%w%-]*") do
            assert.matches("\n" .. name:gsub("%p", "%%%0") .. "[ \t]", "\n" .. out)
            n = n + 1
         end
      end
      assert.is_true(n > 40, n)
      assert.matches("\n%-%-inventory PATH\tinventory file", out)
      assert.matches("\n%-%-check\treport what would change", out)
   end)

   it("says the inventory's group and host names (-i, else ./hosts), and nothing when it does not load", function()
      local ws = helper.tmpdir()
      helper.write(ws .. "/inv", INVENTORY)
      helper.write(ws .. "/hosts", "[local]\nhere ansible_connection=local\n")
      local out, _, code = helper.run(("cd %s && %s complete hosts -i inv"):format(q(ws), q(helper.etcdrun)))
      assert.are.equal(0, code)
      assert.are.equal("all\nungrouped\nwebservers\ndbservers\nalpha1\nbeta2\ngamma3\n", out)
      out = helper.run(("cd %s && %s complete hosts"):format(q(ws), q(helper.etcdrun)))
      assert.are.equal("all\nungrouped\nlocal\nhere\n", out)
      local err
      out, err = helper.run(("cd %s && %s complete hosts -i nosuch"):format(q(ws), q(helper.etcdrun)))
      assert.are.equal("", out)
      assert.are.equal("", err)
   end)

   it("says the installed playbooks with absolute paths", function()
      local out = helper.run(q(helper.etcdrun) .. " complete playbooks")
      assert.matches("^/.*/playbooks/reset%.lua\n.*/playbooks/tls%-cluster%.lua\n", out)
   end)
end)

-- Each shell: how to start it on the test's files, and its prompt.
local SHELLS = {
   bash = {
      needs = "test -f " .. BASH_COMPLETION,
      why = "needs bash-completion (apt-get install bash-completion)",
      prompt = "$",
      start = function(ws, root)
         helper.write(ws .. "/rc", ("PS1='$ '\n. %s\n. %s\ncd %s\n"):format(BASH_COMPLETION,
            root .. "/completion/etcdrun.bash", helper.q(ws)))
         return ("bash --noprofile --rcfile %s -i"):format(helper.q(ws .. "/rc"))
      end,
   },
   zsh = {
      needs = "command -v zsh",
      why = "needs zsh (apt-get install zsh)",
      prompt = "%",
      start = function(ws, root)
         helper.run(("mkdir -p %s/fn && cp %s/completion/_etcdrun %s/fn/"):format(q(ws), q(root), q(ws)))
         helper.write(ws .. "/.zshrc", ("PS1='%%%% '\nfpath=(%s/fn $fpath)\n"
            .. "autoload -U compinit && compinit -u -d %s/.zcompdump\ncd %s\n"):format(q(ws), q(ws), q(ws)))
         return ("env ZDOTDIR=%s zsh -i"):format(q(ws))
      end,
   },
}

for _, shell in ipairs({ "bash", "zsh" }) do
   local sh = SHELLS[shell]
   local P = "^%" .. sh.prompt .. " "

   describe(shell .. " completion", function()
      local ws, socket

      local function tmux(args)
         return helper.run(("tmux -S %s %s"):format(q(socket), args))
      end

      local function screen()
         local text = tmux("capture-pane -p -J -t sh")
         return (text:gsub("[ \t]+\n", "\n"):gsub("%s+$", ""))
      end

      -- Wait until the screen matches a Lua pattern (or fail showing it).
      local function wait_for(pattern)
         local deadline = os.time() + 15
         local text
         repeat
            text = screen()
            if text:find(pattern) then
               return text
            end
            os.execute("sleep 0.05")
         until os.time() > deadline
         error(("timed out waiting for %q; the screen:\n%s"):format(pattern, text))
      end

      local function keys(...)
         local args = {}
         for _, k in ipairs({ ... }) do
            args[#args + 1] = q(k)
         end
         local _, err, code = tmux("send-keys -t sh " .. table.concat(args, " "))
         assert(code == 0, err)
      end

      -- Type `line`, press Tab (twice: list the candidates), and return the
      -- screen once the line after the prompt matches `want`.
      local function complete(line, want, tabs)
         keys("C-l")
         wait_for("^%" .. sh.prompt .. "$")
         keys("-l", line)
         for _ = 1, tabs or 1 do
            keys("Tab")
         end
         local text = wait_for(want)
         keys("C-u")
         return text
      end

      setup(function()
         ws = helper.tmpdir()
         socket = ws .. "/tmux"
      end)

      teardown(function()
         tmux("kill-server")
      end)

      it("completes options, playbooks, host patterns and module names", function()
         if missing("command -v tmux") or missing(sh.needs) then
            pending("needs tmux; " .. sh.why)
            return
         end
         local bin = ws .. "/bin"
         local root = require("etcdrun.core.runtime").root
         helper.run(("mkdir -p %s && ln -s %s %s/etcdrun"):format(q(bin), q(helper.etcdrun), q(bin)))
         helper.write(ws .. "/inv", INVENTORY)
         helper.write(ws .. "/site.lua", 'return { play "p" { hosts = "all", tasks = {} } }\n')
         local cmd = ("env -i HOME=%s TERM=xterm PATH=%s:/usr/bin:/bin %s"):format(q(ws), q(bin), sh.start(ws, root))
         local _, err, rc = tmux("new-session -d -s sh -x 200 -y 50 " .. q(cmd))
         assert(rc == 0, err)
         wait_for("%" .. sh.prompt .. "$")
         complete("etcdrun --list-tas", P .. "etcdrun %-%-list%-tasks$")
         complete("etcdrun --host-key a", P .. "etcdrun %-%-host%-key accept%-new$")
         complete("etcdrun sit", P .. "etcdrun site%.lua$")
         complete("etcdrun -i inv webs", P .. "etcdrun %-i inv webservers$")
         complete("etcdrun -i inv -l webservers:be", P .. "etcdrun %-i inv %-l webservers:beta2$")
         complete("etcdrun --inventory=inv repl gam", P .. "etcdrun %-%-inventory=inv repl gamma3$")
         complete("etcdrun doc x509_ce", P .. "etcdrun doc x509_cert$")
         -- an installed playbook by its name: the Tab puts its path
         local installed = root:gsub("%p", "%%%0") .. "/playbooks/tls%-cluster%.lua$"
         complete("etcdrun -i inv tls", P .. "etcdrun %-i inv " .. installed)
         if shell ~= "bash" then
            return
         end
         -- two Tabs list every candidate: here the installed playbooks, repl, doc and the inventory's names
         local text = complete("etcdrun -i inv ", "tls%-cluster%.lua", 2)
         for _, w in ipairs({ "tls-cluster.lua", "rotate-ca.lua", "repl", "doc", "site.lua",
            "webservers", "dbservers", "alpha1", "gamma3" }) do
            assert.matches(w, text, 1, true)
         end
      end)
   end)
end
