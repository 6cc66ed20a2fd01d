-- SSH transport, host objects and ad-hoc mode against the lab's real nodes
-- (real sshd under real systemd, in network namespaces on this machine).
local helper = require("support.helper")
local lab = require("support.lab")
local host = require("etcdrun.host")
local sched = require("etcdrun.sched")
local inventory = require("etcdrun.inventory")
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")

local q = helper.q
local NODES = 10

local dir, why_not = nil, nil

-- Inside an `it`: report the test as skipped (with why) when no lab can run here.
local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

local function node_host(i, conn)
   return host.new({ name = "etcd" .. i, address = ("198.18.0.%d"):format(10 + i), user = "root" },
      conn or { ssh_config = dir .. "/ssh_config" })
end

local function etcdrun(args)
   return helper.run(q(helper.etcdrun) .. " " .. args)
end

describe("ssh on the lab", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
   end)

   describe("exec", function()
      local h
      before_each(function()
         if dir then
            h = h or node_host(1)
         end
      end)

      it("returns stdout, stderr and the exit status separately", function()
         if no_lab() then return end
         local r = assert(h:exec("echo out; echo err >&2; exit 7"))
         assert.are.equal("out\n", r.stdout)
         assert.are.equal("err\n", r.stderr)
         assert.are.equal(7, r.status)
         assert.is_false(r.truncated)
         r = assert(h:exec([[printf "it's %s" "$(hostname)"]]))
         assert.are.equal("it's etcd1", r.stdout)
      end)

      it("feeds stdin", function()
         if no_lab() then return end
         local data = string.rep("0123456789abcdef", 65536) -- 1 MiB
         local r = assert(h:exec("sha256sum", { stdin = data }))
         assert.are.equal(fs.sha256(data), r.stdout:match("^(%x+)"))
      end)

      it("kills a command that runs past its timeout and keeps the session", function()
         if no_lab() then return end
         local r, err, code = h:exec("sleep 77; echo never", { timeout = 1 })
         assert.is_nil(r)
         assert.are.equal("ETIMEDOUT", code)
         assert.matches("timed out after 1%.0 s and was killed %(etcd1%)", err)
         r = assert(h:exec("sleep 0.3; pgrep -fx 'sleep 77' || echo gone"))
         assert.are.equal("gone\n", r.stdout)
      end)

      it("feeds 20 MiB of stdin whole, through sha256sum and through tee", function()
         if no_lab() then return end
         local data = string.rep("0123456789abcdef", 65536 * 20) -- 20 MiB
         local want = fs.sha256(data)
         local r = assert(h:exec("sha256sum", { stdin = data, timeout = 120 }))
         assert.are.equal(want, r.stdout:match("^(%x+)"))
         -- tee writes as much output as it reads input: stdin and stdout flow together
         r = assert(h:exec("tee /tmp/etcdrun-stdin.bin | sha256sum", { stdin = data, timeout = 120 }))
         assert.are.equal(want, r.stdout:match("^(%x+)"))
         r = assert(h:exec("tee /tmp/etcdrun-stdin.bin", { stdin = data, timeout = 120 }))
         assert.are.equal(0, r.status)
         assert.is_true(r.stdout == data, "stdout differs from stdin: " .. #r.stdout .. " bytes")
         r = assert(h:exec("sha256sum </tmp/etcdrun-stdin.bin; rm -f /tmp/etcdrun-stdin.bin"))
         assert.are.equal(want, r.stdout:match("^(%x+)"))
         -- a command that reads its input only after a pause still gets all of it
         r = assert(h:exec("sleep 2; wc -c", { stdin = data, timeout = 120 }))
         assert.are.equal(#data, tonumber(r.stdout))
         -- one that does not read it ends normally, as with a pipe
         r = assert(h:exec("head -c 5", { stdin = data, timeout = 30 }))
         assert.are.same({ "01234", 0 }, { r.stdout, r.status })
      end)

      it("counts writing stdin against the timeout", function()
         if no_lab() then return end
         local t = runtime.monotonic()
         local r, err, code = h:exec("sleep 78; cat >/dev/null", { stdin = string.rep("x", 20 * 1024 * 1024),
            timeout = 1 })
         assert.is_nil(r)
         assert.are.equal("ETIMEDOUT", code, err)
         assert.is_true(runtime.monotonic() - t < 4)
         r = assert(h:exec("sleep 0.3; pgrep -fx 'sleep 78' || echo gone"))
         assert.are.equal("gone\n", r.stdout)
      end)

      it("times out a command that closed its stdout and stderr, and kills it on the node", function()
         if no_lab() then return end
         local t = runtime.monotonic()
         local r, err, code = h:exec("exec >&- 2>&-; sleep 79", { timeout = 1 })
         assert.is_nil(r)
         assert.are.equal("ETIMEDOUT", code)
         assert.matches("timed out after 1%.0 s and was killed %(etcd1%)", err)
         assert.is_true(runtime.monotonic() - t < 4)
         r = assert(h:exec("sleep 0.3; pgrep -fx 'sleep 79' || echo gone"))
         assert.are.equal("gone\n", r.stdout)
         -- one that closes its output early and then exits gives its real status
         r = assert(h:exec("exec >&- 2>&-; sleep 0.5; exit 4", { timeout = 20 }))
         assert.are.equal(4, r.status)
      end)

      it("reports the signal that killed a command", function()
         if no_lab() then return end
         local r = assert(h:exec("kill -TERM $$"))
         assert.are.same({ 143, 15 }, { r.status, r.signal })
         r = assert(h:exec("exit 3"))
         assert.are.same({ 3 }, { r.status, r.signal })
      end)

      it("takes math.huge as no timeout and rejects NaN and negative ones", function()
         if no_lab() then return end
         assert.are.equal("ok\n", assert(h:exec("echo ok", { timeout = math.huge })).stdout)
         assert.are.equal("ok\n", assert(h:exec("echo ok", { timeout = 1e300 })).stdout)
         for _, bad in ipairs({ 0 / 0, -1, -math.huge }) do
            assert.has_error(function() h:exec("true", { timeout = bad }) end)
         end
         assert.has_error(function() h:exec("true", { max_output = -1 }) end)
         local ssh = require("etcdrun.core.ssh")
         assert.has_error(function() ssh.wait(0 / 0) end)
         assert.has_error(function() ssh.wait(-1) end)
         assert.is_table(ssh.wait(0))
         assert.has_error(function() ssh.session({ host = "x", timeout = -5 }) end)
         assert.has_error(function() ssh.session({ host = "x", timeout = 0 }) end)
      end)

      it("bounds output and says it did", function()
         if no_lab() then return end
         local r = assert(h:exec("head -c 3000000 /dev/zero", { max_output = 1000000 }))
         assert.is_true(r.truncated)
         assert.are.equal(1000000, #r.stdout)
         assert.are.equal(0, r.status)
      end)

      it("runs many commands over one session", function()
         if no_lab() then return end
         local first = assert(h:exec("echo $PPID")).stdout
         for _ = 1, 20 do
            assert.are.equal(0, assert(h:exec("true")).status)
         end
         -- the sshd session process serving us is the same one throughout
         local r = assert(h:exec("ps -o ppid= -p $PPID"))
         local again = assert(h:exec("ps -o ppid= -p $PPID"))
         assert.are.equal(r.stdout, again.stdout)
         assert.is_truthy(first:match("^%d+\n$"))
      end)
   end)

   describe("files", function()
      local h, tmp
      before_each(function()
         if dir then
            h = h or node_host(2)
            tmp = helper.tmpdir()
         end
      end)

      it("moves 50 MB up and down with matching checksums", function()
         if no_lab() then return end
         local big = tmp .. "/big.bin"
         local _, err, code = helper.run(("head -c 50000000 /dev/urandom > %s"):format(q(big)))
         assert.are.equal(0, code, err)
         local sum = fs.sha256_file(big)
         assert(h:put_file(big, "/root/big.bin", { mode = 416 }))
         assert.are.equal(sum, h:sha256("/root/big.bin"))
         local st = assert(h:stat("/root/big.bin"))
         assert.are.equal(50000000, st.size)
         assert.are.equal(416, st.mode)
         assert(h:get_file("/root/big.bin", tmp .. "/back.bin"))
         assert.are.equal(sum, fs.sha256_file(tmp .. "/back.bin"))
         assert(h:remove("/root/big.bin"))
      end)

      it("writes atomically with mode and owner, keeping them on rewrite", function()
         if no_lab() then return end
         assert(h:mkdir("/root/w/sub", { mode = 448 }))
         assert.are.equal(448, h:stat("/root/w/sub").mode)
         assert(h:write("/root/w/a.conf", "one\n", { mode = 416, owner = "nobody", group = "nogroup" }))
         assert(h:write("/root/w/a.conf", "two\n"))
         local st = assert(h:stat("/root/w/a.conf"))
         assert.are.same({ "file", 416, "nobody", "nogroup", 4 }, { st.type, st.mode, st.user, st.group, st.size })
         assert.are.equal("two\n", h:read("/root/w/a.conf"))
         assert.are.equal("a.conf\nsub\n", assert(h:exec("ls -A /root/w")).stdout)
         assert(h:remove("/root/w", { recursive = true }))
         local none, err, code = h:stat("/root/w")
         assert.is_nil(none)
         assert.are.equal("ENOENT", code)
         assert.matches("host%.stat: No such file or directory %(etcd2:/root/w%)", err)
      end)

      it("names the host and path when a write cannot happen", function()
         if no_lab() then return end
         local ok, err, code = h:write("/root/no/such/dir/f", "x")
         assert.is_nil(ok)
         assert.are.equal("ENOENT", code)
         assert.matches("etcd2:/root/no/such/dir", err)
         assert.has_error(function()
            h:remove("/")
         end)
      end)

      local function interrupted_upload(signal)
         local big = tmp .. "/huge.bin"
         helper.run(("head -c 400000000 /dev/zero > %s"):format(q(big)))
         assert(h:write("/root/atomic.txt", "old content\n"))
         local script = tmp .. "/upload.lua"
         helper.write(script, ([[
            local host = require("etcdrun.host")
            local h = host.new({ name = "etcd2", address = "198.18.0.12", user = "root" },
               { ssh_config = %q })
            assert(h:connect())
            io.stderr:write("connected\n")
            assert(h:put_file(%q, "/root/atomic.txt"))
         ]]):format(dir .. "/ssh_config", big))
         -- start the upload, interrupt it mid-transfer (once connected, so the
         -- interruption lands in the transfer itself)
         local log = tmp .. "/upload.log"
         local out = helper.run(([[
            %s %s >%s 2>&1 & pid=$!
            for i in $(seq 100); do grep -q connected %s && break; sleep 0.05; done
            sleep 0.2; kill -%s $pid; wait $pid; echo rc=$?; cat %s]])
            :format(q(helper.etcdrun), q(script), q(log), q(log), signal, q(log)))
         assert.matches("rc=%d+", out)
         assert.is_nil(out:match("rc=0\n"), "the upload finished before it was interrupted: " .. out)
         assert.are.equal("old content\n", h:read("/root/atomic.txt"))
      end

      it("leaves the destination whole and no temp file when interrupted (Ctrl-C)", function()
         if no_lab() then return end
         interrupted_upload("INT")
         local left = assert(h:exec("ls -A /root | grep etcdrun || true")).stdout
         assert.are.equal("", left)
      end)

      it("leaves the destination whole when the controller is killed", function()
         if no_lab() then return end
         interrupted_upload("KILL")
         assert(h:exec("rm -f /root/.atomic.txt.etcdrun-*; rm -f /root/atomic.txt"))
      end)

      it("reports SFTP being unavailable", function()
         if no_lab() then return end
         local admin = node_host(4)
         assert(admin:exec("sed -i 's/^Subsystem/#Subsystem/' /etc/ssh/sshd_config && systemctl reload ssh && sleep 1"))
         finally(function()
            admin:exec("sed -i 's/^#Subsystem/Subsystem/' /etc/ssh/sshd_config && systemctl reload ssh")
         end)
         local fresh = node_host(4)
         local data, err, code = fresh:read("/etc/hostname")
         assert.is_nil(data)
         assert.are.equal("ESFTP", code)
         assert.matches("SFTP is not available on 198%.18%.0%.14", err)
         fresh:close()
      end)
   end)

   describe("host keys and authentication", function()
      local tmp
      before_each(function()
         if dir then
            tmp = helper.tmpdir()
         end
      end)

      local function bare(conn)
         conn.read_ssh_config = false
         conn.identities = conn.identities or { dir .. "/id_ed25519" }
         return host.new({ name = "etcd3", address = "198.18.0.13", user = "root" }, conn)
      end

      it("fails an unknown host key strictly, naming host, key type and fingerprint", function()
         if no_lab() then return end
         local kh = tmp .. "/known_hosts"
         helper.write(kh, "")
         local ok, err, code = bare({ known_hosts = kh }):connect()
         assert.is_nil(ok)
         assert.are.equal("EHOSTKEY", code)
         assert.matches("host key for 198%.18%.0%.13 is not known: server sent ssh%-ed25519 SHA256:%S+", err)
         assert.matches("%(etcd3%)", err)
         assert.are.equal("", helper.read(kh))
      end)

      it("trusts on first use with accept-new, then checks strictly", function()
         if no_lab() then return end
         local kh = tmp .. "/known_hosts"
         local h = bare({ known_hosts = kh, host_key = "accept-new" })
         assert(h:connect())
         local content = helper.read(kh)
         assert.matches("^198%.18%.0%.13 ssh%-ed25519 AAAA", content)
         local real = helper.read(dir .. "/known_hosts")
         assert.is_truthy(real:find(content:match("ssh%-ed25519 (%S+)"), 1, true))
         h:close()
         local strict = bare({ known_hosts = kh })
         assert(strict:connect())
         assert.are.equal("etcd3\n", strict:exec("hostname").stdout)
         strict:close()
      end)

      it("fails a changed host key, showing both fingerprints", function()
         if no_lab() then return end
         local kh = tmp .. "/known_hosts"
         -- etcd4's key recorded under etcd3's address: what a rebuilt node looks like
         local line = helper.read(dir .. "/known_hosts"):match("etcd4,198%.18%.0%.14 (ssh%-ed25519 %S+)")
         helper.write(kh, "198.18.0.13 " .. line .. "\n")
         local ok, err, code = bare({ known_hosts = kh }):connect()
         assert.is_nil(ok)
         assert.are.equal("EHOSTKEY", code)
         assert.matches("host key CHANGED for 198%.18%.0%.13: server sent ssh%-ed25519 (SHA256:%S+), "
            .. "known_hosts has (SHA256:%S+)", err)
         local sent, known = err:match("server sent ssh%-ed25519 (SHA256:%S+), known_hosts has (SHA256:%S+)")
         assert.are_not.equal(sent, known)
      end)

      it("fails a wrong key naming what was tried", function()
         if no_lab() then return end
         local key = tmp .. "/wrong_key"
         local _, err, code = helper.run(("ssh-keygen -q -t ed25519 -N '' -f %s"):format(q(key)))
         assert.are.equal(0, code, err)
         local ok, msg, ecode = bare({ known_hosts = dir .. "/known_hosts", identities = { key }, agent = false })
            :connect()
         assert.is_nil(ok)
         assert.are.equal("EAUTH", ecode)
         assert.matches("authentication failed for root@198%.18%.0%.13 %(tried: key " .. key:gsub("%p", "%%%0"), msg)
         assert.matches("server accepts: publickey", msg)
      end)

      it("asks for nothing and fails clearly on an encrypted key without a passphrase", function()
         if no_lab() then return end
         local key = tmp .. "/enc_key"
         helper.run(("ssh-keygen -q -t ed25519 -N 'secret words' -f %s"):format(q(key)))
         local ssh = require("etcdrun.core.ssh")
         assert.is_true(ssh.key_needs_passphrase(key))
         assert.is_false(ssh.key_needs_passphrase(dir .. "/id_ed25519"))
         local _, err, code = bare({ known_hosts = dir .. "/known_hosts", identities = { key }, agent = false })
            :connect()
         assert.are.equal("EAUTH", code)
         assert.matches("needs a passphrase", err)
         -- with the passphrase the key loads (the node does not know it: auth still fails, after trying it)
         _, err = bare({ known_hosts = dir .. "/known_hosts", identities = { key }, passphrase = "secret words",
            agent = false }):connect()
         assert.matches("tried: key " .. key:gsub("%p", "%%%0") .. ";", err)
         assert.is_nil(err:find("secret words", 1, true))
      end)

      it("names the reason for refused, unresolvable and unreachable hosts", function()
         if no_lab() then return end
         local cases = {
            { { name = "refused", address = "198.18.0.11", port = 2 }, "ECONNREFUSED" },
            { { name = "nowhere", address = "no-such-host.invalid" }, "ERESOLVE" },
         }
         for _, c in ipairs(cases) do
            local h = host.new(c[1], { read_ssh_config = false, timeout = 2 })
            local ok, err, code = h:connect()
            assert.is_nil(ok)
            assert.are.equal(c[2], code, err)
            assert.matches("%(" .. c[1].name .. "%)$", err)
            assert.is_true(h:unreachable())
         end
      end)
   end)

   describe("become", function()
      local admin
      setup(function()
         if not dir then return end
         admin = node_host(5)
         -- deploy: sudo with a password; deploy2: passwordless sudo
         assert(admin:exec([[
            set -e
            for u in deploy deploy2; do
               id $u >/dev/null 2>&1 || useradd -m -s /bin/bash $u
               mkdir -p /home/$u/.ssh && cp /root/.ssh/authorized_keys /home/$u/.ssh/
               chown -R $u: /home/$u/.ssh
            done
            echo 'deploy:s3cret pass' | chpasswd
            echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy
            echo 'deploy2 ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy2
            chmod 0440 /etc/sudoers.d/deploy /etc/sudoers.d/deploy2
         ]]))
      end)

      local function as(user, conn)
         conn.ssh_config = dir .. "/ssh_config"
         return host.new({ name = "etcd5", address = "198.18.0.15", user = user }, conn)
      end

      it("runs commands as root with the password fed over the channel", function()
         if no_lab() then return end
         local h = as("deploy", { become = true, become_pass = "s3cret pass" })
         local r = assert(h:exec("id -un; cat"), { stdin = "payload" })
         assert.are.equal("root\n", r.stdout)
         r = assert(h:exec("id -un; cat", { stdin = "payload" }))
         assert.are.equal("root\npayload", r.stdout)
         assert.is_nil(r.stderr:find("s3cret", 1, true))
         -- root-owned files through become
         assert(h:write("/etc/etcdrun-become.conf", "x=1\n", { mode = 384 }))
         local st = assert(h:stat("/etc/etcdrun-become.conf"))
         assert.are.same({ "root", 384 }, { st.user, st.mode })
         assert.are.equal("x=1\n", h:read("/etc/etcdrun-become.conf"))
         assert.are.equal("", assert(h:exec("ls -A /tmp | grep etcdrun || true")).stdout)
         assert(h:remove("/etc/etcdrun-become.conf"))
         -- the password never reached a command line on the node
         local ps = assert(admin:exec("grep -a -l 's3cre[t]' /proc/[0-9]*/cmdline 2>/dev/null || true"))
         assert.are.equal("", ps.stdout)
      end)

      it("uses passwordless sudo without asking", function()
         if no_lab() then return end
         local h = as("deploy2", { become = true })
         assert.are.equal("root\n", assert(h:exec("id -un")).stdout)
         assert.are.equal("deploy2\n", assert(h:exec("id -un", { become = false })).stdout)
      end)

      it("says when sudo needs a password or rejects it", function()
         if no_lab() then return end
         local _, err, code = as("deploy", { become = true }):exec("id -un")
         assert.are.equal("EBECOME", code)
         assert.matches("sudo on etcd5 needs a password: run with %-%-ask%-become%-pass", err)
         _, err, code = as("deploy", { become = true, become_pass = "wrong" }):exec("id -un")
         assert.are.equal("EBECOME", code)
         assert.matches("rejected the password", err)
      end)
   end)

   describe("parallel hosts and ad-hoc mode", function()
      it("answers systemctl is-system-running for every node", function()
         if no_lab() then return end
         local out, err, code = etcdrun(("-i %s etcd -a 'systemctl is-system-running'"):format(q(dir .. "/hosts")))
         assert.are.equal(0, code, err)
         local seen = 0
         for name, state in out:gmatch("(etcd%d+) | ok | rc=0[^\n]*\n  (%a+)") do
            seen = seen + 1
            assert.are.equal("running", state, name)
         end
         assert.are.equal(NODES, seen, out)
         assert.matches(NODES .. " hosts: " .. NODES .. " ok, 0 failed, 0 unreachable", err)
      end)

      it("prints hosts in inventory order, one JSON object per host", function()
         if no_lab() then return end
         local out, err, code = etcdrun(("-i %s all -a hostname --json -f 3"):format(q(dir .. "/hosts")))
         assert.are.equal(0, code, err)
         local cjson = require("cjson")
         local i = 0
         for line in out:gmatch("[^\n]+") do
            i = i + 1
            local r = cjson.decode(line)
            assert.are.equal("etcd" .. i, r.host)
            assert.are.equal("ok", r.status)
            assert.are.equal(0, r.rc)
            assert.are.equal("etcd" .. i .. "\n", r.stdout)
         end
         assert.are.equal(NODES, i)
      end)

      it("reports an unreachable and a failing host without stopping the others", function()
         if no_lab() then return end
         local tmp = helper.tmpdir()
         local inv = tmp .. "/hosts"
         helper.write(inv, ([[
[etcd]
etcd1 ansible_host=198.18.0.11 ansible_user=root
etcd2 ansible_host=198.18.0.12 ansible_user=root
etcd3 ansible_host=198.18.0.13 ansible_user=root
ghost ansible_host=198.18.0.11 ansible_port=2 ansible_user=root
[etcd:vars]
ansible_ssh_common_args=-F %s
]]):format(dir .. "/ssh_config"))
         local out, err, code = etcdrun(("-i %s 'etcd:!etcd3' -a 'test $(hostname) != etcd2' --json"):format(q(inv)))
         assert.are.equal(3, code, err)
         local cjson = require("cjson")
         local by = {}
         for line in out:gmatch("[^\n]+") do
            local r = cjson.decode(line)
            by[r.host] = r
         end
         assert.are.equal("ok", by.etcd1.status)
         assert.are.equal("failed", by.etcd2.status)
         assert.are.equal(1, by.etcd2.rc)
         assert.is_nil(by.etcd3)
         assert.are.equal("unreachable", by.ghost.status)
         assert.matches("Connection refused %(ghost%)", by.ghost.error)
         assert.matches("3 hosts: 1 ok, 1 failed, 1 unreachable", err)
      end)

      it("times out a node cut off the bridge while the rest answer", function()
         if no_lab() then return end
         local _, code = lab.run("cut", "etcd" .. NODES)
         assert.are.equal(0, code)
         finally(function()
            lab.run("heal", "etcd" .. NODES)
         end)
         local out, err, rc = etcdrun(("-i %s all -a true -T 2 --json"):format(q(dir .. "/hosts")))
         assert.are.equal(3, rc, err)
         local cjson = require("cjson")
         local unreachable = {}
         for line in out:gmatch("[^\n]+") do
            local r = cjson.decode(line)
            if r.status ~= "ok" then
               unreachable[#unreachable + 1] = r.host
               assert.matches("ETIMEDOUT|EHOSTUNREACH", r.code .. "|ETIMEDOUT|EHOSTUNREACH")
            end
         end
         assert.are.same({ "etcd" .. NODES }, unreachable)
      end)

      it("runs host code concurrently through the scheduler", function()
         if no_lab() then return end
         local inv = assert(inventory.load(dir .. "/hosts"))
         local hosts = inv:hosts("etcd")
         local tasks = {}
         local inside, most = 0, 0
         for i, spec in ipairs(hosts) do
            local h = host.new(spec, { ssh_config = dir .. "/ssh_config" })
            tasks[i] = function()
               assert(h:connect())
               -- how many hosts have a command running on their node at once
               inside = inside + 1
               most = math.max(most, inside)
               local r = assert(h:exec("sleep 1; hostname"))
               inside = inside - 1
               h:close()
               return r.stdout
            end
         end
         local results = sched.run(tasks, { forks = 50 })
         for i, r in ipairs(results) do
            assert.is_true(r.ok, r.err)
            assert.are.equal("etcd" .. i .. "\n", r.values[1])
         end
         -- every node's command was running while the others' were
         assert.are.equal(NODES, most)
      end)

      it("times out a command that closed its output in ad-hoc mode, with the reason", function()
         if no_lab() then return end
         local out, err, code = etcdrun(("-i %s etcd1 -a 'exec >&- 2>&-; sleep 81' --command-timeout 1 --json")
            :format(q(dir .. "/hosts")))
         assert.are.equal(1, code, err)
         local r = require("cjson").decode(out)
         assert.are.equal("error", r.status)
         assert.are.equal("ETIMEDOUT", r.code)
         assert.matches("timed out after 1%.0 s and was killed", r.error)
         assert.is_true(r.duration < 4)
         local left = assert(node_host(1):exec("sleep 0.3; pgrep -fx 'sleep 81' || echo gone"))
         assert.are.equal("gone\n", left.stdout)
      end)

      it("usage errors exit 2", function()
         local _, err, code = etcdrun("-a hostname")
         assert.are.equal(2, code)
         assert.matches("needs a host pattern", err)
         _, err, code = etcdrun("etcd -a hostname --host-key maybe")
         assert.are.equal(2, code)
         assert.matches("strict", err)
      end)

      it("names a missing inventory", function()
         local _, err, code = etcdrun("-i /nonexistent/hosts etcd -a hostname")
         assert.are.equal(1, code)
         assert.matches("cannot read /nonexistent/hosts", err)
      end)
   end)
end)

-- os.exit while SSH jobs (and key jobs) run: once 5 runs in 40 died of
-- SIGSEGV, worker threads using sessions and OpenSSL while exit() tore them
-- down. Now every run exits with the code given, and the remote commands are
-- killed, not left running.
describe("exit while jobs run", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
   end)

   local function runs(script, n)
      local codes = {}
      for i = 1, n do
         -- vary how long the jobs have run when os.exit comes
         local _, err, code = helper.run(("D=%d %s -e %s"):format(i % 8, q(helper.etcdrun), q(script)))
         codes[code] = (codes[code] or 0) + 1
         assert.is_true(code < 128, ("run %d ended by a signal (%d): %s"):format(i, code, err))
      end
      return codes
   end

   it("exits cleanly with SSH jobs running on three nodes, 40 times", function()
      if not dir then
         pending(why_not)
         return
      end
      local script = ([[
         local ssh = require("etcdrun.core.ssh")
         local keep = {}
         for i = 1, 3 do
            local s = ssh.session({ name = "etcd" .. i, host = ("198.18.0.%%d"):format(10 + i), user = "root",
               config = %q })
            keep[i] = { s, s:submit("connect"), s:submit("exec", "sleep 83"), s:submit("put", "x", "/tmp/etcdrun-x") }
         end
         ssh.wait(0.04 * tonumber(os.getenv("D")))
         os.exit(5)
      ]]):format(dir .. "/ssh_config")
      assert.are.same({ [5] = 40 }, runs(script, 40))
      for i = 1, 3 do
         local left = lab.ssh(dir, "etcd" .. i, "pgrep -fx 'sleep 83' || true")
         assert.are.equal("", left)
      end
   end)

   it("exits cleanly from inside a scheduled host coroutine, 20 times", function()
      if not dir then
         pending(why_not)
         return
      end
      local script = ([[
         local host = require("etcdrun.host")
         local sched = require("etcdrun.sched")
         local tasks = {}
         for i = 1, 3 do
            local h = host.new({ name = "etcd" .. i, address = ("198.18.0.%%d"):format(10 + i), user = "root" },
               { ssh_config = %q })
            tasks[i] = function()
               if i == 3 then
                  sched.sleep(0.04 * tonumber(os.getenv("D")))
                  os.exit(true)
               end
               return h:exec("sleep 84")
            end
         end
         sched.run(tasks)
      ]]):format(dir .. "/ssh_config")
      assert.are.same({ [0] = 20 }, runs(script, 20))
   end)

   it("survives closing, collecting and misusing sessions and jobs mid-flight", function()
      if not dir then
         pending(why_not)
         return
      end
      local ssh = require("etcdrun.core.ssh")
      local function sess(i)
         return ssh.session({ name = "etcd" .. i, host = ("198.18.0.%d"):format(10 + i), user = "root",
            config = dir .. "/ssh_config" })
      end
      -- closed with a job running and one queued; closed twice
      local s = sess(1)
      s:submit("connect")
      local running, queued = s:submit("exec", "sleep 85"), s:submit("exec", "echo queued")
      ssh.wait(0.5)
      s:close()
      s:close()
      local r, err, code = running:wait(5)
      assert.is_nil(r)
      assert.are.equal("ECLOSED", code)
      assert.matches("session closed, command killed %(etcd1%)", err)
      assert.are.equal("ECLOSED", select(3, queued:wait(5)))
      assert.has_error(function() running:result() end, "ssh: job result already taken")
      assert.has_error(function() running:done() end)
      assert.has_error(function() s:submit("exec", "true") end, "ssh: session is closed")
      assert.has_error(function() s:name() end)
      -- jobs and then the session collected while they run
      s = sess(2)
      s:submit("connect")
      s:submit("exec", "sleep 1")
      s:submit("put", "abc", "/tmp/etcdrun-misuse")
      collectgarbage()
      ssh.wait(0.2)
      s = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      -- closed by one coroutine while another awaits a command on it
      local s3 = sess(3)
      local results = sched.run({
         function()
            sched.await(s3:submit("connect"))
            return sched.await(s3:submit("exec", "sleep 86"))
         end,
         function()
            sched.sleep(0.5)
            s3:close()
            return "closed"
         end,
      })
      assert.is_true(results[1].ok, results[1].err)
      assert.are.equal("ECLOSED", results[1].values[3])
      assert.are.equal("closed", results[2].values[1])
      -- the wrong object as self, a to-be-closed session
      assert.has_error(function() s3.submit(running, "exec", "true") end)
      local s4 = sess(1)
      do
         local t <close> = s4 -- luacheck: ignore
      end
      assert.has_error(function() s4:submit("connect") end, "ssh: session is closed")
      -- a NUL inside a command or path would run or touch something else
      local s5 = sess(1)
      assert.has_error(function() s5:submit("exec", "true\0; reboot") end)
      assert.has_error(function() s5:submit("stat", "/tmp/a\0b") end)
      assert.has_error(function() s5:submit("rename", "/tmp/a", "/tmp/b\0c") end)
      assert.has_error(function() s5:submit("put", "x", "/tmp/a\0b") end)
      assert.has_error(function() ssh.session({ host = "x", identities = { "/a\0b" } }) end)
      assert.has_error(function() ssh.key_needs_passphrase("/a\0b") end)
      s5:close()
      for i, cmd in ipairs({ "sleep 85", "sleep 86" }) do
         assert.are.equal("", lab.ssh(dir, "etcd" .. (i * 2 - 1), "pgrep -fx '" .. cmd .. "' || true"))
      end
      lab.ssh(dir, "etcd2", "rm -f /tmp/etcdrun-misuse")
   end)

   it("exits cleanly while keys are generated on threads, 40 times", function()
      local script = [[
         local x509 = require("etcdrun.core.x509")
         local keep = {}
         for i = 1, 4 do
            keep[i] = x509.key_job({ type = "rsa", bits = 2048 })
         end
         os.exit(false)
      ]]
      assert.are.same({ [1] = 40 }, runs(script, 40))
   end)
end)
