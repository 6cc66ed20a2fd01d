local helper = require("support.helper")
local q = helper.q

describe("the etcdrun command", function()
   it("prints its version and every library's", function()
      local out, _, code = helper.run(q(helper.etcdrun) .. " --version")
      assert.are.equal(0, code)
      -- the one source: debian/changelog's version, and git describe in a checkout
      local base = helper.read("debian/changelog"):match("^etcdrun %(([^)]+)%)")
      local want = base
      local top = helper.run("git rev-parse --show-toplevel 2>/dev/null")
      if top:gsub("\n$", "") == helper.run("pwd -P"):gsub("\n$", "") then
         local tagged, _, rc = helper.run("git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null")
         want = rc == 0 and tagged:gsub("^v", ""):gsub("\n$", "")
            or base .. "-g" .. helper.run("git describe --always --dirty"):gsub("\n$", "")
      end
      assert.are.equal("etcdrun " .. want .. "\n", out:match("^[^\n]*\n"),
         "the binary's version is not the tree's: built before the last commit or edit? (make test rebuilds it)")
      for _, lib in ipairs({ "Lua 5%.4", "libssh", "OpenSSL 3", "libarchive", "libcurl" }) do
         assert.matches(lib, out)
      end
   end)

   it("prints help and exits 0", function()
      local out, _, code = helper.run(q(helper.etcdrun) .. " --help")
      assert.are.equal(0, code)
      assert.matches("usage: etcdrun", out)
   end)

   it("exits 2 on a usage error", function()
      local _, err, code = helper.run(q(helper.etcdrun) .. " --bogus")
      assert.are.equal(2, code)
      assert.matches("unknown option '%-%-bogus'", err)
      _, err, code = helper.run(q(helper.etcdrun))
      assert.are.equal(2, code)
      assert.matches("nothing to run", err)
      _, _, code = helper.run(q(helper.etcdrun) .. " -e")
      assert.are.equal(2, code)
   end)

   it("refuses --ask-secret for a name that is no variable, before asking anything", function()
      local ws = helper.tmpdir()
      helper.write(ws .. "/hosts", "[web]\na ansible_connection=local\n")
      helper.write(ws .. "/p.lua", 'return { play "p" { hosts = "web", tasks = {} } }')
      local _, err, code = helper.run(("cd %s && %s -i hosts p.lua --ask-secret 1bad </dev/null"):format(q(ws),
         q(helper.etcdrun)))
      assert.are.equal(2, code)
      assert.matches("--ask-secret 1bad: not a variable name", err, 1, true)
   end)

   it("runs -e code with the runtime loaded", function()
      local out, _, code = helper.etcdrun_e("print(etcdrun.fs.sha256('abc'):sub(1, 8), etcdrun.version)")
      assert.are.equal(0, code)
      assert.matches("^ba7816bf\t0%.", out)
   end)

   it("runs a script file with arg set as lua.c does", function()
      local dir = helper.tmpdir()
      local script = dir .. "/s.lua"
      helper.write(script, "print(arg[0], arg[1], arg[2], #arg, select('#', ...))\nreturn 0\n")
      local out, _, code = helper.run(q(helper.etcdrun) .. " " .. q(script) .. " one two")
      assert.are.equal(0, code)
      assert.are.equal(script .. "\tone\ttwo\t2\t2\n", out)
   end)

   it("reads a script from standard input", function()
      local out, _, code = helper.run("echo 'print(6*7)' | " .. q(helper.etcdrun) .. " -")
      assert.are.equal(0, code)
      assert.are.equal("42\n", out)
   end)

   it("reports a script error as file:line: message with a traceback, exit 1", function()
      local dir = helper.tmpdir()
      local script = dir .. "/bad.lua"
      helper.write(script, "local x = 1\nerror('it broke')\n")
      local _, err, code = helper.run(q(helper.etcdrun) .. " " .. q(script))
      assert.are.equal(1, code)
      assert.matches(script:gsub("%p", "%%%0") .. ":2: it broke", err)
      assert.matches("stack traceback:", err)
   end)

   it("reports a syntax error naming the file, exit 1", function()
      local dir = helper.tmpdir()
      local script = dir .. "/syntax.lua"
      helper.write(script, "x = = 1\n")
      local _, err, code = helper.run(q(helper.etcdrun) .. " " .. q(script))
      assert.are.equal(1, code)
      assert.matches("syntax%.lua:1:", err)
   end)

   it("reports a failing primitive naming operation, object and reason", function()
      local _, err, code = helper.etcdrun_e("etcdrun.fs.read('/nonexistent/etcd.conf')")
      assert.are.equal(1, code)
      assert.matches("fs%.read: No such file or directory %(/nonexistent/etcd%.conf%)", err)
   end)

   it("finds its Lua files after make install", function()
      local prefix = helper.tmpdir()
      local _, err, code = helper.run("make -s install PREFIX=" .. q(prefix) .. " >/dev/null")
      assert.are.equal(0, code, err)
      local out
      out, err, code = helper.run("cd / && " .. q(prefix .. "/bin/etcdrun") .. " -e 'print(package.path)'")
      assert.are.equal(0, code, err)
      -- the canonical directory, not <prefix>/bin/../share/etcdrun
      local share = require("etcdrun.core.fs").realpath(prefix) .. "/share/etcdrun"
      assert.matches("^" .. share:gsub("%p", "%%%0") .. "/lua/%?%.lua;", out)
   end)
end)

