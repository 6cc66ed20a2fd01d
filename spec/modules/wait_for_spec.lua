-- The wait_for module: ports from lab node etcd4, URLs (mutual TLS) from the
-- controller against spec/support/httpd.py.
local cjson = require("cjson")
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")
local module = require("etcdrun.module")

local q = helper.q

local function sh(cmd)
   local out, err, code = helper.run(cmd)
   assert(code == 0, cmd .. ": " .. err)
   return out
end

-- A CA, a server certificate for 127.0.0.1 and a client certificate (EC).
local function make_certs(d)
   local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
   sh("cd " .. q(d) .. " && openssl req -x509 " .. ec .. " -keyout ca.key -out ca.crt"
      .. " -subj /CN=etcdrun-test-ca -days 1 2>/dev/null")
   helper.write(d .. "/server.ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
   helper.write(d .. "/client.ext", "extendedKeyUsage=clientAuth\n")
   for _, who in ipairs({ "server", "client" }) do
      sh("cd " .. q(d) .. " && openssl req " .. ec .. " -keyout " .. who .. ".key -out " .. who
         .. ".csr -subj /CN=" .. who .. " 2>/dev/null && openssl x509 -req -in " .. who .. ".csr -CA ca.crt"
         .. " -CAkey ca.key -CAcreateserial -days 1 -extfile " .. who .. ".ext -out " .. who .. ".crt 2>/dev/null")
   end
end

describe("wait_for module", function()
   describe("arguments", function()
      for _, c in ipairs({
         { { host = "a" }, "one of port, url is required" },
         { { port = 1, url = "http://x/" }, "arguments port and url are mutually exclusive" },
         { { port = 1, state = "up" }, "argument 'state' must be one of started, stopped, got 'up'" },
         { { port = "22" }, "argument 'port' must be an integer, got '22'" },
      }) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("wait_for", c[1], "site.lua:7")
            assert.is_nil(ok)
            assert.are.equal("site.lua:7: module 'wait_for': " .. c[2], err)
         end)
      end
      for _, c in ipairs({
         { { url = "http://x/", state = "stopped" }, "wait_for: argument 'state': stopped applies to port only" },
         { { url = "ftp://x/" }, "wait_for: argument 'url' must be an http:// or https:// URL, got 'ftp://x/'" },
         { { port = 22, host = "a;reboot" }, "wait_for: argument 'host': not a host name or address: 'a;reboot'" },
         { { port = 22, timeout = -1 }, "wait_for: argument 'timeout' must not be negative" },
         { { url = "https://x/", cert = "c.crt" }, "wait_for: arguments cert and key go together" },
      }) do
         it("fails in check: " .. c[2], function()
            local r = modtest.run("wait_for", c[1], localhost.new())
            assert.is_true(r.failed)
            assert.are.equal(c[2], r.msg)
         end)
      end
   end)

   describe("ports on the lab", function()
      local dir, why_not, h
      setup(function()
         dir, why_not = lab.ensure(10)
         if dir then
            h = lab.host(dir, 4)
         end
      end)

      it("finds an open port at once, from the node, never changed", function()
         if not dir then pending(why_not) return end
         local r = modtest.run("wait_for", { port = 22 }, h)
         assert.is_false(r.failed, r.msg)
         assert.is_false(r.changed)
         assert.matches("^127%.0%.0%.1:22 did open after %d%.%d s$", r.msg)
         assert.are.equal(1, r.tries)
         -- another node, as this node sees it
         r = modtest.run("wait_for", { host = "198.18.0.15", port = 22 }, h)
         assert.is_false(r.failed, r.msg)
         r = modtest.run("wait_for", { port = 1, state = "stopped" }, h)
         assert.is_false(r.failed, r.msg)
         assert.matches("^127%.0%.0%.1:1 did close", r.msg)
      end)

      it("fails clearly on a port that stays closed (or open)", function()
         if not dir then pending(why_not) return end
         local r = modtest.run("wait_for", { port = 1, timeout = 1, sleep = 0.3 }, h)
         assert.is_true(r.failed)
         assert.is_false(r.changed)
         assert.matches("^wait_for: 127%.0%.0%.1:1 did not open within 1 s on etcd4 %(%d+ tries; "
            .. "last: Connection refused%)$", r.msg)
         assert.is_true(tonumber(r.msg:match("(%d+) tries")) >= 3)
         r = modtest.run("wait_for", { port = 22, state = "stopped", timeout = 0.5, sleep = 0.2 }, h)
         assert.is_true(r.failed)
         assert.matches("did not close within 0.5 s on etcd4 %(%d+ tries; last: still open%)$", r.msg)
      end)

      it("waits for a port that opens later", function()
         if not dir then pending(why_not) return end
         local port = 18000 + math.random(0, 999)
         -- the subshell becomes `timeout` (exec), which passes a TERM on to the server
         local bg = assert(h:exec(("(sleep 1; exec timeout 10 python3 -m http.server %d --bind 127.0.0.1) "
            .. ">/dev/null 2>&1 & echo $!"):format(port)))
         local server = assert(bg.stdout:match("^(%d+)"))
         local r = modtest.run("wait_for", { port = port, timeout = 8, sleep = 0.25 }, h)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.tries > 1)
         assert.is_true(r.elapsed >= 0.5) -- it did wait for the server to come up
         h:exec("kill " .. server)
      end)

      it("in check mode tries once and reports skipped instead of waiting", function()
         if not dir then pending(why_not) return end
         local t0 = os.time()
         local r = modtest.run("wait_for", { port = 1, timeout = 30 }, h, { check = true })
         assert.is_true(r.skipped)
         assert.is_false(r.changed)
         assert.are.equal("check mode: 127.0.0.1:1 does not open yet (Connection refused); a real run would "
            .. "wait up to 30 s", r.msg)
         assert.is_true(os.time() - t0 < 5)
         r = modtest.run("wait_for", { port = 22 }, h, { check = true })
         assert.is_nil(r.skipped)
         assert.are.equal("127.0.0.1:22 did open", r.msg)
      end)
   end)

   describe("URLs from the controller", function()
      local dir, pid, ports, certs
      local ctl = localhost.new()
      local function url(path, kind)
         return ("https://127.0.0.1:%d%s"):format(ports[kind or "mtls"], path)
      end

      setup(function()
         dir = helper.tmpdir()
         certs = dir .. "/certs"
         sh("mkdir " .. q(certs))
         make_certs(certs)
         local portfile = dir .. "/ports.json"
         pid = sh("/usr/bin/python3 spec/support/httpd.py --dir " .. q(dir) .. " --port-file " .. q(portfile)
            .. " --lifetime 60 --cert " .. q(certs .. "/server.crt") .. " --key " .. q(certs .. "/server.key")
            .. " --client-ca " .. q(certs .. "/ca.crt") .. " >/dev/null 2>&1 & echo $!"):match("%d+")
         for _ = 1, 200 do
            local s = helper.read(portfile)
            if s then
               ports = cjson.decode(s)
               break
            end
            sh("sleep 0.05")
         end
         assert(ports, "test server did not start")
      end)
      teardown(function()
         if pid then
            helper.run("kill " .. pid)
         end
      end)

      it("waits for a URL over mutual TLS, with a body match", function()
         local args = { url = url("/echo"), ca = certs .. "/ca.crt", cert = certs .. "/client.crt",
            key = certs .. "/client.key", match = '"client_cn": "client"', timeout = 5 }
         local r = modtest.run("wait_for", args, ctl)
         assert.is_false(r.failed, r.msg)
         assert.is_false(r.changed)
         assert.are.equal(1, r.tries)
         -- files relative to the playbook, or PEM text
         r = modtest.run("wait_for", { url = url("/echo"), ca = "ca.crt", cert = "client.crt",
            key = helper.read(certs .. "/client.key") }, ctl, { playbook_dir = certs })
         assert.is_false(r.failed, r.msg)
         assert.are.same({ helper.read(certs .. "/client.key") }, r.secrets)
      end)

      it("fails after the timeout naming the URL and the last error", function()
         local r = modtest.run("wait_for", { url = url("/echo"), ca = certs .. "/ca.crt", timeout = 0.5,
            sleep = 0.2 }, ctl)
         assert.is_true(r.failed)
         assert.matches("^wait_for: " .. url("/echo"):gsub("%p", "%%%0") .. " did not answer HTTP 200 within "
            .. "0.5 s from the controller %(%d+ tries; last: http.request: .+%)$", r.msg)
         local base = { ca = certs .. "/ca.crt", cert = certs .. "/client.crt", key = certs .. "/client.key",
            timeout = 0.3, sleep = 0.2 }
         base.url = url("/status/503")
         r = modtest.run("wait_for", base, ctl)
         assert.is_true(r.failed)
         assert.matches("last: HTTP 503%)$", r.msg)
         base.url, base.match = url("/echo"), "never there"
         r = modtest.run("wait_for", base, ctl)
         assert.matches("last: body does not match 'never there'%)$", r.msg)
         -- the server's certificate is not trusted without the CA
         r = modtest.run("wait_for", { url = url("/echo", "https"), timeout = 0, sleep = 0 }, ctl)
         assert.is_true(r.failed)
         assert.matches("%(1 try; last: http.request: .*certificate", r.msg)
      end)
   end)
