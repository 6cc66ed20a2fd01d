-- The playbook engine, on hosts the controller plays itself
-- (ansible_connection=local), so ordering, barriers, serial, handlers,
-- precedence and check mode are tested without the lab. The modules the
-- tasks call are real (a site module from spec/fixtures/playbooks/modules).
local helper = require("support.helper")
local jsonschema = require("support.jsonschema")
local playbook = require("etcdrun.playbook")
local runner = require("etcdrun.runner")
local inventory = require("etcdrun.inventory")
local output = require("etcdrun.output")
local cjson = require("cjson")

local FIX = "spec/fixtures/playbooks"
local dsl = playbook.dsl()
local play, task, handler, controller, barrier, flush = dsl.play, dsl.task, dsl.handler, dsl.controller,
   dsl.barrier, dsl.flush_handlers
local secret = dsl.secret

local inv = assert(inventory.load(FIX .. "/hosts_local"))

local function lfs_root()
   return os.getenv("PWD") or "."
end

-- Run plays built in the spec; returns exit code, captured output, and the
-- events when json = true.
local function run(plays, opts)
   opts = opts or {}
   local pb = assert(playbook.from_value(plays, FIX .. "/inline.lua"))
   local dir = helper.tmpdir()
   local path = dir .. "/out"
   local f = assert(io.open(path, "w"))
   local out = output.new({ stream = f, json = opts.json, diff = opts.diff, verbose = opts.verbose, color = false })
   local code = runner.run(pb, inv, {
      out = out, check = opts.check, diff = opts.diff, extra = opts.extra, limit = opts.limit,
      tags = opts.tags, skip_tags = opts.skip_tags, forks = opts.forks,
   })
   f:close()
   local text = helper.read(path)
   local events
   if opts.json then
      events = {}
      for line in text:gmatch("[^\n]+") do
         events[#events + 1] = cjson.decode(line)
      end
   end
   return code, text, events
end

describe("playbook runner", function()
   local dir
   before_each(function()
      dir = helper.tmpdir()
   end)

   it("runs each host's tasks in order, hosts in parallel", function()
      local log = {}
      local inside, most = 0, 0
      local function step(name)
         return task(name) {
            run = function(_, v)
               log[#log + 1] = v.inventory_hostname .. ":" .. name
               -- count how many hosts are inside a task at the same moment
               inside = inside + 1
               most = math.max(most, inside)
               require("etcdrun.sched").sleep(0.05)
               inside = inside - 1
            end,
         }
      end
      local code = run({ play "order" { hosts = "web", tasks = { step("one"), step("two"), step("three") } } })
      assert.are.equal(0, code)
      for _, h in ipairs({ "a", "b", "c" }) do
         local seq = {}
         for _, e in ipairs(log) do
            local host, name = e:match("^(%w+):(%w+)$")
            if host == h then
               seq[#seq + 1] = name
            end
         end
         assert.are.same({ "one", "two", "three" }, seq)
      end
      -- all three hosts were in a task at once: they run in parallel
      assert.are.equal(3, most)
   end)

   it("holds every host at a barrier until all have reached it", function()
      local log = {}
      local function step(name, delay_a)
         return task(name) {
            run = function(_, v)
               if v.inventory_hostname == "a" and delay_a then
                  require("etcdrun.sched").sleep(0.1)
               end
               log[#log + 1] = name
            end,
         }
      end
      assert.are.equal(0, run({ play "barrier" {
         hosts = "web", tasks = { step("before", true), barrier "sync", step("after") } } }))
      assert.are.same({ "before", "before", "before", "after", "after", "after" }, log)
   end)

   it("runs a controller step once, between segments, sharing what it registers", function()
      local count = 0
      local seen = {}
      assert.are.equal(0, run({ play "ctl" {
         hosts = "web",
         tasks = {
            controller "make the CA" {
               run = function(ctx)
                  count = count + 1
                  return { changed = true, msg = "made", serial = ctx.host.name }
               end,
               register = "ca",
            },
            task "use it" {
               run = function(_, v)
                  seen[#seen + 1] = v.ca.serial
               end,
            },
         },
      } }))
      assert.are.equal(1, count)
      assert.are.same({ "controller", "controller", "controller" }, seen)
   end)

   it("works through serial batches one after another", function()
      local log = {}
      assert.are.equal(0, run({ play "rolling" {
         hosts = "web",
         serial = 1,
         tasks = {
            task "stop" { run = function(_, v) log[#log + 1] = "stop " .. v.inventory_hostname end },
            task "start" { run = function(_, v) log[#log + 1] = "start " .. v.inventory_hostname end },
         },
      } }))
      assert.are.same({ "stop a", "start a", "stop b", "start b", "stop c", "start c" }, log)
   end)

   it("runs handlers once at the end, only on hosts that notified, also after a failure", function()
      local ran = {}
      local code, text = run({ play "handlers" {
         hosts = "web",
         tasks = {
            task "write" {
               marker = { path = function(v) return dir .. "/" .. v.inventory_hostname end,
                  text = function(v) return v.inventory_hostname == "c" and "" or "new" end },
               notify = "restart",
            },
            task "write again" { marker = { path = function(v) return dir .. "/" .. v.inventory_hostname end,
               text = function(v) return v.inventory_hostname == "c" and "" or "new" end }, notify = "restart" },
            task "b breaks" {
               run = function(_, v)
                  if v.inventory_hostname == "b" then
                     return nil, "b broke after notifying"
                  end
               end,
            },
         },
         handlers = {
            handler "restart" {
               run = function(_, v)
                  ran[#ran + 1] = v.inventory_hostname
                  return { changed = true }
               end,
            },
         },
      } })
      assert.are.equal(1, code)
      table.sort(ran)
      -- c wrote nothing new (its file already held ""? no: it did not exist) -> see below
      assert.are.same({ "a", "b", "c" }, ran)
      assert.matches("failed%s+b%s+b breaks %(%d.%d+s%) %[run%]: b broke after notifying", text)
      -- a second run changes nothing, so no handler runs
      ran = {}
      run({ play "handlers" {
         hosts = "web",
         tasks = { task "write" { marker = { path = function(v) return dir .. "/" .. v.inventory_hostname end,
            text = function(v) return v.inventory_hostname == "c" and "" or "new" end }, notify = "restart" } },
         handlers = { handler "restart" { run = function(_, v) ran[#ran + 1] = v.inventory_hostname end } },
      } })
      assert.are.same({}, ran)
   end)

   it("replays a handler left pending by a run that was killed", function()
      local pbdir = helper.tmpdir()
      local state = helper.tmpdir()
      helper.write(pbdir .. "/hosts", "[web]\na ansible_connection=local\n")
      local pb = pbdir .. "/site.lua"
      helper.write(pb, ([[
         return {
            play "killed" {
               hosts = "web",
               tasks = {
                  task "config" { marker = { path = %q, text = "v2" }, notify = "restart" },
                  task "die" {
                     run = function()
                        if os.getenv("DIE") then os.exit(9) end
                     end,
                  },
               },
               handlers = {
                  handler "restart" { marker = { path = %q, text = "restarted" } },
               },
            },
         }
      ]]):format(dir .. "/config", dir .. "/restarted"))
      -- the fixture's site module (marker), next to this playbook
      assert(require("etcdrun.core.fs").symlink(lfs_root() .. "/" .. FIX .. "/modules", pbdir .. "/modules"))
      local cmd = ("cd %s && XDG_STATE_HOME=%s %s -i hosts site.lua"):format(helper.q(pbdir), helper.q(state),
         helper.q(helper.etcdrun))
      local _, _, code = helper.run(cmd:gsub("XDG_STATE_HOME", "DIE=1 XDG_STATE_HOME"))
      assert.are.equal(9, code)
      assert.are.equal("v2", helper.read(dir .. "/config"))
      assert.is_nil(helper.read(dir .. "/restarted"))
      local out, err
      out, err, code = helper.run(cmd)
      assert.are.equal(0, code, out .. err)
      assert.matches("handler 'restart' is pending from an interrupted run", out)
      assert.are.equal("restarted", helper.read(dir .. "/restarted"))
      -- and only once
      require("etcdrun.core.fs").remove(dir .. "/restarted")
      helper.run(cmd)
      assert.is_nil(helper.read(dir .. "/restarted"))
   end)

   it("flushes handlers at flush_handlers", function()
      local log = {}
      run({ play "flush" {
         hosts = "a",
         tasks = {
            task "change" { run = function() log[#log + 1] = "task1"; return { changed = true } end, notify = "h" },
            flush "now",
            task "after" { run = function() log[#log + 1] = "task2" end },
         },
         handlers = { handler "h" { run = function() log[#log + 1] = "handler" end } },
      } })
      assert.are.same({ "task1", "handler", "task2" }, log)
   end)

   it("applies variable precedence: inventory < play vars < registered < extra vars", function()
      local got = {}
      run({ play "vars" {
         hosts = "web",
         vars = { shade = "play", only_play = "p" },
         tasks = {
            task "read" {
               run = function(_, v)
                  got[v.inventory_hostname] = { v.color, v.shade, v.only_play, v("missing", "dflt") }
               end,
            },
            task "reg" { run = function() return { changed = false, msg = "registered" } end, register = "shade" },
            task "read again" { run = function(_, v) got[v.inventory_hostname][5] = v.shade.msg end },
         },
      } })
      assert.are.same({ "blue", "play", "p", "dflt", "registered" }, got.a)
      run({ play "vars" {
         hosts = "a", vars = { shade = "play" },
         tasks = { task "read" { run = function(_, v) got.extra = v.shade end } },
      } }, { extra = { shade = "extra" } })
      assert.are.equal("extra", got.extra)
      -- group vars: the child group a_only wins over web for host a
      run({ play "inv" { hosts = "web", tasks = { task "read" { run = function(_, v) got[v.inventory_hostname] =
         v.shade end } } } })
      assert.are.same({ "child", "group", "group" }, { got.a, got.b, got.c })
   end)

   it("fails a task that reads an undefined variable, naming it and the host", function()
      local code, text = run({ play "undef" { hosts = "a", tasks = {
         task "bad" { run = function(_, v) return v.no_such_var end } } } })
      assert.are.equal(1, code)
      assert.matches("undefined variable 'no_such_var' %(host a%)", text)
   end)

   it("renders {{ }} arguments and fails template errors with file:line", function()
      local code = run({ play "tpl" { hosts = "web", vars = { greeting = "hello" }, tasks = {
         task "w" { marker = { path = dir .. "/{{ inventory_hostname }}.txt", text = "{{ greeting }} {{ color }}" } },
      } } })
      assert.are.equal(0, code)
      assert.are.equal("hello blue", helper.read(dir .. "/b.txt"))
      local text
      code, text = run({ play "tpl" { hosts = "a", tasks = {
         task "w" { marker = { path = dir .. "/x", text = "{{ nope }}" } } } } })
      assert.are.equal(1, code)
      assert.matches("failed%s+a%s+w %(%d.%d+s%) %[marker%]: template%.render: [%w/_]*runner_spec%.lua:%d+:1:4: "
         .. "undefined variable 'nope'", text)
   end)

   it("never writes in check mode, reports what would change, and shows the diff", function()
      local code, text = run({ play "check" { hosts = "web", tasks = {
         task "w" { marker = { path = dir .. "/{{ inventory_hostname }}", text = "content\n" } },
      } } }, { check = true, diff = true })
      assert.are.equal(0, code)
      assert.are.same({}, require("etcdrun.core.fs").list(dir))
      assert.matches("changed%s+a%s+w", text)
      assert.matches("%+content", text)
      assert.matches("a%s+: ok=1%s+changed=1", text)
   end)

   it("skips on when, retries until a condition holds, and loops", function()
      local tries = 0
      local items = {}
      local code, text = run({ play "flow" { hosts = "a", tasks = {
         task "skipped" { run = function() error("must not run") end, when = false },
         task "retry" {
            run = function()
               tries = tries + 1
               return { changed = false, n = tries }
            end,
            retries = 5, delay = 0.01, until_ok = function(_, r) return r.n >= 3 end, register = "r",
         },
         task "loop" {
            run = function(_, v) items[#items + 1] = v.item .. v.r.n end,
            loop = { "x", "y" },
         },
      } } })
      assert.are.equal(0, code)
      assert.are.equal(3, tries)
      assert.are.same({ "x3", "y3" }, items)
      -- a `when` skip is counted, not printed (-v prints it)
      assert.is_nil(text:match("skipped%s+a%s+skipped"))
      assert.matches("a%s+: ok=2%s+changed=0%s+unreachable=0%s+failed=0%s+skipped=1", text)
      code, text = run({ play "never" { hosts = "a", tasks = {
         task "give up" { run = function() return { changed = false } end, retries = 2, delay = 0.01,
            until_ok = function() return false end },
      } } })
      assert.are.equal(1, code)
      assert.matches("condition not met after 3 attempts", text)
   end)

   it("selects tasks by tags and skip-tags", function()
      local log = {}
      local plays = { play "tags" { hosts = "a", tasks = {
         task "one" { run = function() log[#log + 1] = "one" end, tags = "config" },
         task "two" { run = function() log[#log + 1] = "two" end, tags = { "install" } },
         task "three" { run = function() log[#log + 1] = "three" end, tags = "always" },
      } } }
      run(plays, { tags = { "config" } })
      assert.are.same({ "one", "three" }, log)
      log = {}
      run(plays, { skip_tags = { "config" } })
      assert.are.same({ "two", "three" }, log)
   end)

   it("stops every host after a failure with any_errors_fatal", function()
      local after = {}
      local code = run({ play "fatal" { hosts = "web", any_errors_fatal = true, tasks = {
         task "b fails" { run = function(_, v) if v.inventory_hostname == "b" then return nil, "boom" end end },
         barrier "b",
         task "after" { run = function(_, v) after[#after + 1] = v.inventory_hostname end },
      } } })
      assert.are.equal(1, code)
      assert.are.same({}, after)
   end)

   it("hides secrets in messages, diffs and JSON events", function()
      local token = "s3cr3t-T0KEN-value"
      local _, text = run({ play "secret" { hosts = "a", tasks = {
         task "w" { marker = { path = dir .. "/s", text = "x", token = token } },
         task "msg" { run = function(_, v) return { changed = false, msg = "the password is " .. v.pw } end },
      }, vars = { pw = secret("hunter2-pass") } } }, { verbose = 1 })
      assert.is_nil(text:find(token, 1, true))
      assert.is_nil(text:find("hunter2-pass", 1, true))
      assert.matches("written with <secret>", text)
      assert.matches("the password is <secret>", text)
      local _, json = run({ play "secret" { hosts = "a", tasks = {
         task "msg" { run = function(_, v) return { changed = false, msg = "pw " .. v.pw } end },
      }, vars = { pw = secret("hunter2-pass") } } }, { json = true })
      assert.is_nil(json:find("hunter2-pass", 1, true))
      assert.matches("pw <secret>", json)
   end)

   it("fails the host, the recap, the JSON and the exit status when user code raises, naming file:line", function()
      local function boom(what)
         return function()
            error("boom in " .. what)
         end
      end
      local ok_run = function() return { changed = true } end
      local cases = {
         { "failed_when", task "t" { run = ok_run, failed_when = boom("failed_when") } },
         { "changed_when", task "t" { run = ok_run, changed_when = boom("changed_when") } },
         { "when", task "t" { run = ok_run, when = boom("when") } },
         { "until_ok", task "t" { run = ok_run, until_ok = boom("until_ok"), retries = 3, delay = 0.01 } },
         { "loop", task "t" { run = ok_run, loop = boom("loop") } },
         { "loop_label", task "t" { run = ok_run, loop = { "x" }, loop_label = boom("loop_label") } },
         { "loop_label", task "t" { run = ok_run, loop = { "x", "y" }, loop_label = boom("loop_label") } },
         { nil, task "t" { run = boom("run") } },
         { nil, task "t" { marker = { path = dir .. "/m", text = boom("an argument") } } },
         { nil, task "t" { run = ok_run, notify = "h" }, handler = handler "h" { run = boom("a handler") } },
         { nil, controller "t" { run = boom("a controller step") } },
      }
      for _, c in ipairs(cases) do
         local what = c[1] or c[2].run and "run" or "x"
         local ran_after = false
         local code, _, events = run({ play "raises" {
            hosts = "a",
            tasks = { c[2], task "after" { run = function() ran_after = true end } },
            handlers = { c.handler },
         } }, { json = true })
         assert.are.equal(1, code, what)
         local recap = events[#events]
         assert.are.equal("recap", recap.event)
         assert.is_true(recap.failed, what)
         local host = c[2]._barrier and "controller" or "a"
         assert.are.equal(1, recap.hosts[host].failed, what)
         if not c.handler then
            assert.is_false(ran_after, what) -- the rest is skipped on that host
         end
         local failed
         for _, e in ipairs(events) do
            if e.event:match("_result$") and e.status == "failed" then
               failed = e
            end
         end
         assert.is_table(failed, what)
         local where = ("[%%w/_]*runner_spec%%.lua:%d: "):format(failed.line)
         assert.matches((c[1] and c[1] .. ": " or "") .. where .. ".*boom in ", failed.msg)
         local all = cjson.encode(events)
         assert.is_nil(all:find("traceback", 1, true), all)
         assert.is_nil(all:find("runner.lua", 1, true), all)
         assert.is_nil(all:find("internal error", 1, true), all)
      end
   end)

   it("fails the host when its coroutine dies: no silent success", function()
      local code, text = run({ play "dies" { hosts = "a", tasks = {
         task "odd yield" { run = function() coroutine.yield("not a job") end },
         task "after" { run = function() end },
      } } })
      assert.are.equal(1, code)
      assert.matches("failed%s+a%s+odd yield .*scheduler: a task yielded a string, which is not a job", text)
      assert.matches("a%s+: ok=0%s+changed=0%s+unreachable=0%s+failed=1", text)
      assert.is_nil(text:find("traceback", 1, true))
   end)

   it("emits JSON events that validate against docs/events.md", function()
      local doc = jsonschema.load_doc("docs/events.md")
      local code, _, events = run({ play "json" { hosts = "web", tasks = {
         task "w" { marker = { path = dir .. "/{{ inventory_hostname }}", text = "t" } },
         task "skip" { run = function() end, when = false },
         task "fail on c" { run = function(_, v) if v.inventory_hostname == "c" then return nil, "c fails" end end },
      }, handlers = {} } }, { json = true, diff = true })
      assert.are.equal(1, code)
      local kinds = {}
      for _, e in ipairs(events) do
         local ok, err = jsonschema.validate_event(doc, e)
         assert.is_true(ok, err)
         kinds[e.event] = (kinds[e.event] or 0) + 1
      end
      assert.are.equal(1, kinds.run_start)
      assert.are.equal(1, kinds.play_start)
      assert.are.equal(9, kinds.task_result)
      assert.are.equal(9, kinds.task_start)
      assert.are.equal(1, kinds.recap)
      local recap = events[#events]
      assert.are.equal("recap", recap.event)
      assert.are.same({ "a", "b", "c" }, recap.order)
      assert.are.equal(1, recap.hosts.c.failed)
      assert.is_true(recap.failed)
      -- the validator itself rejects a wrong event
      assert.is_nil(jsonschema.validate_event(doc, { schema = "etcdrun.events/1", event = "recap", time = 1 }))
   end)
end)

describe("loading playbooks", function()
   local function load_err(name)
      local pb, err = playbook.load(FIX .. "/" .. name)
      assert.is_nil(pb)
      return err
   end

   it("reports a Lua syntax error with file:line", function()
      assert.matches("syntax_error%.lua:%d+:", load_err("syntax_error.lua"))
   end)

   it("reports a wrong module argument with file:line before running anything", function()
      local err = load_err("bad_arg.lua")
      assert.matches("bad_arg%.lua:6: module 'marker': unknown argument 'txet'", err)
   end)

   it("reports an undefined global with file:line", function()
      assert.matches("undefined_global%.lua:6: undefined global 'greting'", load_err("undefined_global.lua"))
   end)

   it("explains modes written as Lua numbers", function()
      assert.matches("write modes as strings, e%.g%. '0644'", load_err("bad_mode.lua"))
   end)

   it("refuses a site module that takes a built-in's name", function()
      local err = load_err("clash/site.lua")
      assert.matches("site module .*clash/modules/debug%.lua has the name of the built%-in module", err)
   end)

   it("checks the type of every play, task and handler field at load time, naming file:line", function()
      local ok_task = function(extra)
         local t = { run = function() end }
         for k, v in pairs(extra) do
            t[k] = v
         end
         return task "t" (t)
      end
      local cases = {
         { play "p" { hosts = "web", tasks = "nope" }, "play 'p': tasks must be a list, got a string (\"nope\")" },
         { play "p" { hosts = "web", tasks = { "x" } },
            "play 'p': tasks[1] is a string (\"x\"), expected a task (task \"name\" { ... })" },
         { play "p" { hosts = "web", tasks = { ok_task({}), 42 } }, "play 'p': tasks[2] is a number (42)" },
         { play "p" { hosts = "web", tasks = {}, handlers = { true } }, "play 'p': handlers[1] is a boolean (true)" },
         { play "p" { hosts = "web", tasks = {}, handlers = "h" }, "play 'p': handlers must be a list" },
         { play "p" { hosts = "web", max_fail_percentage = "ten", tasks = {} },
            "play 'p': max_fail_percentage must be a number from 0 to 100, got a string (\"ten\")" },
         { play "p" { hosts = "web", max_fail_percentage = 150, tasks = {} }, "max_fail_percentage must be a number" },
         { play "p" { hosts = "web", vars = "x", tasks = {} }, "play 'p': vars must be a table of name = value" },
         { play "p" { hosts = "web", vars = { "positional" }, tasks = {} }, "vars must be a table of name = value" },
         { play "p" { hosts = "web", any_errors_fatal = "yes", tasks = {} },
            "play 'p': any_errors_fatal must be true or false, got a string (\"yes\")" },
         { play "p" { hosts = "web", become = 1, tasks = {} }, "play 'p': become must be true or false" },
         { play "p" { hosts = "web", gather_facts = "no", tasks = {} },
            "play 'p': gather_facts must be true or false" },
         { play "p" { hosts = "web", tags = { 1 }, tasks = {} },
            "play 'p': tags must be a string or a list of strings" },
         { play "p" { hosts = 5, tasks = {} },
            "play 'p' needs hosts = \"pattern\" (or a list of patterns), got a number" },
         { play "p" { hosts = { "web", 2 }, tasks = {} }, "play 'p' needs hosts" },
         { play "p" { hosts = "web[", tasks = {} },
            "play 'p': hosts: host pattern 'web[': '[' in 'web[' is not closed" },
         { play "p" { hosts = ",,", tasks = {} },
            "play 'p': hosts: host pattern ',,' is empty: name a group or host (or all)" },
         { play "p" { hosts = "web", tasks = { ok_task({ retries = "3" }) } },
            "task 't': retries must be an integer >= 0, got a string (\"3\")" },
         { play "p" { hosts = "web", tasks = { ok_task({ retries = -1 }) } }, "retries must be an integer >= 0" },
         { play "p" { hosts = "web", tasks = { ok_task({ delay = "1s" }) } },
            "task 't': delay must be a number of seconds" },
         { play "p" { hosts = "web", tasks = { ok_task({ timeout = 0 }) } },
            "task 't': timeout must be a number of seconds > 0" },
         { play "p" { hosts = "web", tasks = { ok_task({ loop = "abc" }) } },
            "task 't': loop must be a list of items or a function(vars) returning one" },
         { play "p" { hosts = "web", tasks = { ok_task({ loop = { a = 1 } }) } }, "task 't': loop must be a list" },
         { play "p" { hosts = "web", tasks = { ok_task({ loop = { 1 }, loop_label = "item" }) } },
            "task 't': loop_label must be a function" },
         { play "p" { hosts = "web", tasks = { ok_task({ ignore_errors = "yes" }) } },
            "task 't': ignore_errors must be true or false" },
         { play "p" { hosts = "web", tasks = { ok_task({ run_once = 1 }) } },
            "task 't': run_once must be true or false" },
         { play "p" { hosts = "web", tasks = { ok_task({ check_mode = "no" }) } },
            "task 't': check_mode must be true or false" },
         { play "p" { hosts = "web", tasks = { ok_task({ become = "root" }) } },
            "task 't': become must be true or false" },
         { play "p" { hosts = "web", tasks = { ok_task({ tags = { x = 1 } }) } },
            "task 't': tags must be a string or a list" },
         { play "p" { hosts = "web", tasks = { ok_task({ name = 7 }) } }, "task '7': name must be a string" },
         { play "p" { hosts = "web", tasks = { ok_task({ when = "x == 1" }) } },
            "task 't': when must be a function(vars, result) or a boolean" },
         { play "p" { hosts = "web", tasks = { ok_task({ notify = { 1 } }) } },
            "task 't': notify must be a string or a list" },
         { play "p" { hosts = "web", tasks = {}, handlers = { handler "h" { run = function() end, listen = 3 } } },
            "handler 'h': listen must be a string or a list of strings, got a number (3)" },
      }
      for _, c in ipairs(cases) do
         local pb, err = playbook.from_value({ c[1] }, FIX .. "/inline.lua")
         assert.is_nil(pb, c[2])
         assert.is_truthy(err:find(c[2], 1, true), err .. "\n  expected: " .. c[2])
         assert.matches("^[%w/_]*runner_spec%.lua:%d+: ", err)
      end
      -- a playbook that is not a list of plays names the file
      local pb, err = playbook.from_value({ play "p" { hosts = "web", tasks = {} }, "x" }, FIX .. "/inline.lua")
      assert.is_nil(pb)
      assert.are.equal(FIX .. "/inline.lua: play 2 is a string (\"x\"), expected a play "
         .. "(play \"name\" { hosts = ..., tasks = {...} })", err)
   end)

   it("rejects unknown play and task keys, unknown modules and unknown handlers", function()
      local cases = {
         { play "p" { hosts = "web", taks = {} }, "unknown key 'taks'" },
         { play "p" { hosts = "web", tasks = { task "t" { no_such_module = {} } } },
            "no module named 'no_such_module'" },
         { play "p" { hosts = "web", tasks = { task "t" { run = function() end, notify = "ghost" } } },
            "notifies 'ghost', but the play has no handler of that name" },
         { play "p" { hosts = "web", tasks = { task "t" { run = function() end, wehn = true } } },
            "names two modules|no module named 'wehn'|has both run and module" },
      }
      for _, c in ipairs(cases) do
         local pb, err = playbook.from_value({ c[1] }, FIX .. "/inline.lua")
         assert.is_nil(pb)
         local ok = false
         for alt in c[2]:gmatch("[^|]+") do
            ok = ok or err:find(alt, 1, true) ~= nil
         end
         assert.is_true(ok, err)
         assert.matches("runner_spec%.lua:%d+: ", err)
      end
   end)
end)