describe("etcdrun -e with the primitives together", function()
   it("downloads a tarball by checksum from a local server and extracts two named members", function()
      local dir = helper.tmpdir()
      local files = dir .. "/files"
      local root = "etcd-v3.4.23-linux-amd64"
      local _, err, made = helper.run(([[
         set -e
         mkdir -p %s/%s && cd %s
         printf 'etcd bin' > %s/etcd; printf 'ctl bin' > %s/etcdctl; printf 'docs' > %s/README.md
         chmod 755 %s/etcd %s/etcdctl
         tar czf etcd.tar.gz %s && sha256sum etcd.tar.gz > SHA256SUMS]])
         :format(q(files), root, q(files), root, root, root, root, root, root))
      assert.are.equal(0, made, err)
      local portfile = dir .. "/ports.json"
      local pid = helper.run(("/usr/bin/python3 spec/support/httpd.py --dir %s --port-file %s --log %s"
         .. " --lifetime 60 >/dev/null 2>&1 & echo $!"):format(q(files), q(portfile), q(dir .. "/log")))
         :match("%d+")
      finally(function()
         helper.run("kill " .. pid)
      end)
      local port
      for _ = 1, 100 do
         local s = helper.read(portfile)
         port = s and s:match('"http"%s*:%s*(%d+)')
         if port then
            break
         end
         helper.run("sleep 0.05")
      end
      assert.is_truthy(port, "test server did not start")
      local base = ("http://127.0.0.1:%s/files"):format(port)
      local code = ([[
         local r = etcdrun.http.download{ url = %q, sums_url = %q, dest = %q, cache = false }
         local got = etcdrun.archive.extract(r.path, %q, { strip_components = 1, include = { "etcd", "etcdctl" } })
         table.sort(got)
         print(r.sha256, table.concat(got, ","))
      ]]):format(base .. "/etcd.tar.gz", base .. "/SHA256SUMS", dir .. "/etcd.tar.gz", dir .. "/bin")
      local out, eerr, rc = helper.etcdrun_e(code)
      assert.are.equal(0, rc, eerr)
      local sum = helper.read(files .. "/SHA256SUMS"):match("^(%x+)")
      assert.are.equal(sum .. "\tetcd,etcdctl\n", out)
      assert.are.equal("etcd bin", helper.read(dir .. "/bin/etcd"))
      assert.are.equal("ctl bin", helper.read(dir .. "/bin/etcdctl"))
      assert.is_nil(helper.read(dir .. "/bin/README.md"))
      local mode = helper.run("stat -c %a " .. q(dir .. "/bin/etcd"))
      assert.are.equal("755\n", mode)
   end)
end)