end)

-- The decision alone: the outcome of the tries as gather records it (one try
-- under --check, the whole wait otherwise), no node.
describe("wait_for plan", function()
   local mod = assert(module.load("wait_for"))
   local function failed(msg)
      return { failed = true, changed = false, msg = "wait_for: " .. msg }
   end
   local cases = {
      { name = "a port that opened", state = { ready = true, tries = 3, elapsed = 2.04 },
         args = { port = 2379 }, opts = { host = "etcd1" },
         want = { changed = false, msg = "127.0.0.1:2379 did open after 2.0 s",
            result = { elapsed = 2.04, tries = 3 } } },
      { name = "a port that closed", state = { ready = true, tries = 1, elapsed = 0.01 },
         args = { port = 2380, host = "10.0.0.5", state = "stopped" },
         want = { changed = false, msg = "10.0.0.5:2380 did close after 0.0 s",
            result = { elapsed = 0.01, tries = 1 } } },
      { name = "a URL that answered", state = { ready = true, tries = 1, elapsed = 0.3 },
         args = { url = "https://user:pw@10.0.0.5:2379/health", status = 204 },
         want = { changed = false, msg = "https://***@10.0.0.5:2379/health did answer HTTP 204 after 0.3 s",
            result = { elapsed = 0.3, tries = 1 } } },
      { name = "a port that never opened, on the host",
         state = { ready = false, tries = 1, why = "Connection refused" },
         args = { port = 2379, timeout = 0 }, opts = { host = "etcd4" },
         want = failed("127.0.0.1:2379 did not open within 0 s on etcd4 (1 try; last: Connection refused)") },
      { name = "a port that stayed open", state = { ready = false, tries = 6, why = "still open" },
         args = { port = 22, state = "stopped", timeout = 5 }, opts = { host = "etcd4" },
         want = failed("127.0.0.1:22 did not close within 5 s on etcd4 (6 tries; last: still open)") },
      { name = "a URL that never answered, from the controller",
         state = { ready = false, tries = 4, why = "HTTP 503" },
         args = { url = "http://127.0.0.1:8080/health", timeout = 3 }, opts = { host = "etcd4" },
         want = failed("http://127.0.0.1:8080/health did not answer HTTP 200 within 3 s from the controller "
            .. "(4 tries; last: HTTP 503)") },
      { name = "check: ready at the first try", state = { ready = true, tries = 1 },
         args = { port = 22 }, opts = { check = true },
         want = { changed = false, msg = "127.0.0.1:22 did open" } },
      { name = "check: not ready yet is skipped, not failed",
         state = { ready = false, tries = 1, why = "no answer within 5 s" },
         args = { port = 2379, host = "etcd1", timeout = 120 }, opts = { check = true },
         want = { changed = false, skipped = true, msg = "check mode: etcd1:2379 does not open yet "
            .. "(no answer within 5 s); a real run would wait up to 120 s" } },
      { name = "check: a URL not ready", state = { ready = false, tries = 1, why = "body does not match 'true'" },
         args = { url = "http://h/health", match = "true" }, opts = { check = true },
         want = { changed = false, skipped = true, msg = "check mode: http://h/health does not answer HTTP 200 "
            .. "yet (body does not match 'true'); a real run would wait up to 60 s" } },
      { name = "stopped is for ports", state = {}, args = { url = "http://x/", state = "stopped" },
         want = failed("argument 'state': stopped applies to port only") },
      { name = "not an http URL", state = {}, args = { url = "ftp://x/" }, opts = { check = true },
         want = failed("argument 'url' must be an http:// or https:// URL, got 'ftp://x/'") },
      { name = "a host with shell syntax", state = {}, args = { port = 22, host = "a;reboot" },
         want = failed("argument 'host': not a host name or address: 'a;reboot'") },
      { name = "a negative sleep", state = {}, args = { port = 22, sleep = -1 },
         want = failed("argument 'sleep' must not be negative") },
      { name = "a key without a cert", state = {}, args = { url = "https://x/", key = "c.key" },
         want = failed("arguments cert and key go together") },
   }
   for _, case in ipairs(cases) do
      it(case.name, function()
         assert.are.same(case.want, module.plan(mod, case.state, case.args, case.opts))
      end)
   end

   it("gather tries nothing for arguments plan refuses", function()
      local args = assert(modtest.validate("wait_for", { port = 22, host = "a;reboot" }))
      assert.are.same({}, mod.gather({ host = localhost.new(), check = false }, args))
   end)
end)
