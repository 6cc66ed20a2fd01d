-- The REPL against the lab's real nodes: scripted sessions on stdin (no
-- terminal: no prompts, results only), and one interactive session on a
-- pseudo-terminal (tmux) for completion, history and Ctrl-C. Reads on
-- etcd1..etcd3; anything that writes happens on etcd10 only.
local helper = require("support.helper")
local lab = require("support.lab")
local fs = require("etcdrun.core.fs")

local q = helper.q
local NODES = 10

local dir, why_not, tmp, inv_path

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

-- A session fed `lines` on stdin, run from tmp (so the PKI directory
-- defaults to tmp/pki); returns stdout, stderr, exit code.
local function session(pattern, lines)
   local input = tmp .. "/input"
   helper.write(input, table.concat(lines, "\n") .. "\n")
   local code = ("os.exit(require('etcdrun.repl').main({inventory=%q, pattern=%q}))"):format(inv_path, pattern)
   return helper.run(("cd %s && %s -e %s < %s"):format(q(tmp), q(helper.etcdrun), q(code), q(input)))
end

-- Assert that the strings of `want` occur in `text` in this order (plain find).
local function in_order(text, want)
   local at = 1
   for _, w in ipairs(want) do
      local a, b = text:find(w, at, true)
      assert(a, ("expected %q after position %d in:\n%s"):format(w, at, text))
      at = b + 1
   end
end