describe("etcdrun PLAYBOOK.lua", function()
   local function setup_playbook(body)
      local dir = helper.tmpdir()
      helper.write(dir .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n")
      helper.write(dir .. "/vars.lua", "return { shade = 'from-file', n = 3 }\n")
      helper.write(dir .. "/site.lua", body)
      return dir
   end

   local SITE = [[
      return {
         play "cli" {
            hosts = "web",
            vars = { greeting = "play" },
            tasks = {
               task "record" {
                  copy = {
                     dest = function(v) return os.getenv("OUT") .. "/" .. v.inventory_hostname end,
                     content = function(v) return v.greeting .. " " .. v.shade .. " " .. v.n .. "\n" end,
                  },
               },
            },
         },
      }
   ]]

   it("takes -e key=value and -e @vars.lua, options after the file, and exits 0", function()
      local dir = setup_playbook(SITE)
      local out, err, code = helper.run(("cd %s && OUT=%s %s -i hosts site.lua -e greeting=extra -e @vars.lua -D")
         :format(q(dir), q(dir), q(helper.etcdrun)))
      assert.are.equal(0, code, out .. err)
      assert.are.equal("extra from-file 3\n", helper.read(dir .. "/a"))
      assert.matches("%+extra from%-file 3", out) -- -D after the file: the diff
      assert.matches("a%s+: ok=1%s+changed=1", out)
   end)

   it("changes nothing with --check, and reports the change", function()
      local dir = setup_playbook(SITE)
      local out, _, code = helper.run(("cd %s && OUT=%s %s -i hosts site.lua -e @vars.lua --check")
         :format(q(dir), q(dir), q(helper.etcdrun)))
      assert.are.equal(0, code)
      assert.is_nil(helper.read(dir .. "/a"))
      assert.matches("changed%s+a%s+record", out)
   end)

   it("exits 1 when a host fails and 2 on a bad option after the file", function()
      local dir = setup_playbook(SITE)
      local _, _, code = helper.run(("cd %s && %s -i hosts site.lua"):format(q(dir), q(helper.etcdrun)))
      assert.are.equal(1, code) -- OUT and shade are not set: the task fails
      local err
      _, err, code = helper.run(("cd %s && %s -i hosts site.lua --bogus"):format(q(dir), q(helper.etcdrun)))
      assert.are.equal(2, code)
      assert.matches("unknown option '%-%-bogus'", err)
   end)

   it("stops a playbook with a wrong module argument before touching any host, naming file:line", function()
      local dir = setup_playbook([[
         return { play "p" { hosts = "web", tasks = {
            task "t" { copy = { dest = "/tmp/x", contnet = "y" } },
         } } }
      ]])
      local out, err, code = helper.run(("cd %s && %s -i hosts site.lua"):format(q(dir), q(helper.etcdrun)))
      assert.are.equal(1, code)
      assert.matches("site%.lua:2: module 'copy': unknown argument 'contnet'", out .. err)
      assert.is_nil((out .. err):find("PLAY", 1, true))
   end)

   it("refuses a playbook with a field of the wrong type or a DSL mistake: file:line, exit 1, no traceback", function()
      local cases = {
         { 'return { play "p" { hosts = "web",\n tasks = "nope" } }',
            "^etcdrun: site%.lua:1: play 'p': tasks must be a list, got a string %(\"nope\"%)\n$" },
         { 'return { play "p" { hosts = "web", max_fail_percentage = "ten",\n tasks = {} } }',
            "^etcdrun: site%.lua:1: play 'p': max_fail_percentage must be a number from 0 to 100" },
         { 'return {\n play "p" { hosts = "web", tasks = { "x" } } }',
            "^etcdrun: site%.lua:2: play 'p': tasks%[1%] is a string %(\"x\"%), expected a task" },
         { 'return { play "p" { hosts = "web", tasks = {\n'
            .. ' task "t" { command = { cmd = "true" }, retries = "3" } } } }',
            "^etcdrun: site%.lua:2: task 't': retries must be an integer >= 0" },
         { 'return { play "p" { hosts = "web", tasks = {\n task(5) { command = { cmd = "true" } } } } }',
            "^etcdrun: site%.lua:2: task needs a name string" },
         { 'return { play "p" { hosts = "web", tasks = {\n task "t" "oops" } } }',
            "^etcdrun: site%.lua:2: task \"t\" needs a table body" },
         { 'return { play "p" { hosts = "web", tasks = {\n task "t" { command = { cmd = greting } } } } }',
            "^etcdrun: site%.lua:2: undefined global 'greting'\n$" },
      }
      for _, c in ipairs(cases) do
         local dir = setup_playbook(c[1] .. "\n")
         local out, err, code = helper.run(("cd %s && %s -i hosts site.lua"):format(q(dir), q(helper.etcdrun)))
         assert.are.equal(1, code, c[1])
         assert.matches(c[2], err)
         assert.is_nil(err:find("traceback", 1, true), err)
         assert.is_nil(err:find("playbook.lua", 1, true), err)
         assert.is_nil(out:find("PLAY", 1, true), out)
      end
   end)
end)

describe("Ctrl-C during a playbook", function()
   -- Runs the playbook in the background, waits for `started` to appear (the
   -- long task is running), sends SIGINT, and returns stdout, stderr, exit code.
   local function interrupt(dir, args)
      local script = ([[
         cd %s || exit 99
         %s -i hosts site.lua %s >out 2>err &
         pid=$!
         i=0
         while [ ! -s started ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
         sleep 0.2
         kill -INT $pid
         wait $pid
         echo $? >rc
      ]]):format(q(dir), q(helper.etcdrun), args or "")
      helper.run(script)
      return helper.read(dir .. "/out") or "", helper.read(dir .. "/err") or "",
         tonumber(helper.read(dir .. "/rc"))
   end

   local function setup(body)
      local dir = helper.tmpdir()
      helper.write(dir .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n")
      helper.write(dir .. "/site.lua", body:gsub("DIR", dir))
      return dir
   end

   local COMMAND = [[
      return { play "p" { hosts = "a", tasks = {
         task "first" { command = { cmd = "true" } },
         task "long" { command = { cmd = "sh -c 'echo $$ > DIR/started; exec sleep 30'" }, notify = "h" },
         task "after" { command = { cmd = "touch DIR/after" } },
      }, handlers = { handler "h" { command = { cmd = "touch DIR/handler" } } } } }
   ]]

   it("kills the command in flight, prints an interrupted recap and exits 130, no traceback", function()
      local dir = setup(COMMAND)
      local t0 = os.time()
      local out, err, code = interrupt(dir)
      assert.are.equal(130, code, out .. err)
      assert.is_true(os.time() - t0 < 20) -- not the 30 s of the command
      assert.matches("changed%s+a%s+first", out)
      assert.matches("failed%s+a%s+long .*interrupted", out)
      assert.matches("PLAY RECAP\na%s+: ok=1%s+changed=1%s+unreachable=0%s+failed=1", out)
      assert.matches("\nINTERRUPTED %(Ctrl%-C%) after [%d.]+ s: the rest did not run\n$", out)
      assert.is_nil(helper.read(dir .. "/after"))
      assert.is_nil(helper.read(dir .. "/handler"))
      local text = out .. err
      assert.is_nil(text:lower():find("traceback", 1, true), text)
      assert.is_nil(text:lower():find("stack", 1, true), text)
      -- the command was killed, not left running
      local pid = helper.read(dir .. "/started"):match("%d+")
      local _, _, alive = helper.run("kill -0 " .. pid .. " 2>/dev/null")
      assert.are_not.equal(0, alive)
   end)

   it("stops hosts working in parallel and ends --json with run_end interrupted", function()
      local dir = setup([[
         return { play "p" { hosts = "web", tasks = {
            task "nap" { run = function(_, v)
               local f = io.open("DIR/started." .. v.inventory_hostname, "w")
               f:write("x")
               f:close()
               if v.inventory_hostname == "b" then
                  io.open("DIR/started", "w"):write("x")
               end
               require("etcdrun.sched").sleep(30)
            end },
            task "after" { command = { cmd = "touch DIR/after" } },
         } } }
      ]])
      local out, err, code = interrupt(dir, "--json")
      assert.are.equal(130, code, out .. err)
      local events = {}
      for line in out:gmatch("[^\n]+") do
         events[#events + 1] = require("cjson").decode(line)
      end
      local doc = require("support.jsonschema").load_doc("docs/events.md")
      for _, e in ipairs(events) do
         local ok, verr = require("support.jsonschema").validate_event(doc, e)
         assert.is_true(ok, verr)
      end
      local last, recap = events[#events], events[#events - 1]
      assert.are.equal("run_end", last.event)
      assert.is_true(last.interrupted)
      assert.are.equal(130, last.exit)
      assert.are.equal("recap", recap.event)
      assert.is_true(recap.interrupted)
      assert.is_true(recap.failed)
      for _, h in ipairs({ "a", "b" }) do
         assert.are.equal(1, recap.hosts[h].failed)
      end
      local nap = 0
      for _, e in ipairs(events) do
         if e.event == "task_result" and e.task == "nap" then
            nap = nap + 1
            assert.are.equal("failed", e.status)
            assert.are.equal("interrupted (Ctrl-C)", e.msg)
         end
      end
      assert.are.equal(2, nap)
      assert.is_nil(helper.read(dir .. "/after"))
      assert.is_nil((out .. err):lower():find("traceback", 1, true), out .. err)
   end)

   it("says so, exit 130 and no traceback, when Ctrl-C comes while the playbook loads", function()
      local dir = setup([[
         io.open("DIR/started", "w"):write("x")
         local t = os.clock()
         while os.clock() - t < 20 do end
         return { play "p" { hosts = "a", tasks = { task "t" { command = { cmd = "touch DIR/after" } } } } }
      ]])
      local out, err, code = interrupt(dir)
      assert.are.equal(130, code, out .. err)
      assert.matches("etcdrun: interrupted %(Ctrl%-C%) in site%.lua\n$", err)
      assert.is_nil((out .. err):lower():find("traceback", 1, true), out .. err)
      assert.is_nil(helper.read(dir .. "/after"))
   end)
end)

describe("etcdrun PATTERN -a COMMAND", function()
   local function setup()
      local dir = helper.tmpdir()
      helper.write(dir .. "/hosts", "[web]\na ansible_connection=local\nb ansible_connection=local\n")
      return dir
   end

   it("refuses a malformed pattern or --limit with exit 2, naming it, no traceback", function()
      local dir = setup()
      local cases = {
         { "'web['", "host pattern 'web%[': '%[' in 'web%[' is not closed" },
         { "'!'", "host pattern '!': '!' needs a name after it" },
         { "'&'", "host pattern '&': '&' needs a name after it" },
         { "web -l 'a:&'", "limit: host pattern 'a:&': '&' needs a name after it" },
         { "web --limit 'web['", "limit: host pattern 'web%[': '%[' in 'web%[' is not closed" },
         -- and a playbook's --limit, checked before any host is touched
         { "site.lua -l 'x:!'", "limit: host pattern 'x:!': '!' needs a name after it", playbook = true },
      }
      helper.write(dir .. "/site.lua", 'return { play "p" { hosts = "web", tasks = {\n'
         .. ' task "t" { command = { cmd = "touch ran" } } } } }\n')
      for _, c in ipairs(cases) do
         local out, err, code = helper.run(("cd %s && %s -i hosts %s %s"):format(q(dir),
            q(helper.etcdrun), c[1], c.playbook and "" or "-a 'touch ran'"))
         assert.are.equal(2, code, c[1] .. ": " .. out .. err)
         assert.matches("^etcdrun: " .. c[2], err)
         assert.is_nil(err:find("traceback", 1, true), err)
         assert.is_nil(err:find("%.lua:%d+:"), err)
         assert.is_nil(helper.read(dir .. "/ran"))
      end
   end)

   it("stops on Ctrl-C with each host's outcome, exit 130, the command killed, no traceback", function()
      local dir = setup()
      helper.run(([[
         cd %s || exit 99
         %s -i hosts web -a 'echo $$ > started.$(basename $PWD); exec sleep 30' >out 2>err &
         pid=$!
         i=0
         while ! ls started.* >/dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
         sleep 0.2
         kill -INT $pid
         wait $pid
         echo $? >rc
      ]]):format(q(dir), q(helper.etcdrun)))
      local out, err = helper.read(dir .. "/out"), helper.read(dir .. "/err")
      assert.are.equal("130\n", helper.read(dir .. "/rc"), out .. err)
      assert.matches("^a | FAILED | .*interrupted", out)
      assert.matches("\nb | FAILED | .*interrupted", out)
      assert.matches("etcdrun: interrupted %(Ctrl%-C%)", err)
      assert.is_nil((out .. err):lower():find("traceback", 1, true), out .. err)
      local pid = helper.run("cat " .. q(dir) .. "/started.*"):match("%d+")
      local _, _, alive = helper.run("kill -0 " .. pid .. " 2>/dev/null")
      assert.are_not.equal(0, alive)
   end)

   it("runs ansible_connection=local hosts on the controller, as a playbook does", function()
      local dir = setup()
      local out, err, code = helper.run(("cd %s && %s -i hosts web -l b -a 'echo ran-on-$(hostname) > $PWD/ran.b'")
         :format(q(dir), q(helper.etcdrun)))
      assert.are.equal(0, code, out .. err)
      assert.matches("^b | ok | rc=0", out)
      assert.matches("1 hosts: 1 ok, 0 failed, 0 unreachable", err)
      local hostname = helper.run("hostname"):gsub("%s+$", "")
      assert.are.equal("ran-on-" .. hostname .. "\n", helper.read(dir .. "/ran.b"))
   end)
end)
