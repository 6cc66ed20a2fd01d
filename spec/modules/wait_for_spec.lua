-- The wait_for module: ports from lab node etcd4, URLs (mutual TLS) from the
-- controller against spec/support/httpd.py.
local cjson = require("cjson")
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local localhost = require("etcdrun.localhost")

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