describe("repl", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      tmp = helper.tmpdir()
      inv_path = tmp .. "/hosts"
      if dir then
         helper.write(inv_path, ([[
[etcd]
etcd1 ansible_host=198.18.0.11
etcd2 ansible_host=198.18.0.12
etcd3 ansible_host=198.18.0.13
[scratch]
etcd10 ansible_host=198.18.0.20
[all:vars]
ansible_user=root
ansible_ssh_private_key_file=%s/id_ed25519
ansible_ssh_common_args=-F %s/ssh_config
]]):format(dir, dir))
      end
   end)

   describe("scripted on stdin", function()
      it("runs a shell command on three nodes and prints each host's output", function()
         if no_lab() then return end
         local out, err, code = session("etcd", { "!hostname" })
         assert.are.equal("etcd1: etcd1\netcd2: etcd2\netcd3: etcd3\n", out)
         assert.are.equal("", err)
         assert.are.equal(0, code)
      end)

      it("groups hosts with identical output and marks failed commands", function()
         if no_lab() then return end
         local out, _, code = session("etcd", {
            "!echo same",
            "!test $(hostname) = etcd2 && echo yes",
            "!printf 'a\\nb\\n'",
         })
         in_order(out, {
            "etcd1, etcd2, etcd3 (3): same\n",
            "etcd1, etcd3 (2) [rc=1]:\n",
            "etcd2: yes\n",
            "etcd1, etcd2, etcd3 (3):\n  a\n  b\n",
         })
         assert.are.equal(1, code) -- a host failed: a script must notice
      end)

      it("prints expressions and tables, and continues an incomplete chunk", function()
         if no_lab() then return end
         local out, err, code = session("etcd", {
            "1 + 1",
            "t = {b = {1, 2}, a = 'x', [10] = true}",
            "t",
            "function double(n)",
            "  return n * 2",
            "end",
            "double(21)",
            "do local s = 0",
            "  for i = 1, 3 do s = s + i end",
            "  print('sum', s) end",
            "#inventory:hosts('etcd')",
         })
         assert.are.equal('2\n{ [10] = true, a = "x", b = { 1, 2 } }\n42\nsum\t6\n3\n', out)
         assert.are.equal("", err)
         assert.are.equal(0, code)
      end)

      it("prints an error and goes on with the session", function()
         if no_lab() then return end
         local out, err, code = session("etcd", {
            "error('boom')",
            "nosuch.field = 1",
            "x = ",
            "  41 + 1",
            "print('after', x)",
            "!hostname",
            "for",
         })
         in_order(err, {
            "stdin:1: boom\n",
            "attempt to index a nil value (global 'nosuch')",
            "unfinished chunk",
         })
         in_order(out, { "after\t42\n", "etcd1: etcd1\n" })
         assert.are.equal(1, code)
      end)

      it(":on sets the targets from a pattern, :hosts lists them, no match keeps them", function()
         if no_lab() then return end
         local out, err = session("etcd", {
            ":on all:!etcd2",
            ":hosts",
            "!true",
            ":on nosuch",
            ":hosts",
            ":on scratch",
            "!hostname",
            ":on",
         })
         in_order(out, {
            "3 hosts: etcd1, etcd3, etcd10\n",
            "etcd1   198.18.0.11     root     not connected etcd\n",
            "etcd10  198.18.0.20     root     not connected scratch\n",
            "etcd1, etcd3, etcd10 (3):\n",
            "etcd1   198.18.0.11     root     connected     etcd\n",
            "etcd3   198.18.0.13     root     connected     etcd\n",
            "etcd10  198.18.0.20     root     connected     scratch\n",
            "1 host: etcd10\n",
            "etcd10: etcd10\n",
            "scratch\n",
         })
         assert.matches("no hosts match 'nosuch'", err, 1, true)
      end)

      it("runs a module on the targets with status and diff; check mode changes nothing", function()
         if no_lab() then return end
         local path = ("/tmp/etcdrun-repl-spec-%d"):format(math.random(1e9))
         finally(function()
            lab.ssh(dir, "etcd10", "rm -rf " .. q(path))
         end)
         local out, err, code = session("scratch", {
            ":check on",
            ("file{path=%q, state='directory'}"):format(path),
            ("!test -e %s && echo exists || echo missing"):format(path),
            ":check off",
            ("file{path=%q, state='directory'}"):format(path),
            ("r = file{path=%q, state='directory'}"):format(path),
            "r.etcd10.changed",
            ("copy{dest=%q, content='one\\n'}"):format(path .. "/f"),
            ("copy{dest=%q, content='one\\ntwo\\n'}"):format(path .. "/f"),
            ("!cat %s/f"):format(path),
            "file{pth='/tmp/x'}",
            "print('still here')",
         })
         in_order(out, {
            "changed     etcd10   file",
            "-state absent\n", "+state directory\n",
            "etcd10: missing\n",
            "check mode off\n",
            "changed     etcd10   file",
            "ok          etcd10   file",
            "false\n",
            "changed     etcd10   copy",
            "+one\n",
            "changed     etcd10   copy",
            " one\n", "+two\n",
            "etcd10:\n  one\n  two\n",
            "still here\n",
         })
         assert.matches("module 'file': unknown argument 'pth'", err, 1, true)
         assert.are.equal(1, code)
         local _, rc = lab.ssh(dir, "etcd10", "test -d " .. q(path))
         assert.are.equal(0, rc)
      end)

      it(":etcd says where etcdctl.env was looked for when it is missing", function()
         if no_lab() then return end
         local _, err, code = session("scratch", { ":etcd member list" })
         assert.matches("no " .. tmp .. "/pki/etcdctl.env", err, 1, true)
         assert.are.equal(1, code)
      end)

      it(":etcd runs etcdctl on the first target with the TLS files of the PKI directory", function()
         if no_lab() then return end
         local probe = lab.ssh(dir, "etcd10", "PATH=/opt/etcd/bin:$PATH command -v etcdctl || echo none")
         if probe ~= "none\n" then
            pending("etcd10 has a real etcdctl (" .. probe:gsub("\n", "") .. "): not replacing it")
            return
         end
         -- a stand-in etcdctl that reports what it was given
         local fake = [[#!/bin/sh
echo "api=$ETCDCTL_API endpoints=$ETCDCTL_ENDPOINTS args=$*"
cat "$ETCDCTL_CACERT" "$ETCDCTL_CERT" "$ETCDCTL_KEY" | sha256sum | cut -c1-64
stat -c %a "$ETCDCTL_KEY"
dirname "$ETCDCTL_KEY" > /tmp/etcdrun-repl-spec-keydir
]]
         local _, rc = lab.ssh(dir, "etcd10", "cat > /usr/local/bin/etcdctl <<'EOF'\n" .. fake
            .. "EOF\nchmod 755 /usr/local/bin/etcdctl")
         assert.are.equal(0, rc)
         finally(function()
            lab.ssh(dir, "etcd10", "rm -f /usr/local/bin/etcdctl; rm -rf \"$(cat /tmp/etcdrun-repl-spec-keydir)\""
               .. " /tmp/etcdrun-repl-spec-keydir")
         end)
         local pki = tmp .. "/mypki"
         assert(fs.mkdir(pki, { mode = 448 }))
         local ca, cert, key = "CA PEM\n", "ADMIN CERT PEM\nline 2\n", "ADMIN KEY PEM"
         helper.write(pki .. "/ca.crt", ca)
         helper.write(pki .. "/admin.crt", cert)
         helper.write(pki .. "/admin.key", key)
         helper.write(pki .. "/etcdctl.env", ([[
ETCDCTL_ENDPOINTS=https://198.18.0.11:2379,https://198.18.0.12:2379
export ETCDCTL_CACERT=%s/ca.crt
ETCDCTL_CERT="%s/admin.crt"
ETCDCTL_KEY='%s/admin.key'
]]):format(pki, pki, pki))
         local out, err, code = session("scratch", { ":pki " .. pki, ":etcd endpoint health --cluster" })
         assert.are.equal("", err)
         assert.are.equal(0, code)
         in_order(out, {
            pki .. "\n",
            "api=3 endpoints=https://198.18.0.11:2379,https://198.18.0.12:2379 args=endpoint health --cluster\n",
            fs.sha256(ca .. cert .. key .. "\n") .. "\n",
            "600\n",
         })
         -- the private copy of the key did not outlive etcdctl
         local keydir = lab.ssh(dir, "etcd10", "cat /tmp/etcdrun-repl-spec-keydir 2>/dev/null || echo none")
         assert.are_not.equal("none\n", keydir)
         local _, there = lab.ssh(dir, "etcd10", "test -e " .. q(keydir:gsub("\n", "")))
         assert.are_not.equal(0, there)
      end)

      it("is the CLI's `etcdrun repl [-i hosts] [PATTERN]`", function()
         if no_lab() then return end
         helper.write(tmp .. "/input", "!hostname\n")
         local out, err, code = helper.run(("%s repl -i %s etcd2 < %s"):format(q(helper.etcdrun), q(inv_path),
            q(tmp .. "/input")))
         assert.are.equal("", err)
         assert.are.equal("etcd2: etcd2\n", out)
         assert.are.equal(0, code)
      end)
   end)

   describe("on a terminal", function()
      local socket, state

      local function tmux(args)
         return helper.run(("tmux -S %s %s"):format(q(socket), args))
      end

      -- The screen with trailing blanks dropped, so a prompt ends the text.
      local function screen()
         local text = tmux("capture-pane -p -J -S - -t repl")
         return (text:gsub("[ \t]+\n", "\n"):gsub("%s+$", ""))
      end

      -- Wait until the screen matches a Lua pattern (or fail with the screen).
      local function wait_for(pattern, n)
         local deadline = os.time() + 15
         local text
         repeat
            text = screen()
            local c, at = 0, 1
            while true do
               local _, b = text:find(pattern, at)
               if not b then
                  break
               end
               c, at = c + 1, b + 1
            end
            if c >= (n or 1) then
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
         local _, err, code = tmux("send-keys -t repl " .. table.concat(args, " "))
         assert(code == 0, err)
      end

      local function start(pattern)
         local code = ("os.exit(require('etcdrun.repl').main({inventory=%q, pattern=%q}))"):format(inv_path, pattern)
         -- EDITRC: a developer's ~/.editrc (vi keys) must not change what the keys do
         local cmd = ("cd %s && XDG_STATE_HOME=%s EDITRC=/dev/null %s -e %s; echo EXITED $?; sleep 30"):format(q(tmp),
            q(state), q(helper.etcdrun), q(code))
         local _, err, rc = tmux("new-session -d -s repl -x 120 -y 50 " .. q(cmd))
         assert(rc == 0, err)
      end

      before_each(function()
         socket = ("%s/tmux-%d"):format(tmp, math.random(1e9)) -- a private server, gone with tmp
         state = tmp .. "/state"
      end)

      after_each(function()
         tmux("kill-server")
      end)

      it("completes names, recalls history across sessions, and Ctrl-C returns to the prompt", function()
         if no_lab() then return end
         local _, _, has_tmux = helper.run("command -v tmux")
         if has_tmux ~= 0 then
            pending("tmux is not installed (apt-get install tmux)")
            return
         end
         start("etcd")
         wait_for("etcd%[3%]>$")
         -- a group name, then a host name with two candidates shown
         keys(":on scr", "Tab")
         wait_for(":on scratch$")
         keys("Enter")
         wait_for("1 host: etcd10\nscratch%[1%]>$")
         keys(":on etcd1", "Tab")
         wait_for("\netcd1%s+etcd10\n")
         keys("0", "Enter")
         wait_for("etcd10%[1%]>$")
         keys("etcdrun.vers", "Tab")
         wait_for("> etcdrun%.version$")
         keys("Enter")
         wait_for("%d+%.%d+%.%d+%S*\netcd10%[1%]>$") -- 0.1.0, or 0.1.0-g<commit> from git
         keys("!hostname", "Enter")
         wait_for("etcd10: etcd10\n")
         -- the up arrow brings the command back
         keys("Up")
         wait_for("> !hostname$")
         keys("Enter")
         wait_for("etcd10: etcd10\n", 2)
         -- Ctrl-C stops the command on the node and gives the prompt back
         local marker = ("sleep 4%d"):format(math.random(100, 999))
         keys("!" .. marker, "Enter")
         local deadline = os.time() + 10
         repeat
            local ps = lab.ssh(dir, "etcd10", "pgrep -fx " .. q(marker) .. " || true")
         until ps:match("%d") or os.time() > deadline
         local t0 = os.time()
         keys("C-c")
         wait_for("interrupted\netcd10%[1%]>$")
         assert.is_true(os.time() - t0 <= 3)
         assert.are.equal("", (lab.ssh(dir, "etcd10", "pgrep -fx " .. q(marker) .. " || true")))
         -- Ctrl-C on a half-typed line drops it; the session goes on
         keys("half typed")
         wait_for("> half typed$")
         keys("C-c")
         wait_for("> half typed\netcd10%[1%]>$")
         keys("x = 41 + 1", "Enter", "x", "Enter")
         wait_for("\n42\netcd10%[1%]>$")
         keys("C-d")
         wait_for("EXITED 0")
         local hist = assert(helper.read(state .. "/etcdrun/history"))
         assert.matches("!hostname", hist, 1, true)
         assert.are.equal(tonumber("600", 8), fs.stat(state .. "/etcdrun/history").mode)

         -- the next session starts with that history
         tmux("kill-server")
         socket = socket .. "-2"
         start("scratch")
         wait_for("scratch%[1%]>$")
         keys("Up")
         wait_for("> x$")
         keys("Up")
         wait_for("> x = 41 %+ 1$")
         keys("Enter", "x", "Enter")
         wait_for("\n42\nscratch%[1%]>$")
         keys("C-d")
         wait_for("EXITED 0")
      end)
   end)
end)
