-- x509_csr: made from a key, kept while subject/SANs/usages/key match,
-- regenerated with the difference as the reason. On the controller.
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local x509 = require("etcdrun.x509")
local fs = require("etcdrun.fs")
local cjson = require("cjson")

local ctl = localhost.new()
local q = helper.q

local function run(args, opts)
   return modtest.run("x509_csr", args, ctl, opts)
end

describe("x509_csr plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local P, K = "/pki/n.csr", "/pki/n.key"
   local ARGS = { path = P, privatekey_path = K, subject = { CN = "n1" }, san = { dns = "n1", ip = "10.0.0.1" },
      key_usage = { "keyEncipherment", "digitalSignature" }, ext_key_usage = { "serverAuth" } }
   local function args(over)
      return plancases.merge(ARGS, over)
   end
   -- a CSR on disk as gather parses it; `over` changes fields
   local function csr(over)
      return plancases.merge({ valid = true, subject = "CN=n1", subject_dn = "CN=n1", san = { "DNS:n1", "IP:10.0.0.1" },
         key_usage = { "digitalSignature", "keyEncipherment" }, ext_key_usage = { "serverAuth" },
         ca = "CA:FALSE", spki = "K1" }, over)
   end
   local function state(c, mode)
      return { path = P, keypath = K, key = { spki = "K1" }, csr = c, st = c and st("file", mode or "0644") }
   end
   local SUMMARY = "subject: CN=n1\nsan: DNS:n1, IP:10.0.0.1\nkey_usage: digitalSignature, keyEncipherment\n"
      .. "ext_key_usage: serverAuth\nbasic_constraints: CA:FALSE\n"
   plancases.run(it, "x509_csr", {
      { name = "creates a missing CSR, the diff a summary",
         state = state(false), args = args(),
         want = { changed = true, msg = "would create: no CSR", existed = false,
            diff = { path = P, before = "", after = SUMMARY }, result = { path = P, reason = "no CSR" } } },
      { name = "keeps a CSR whose every field matches",
         state = state(csr()), args = args(), want = { changed = false, msg = "kept", diff = NONE } },
      { name = "keeps it, fixing its mode",
         state = state(csr(), "0600"), args = args(), want = { changed = true, msg = "kept; mode 0600 -> 0644" } },
      { name = "a SAN missing",
         state = state(csr()), args = args({ san = { dns = "n1", ip = { "10.0.0.1", "10.0.0.2" } } }),
         want = { changed = true, existed = true, msg = "would regenerate: SAN IP:10.0.0.2 missing" } },
      { name = "a SAN not requested",
         state = state(csr({ san = { "DNS:n1", "DNS:old", "IP:10.0.0.1" } })), args = args(),
         want = { msg = "would regenerate: SAN DNS:old not requested" } },
      { name = "a usage missing",
         state = state(csr()), args = args({ ext_key_usage = { "serverAuth", "clientAuth" } }),
         want = { msg = "would regenerate: ext_key_usage clientAuth missing" } },
      { name = "another key",
         state = state(csr({ spki = "K0" })), args = args(),
         want = { msg = "would regenerate: CSR is for another key" } },
      { name = "another subject",
         state = state(csr({ subject = "CN=old", subject_dn = "CN=old" })), args = args(),
         want = { msg = "would regenerate: subject CN=old, want CN=n1" } },
      { name = "basic constraints",
         state = state(csr()), args = args({ ca = true, pathlen = 0 }),
         want = { msg = "would regenerate: basic constraints CA:FALSE, want CA:TRUE, pathlen 0" } },
      { name = "an invalid CSR is replaced",
         state = state({ valid = false }), args = args(),
         want = { msg = "would regenerate: existing file is not a valid CSR",
            diff = { path = P, before = "", after = SUMMARY } } },
      { name = "check mode: a key an earlier task would make",
         state = { path = P, keypath = K, key = false, csr = false }, args = args(), opts = { check = true },
         want = { changed = true, msg = "would create: private key /pki/n.key does not exist yet" } },
      { name = "a missing key fails for real",
         state = { path = P, keypath = K, key = false, csr = false }, args = args(), opts = { host = "n1" },
         want = { failed = true, msg = "x509_csr: private key not found (n1:/pki/n.key)",
            result = { code = "ENOENT" } } },
      { name = "pathlen needs ca",
         state = state(csr()), args = args({ pathlen = 1 }),
         want = { failed = true, msg = "x509_csr: argument 'pathlen' needs ca = true" } },
      { name = "a malformed SAN names the argument",
         state = state(csr()), args = args({ san = { ip = "10.0.0.300" } }),
         also = function(p)
            assert.matches("^x509_csr: argument 'san'", p.msg)
         end, want = { failed = true, result = { code = "EARGS" } } },
   })
end)

describe("x509_csr", function()
   describe("arguments", function()
      local cases = {
         { { privatekey_path = "/k" }, "argument 'path' is required" },
         { { path = "/c" }, "argument 'privatekey_path' is required" },
         { { path = "/c", privatekey_path = "/k", subject = "CN=x" }, "argument 'subject' must be a table" },
         { { path = "/c", privatekey_path = "/k", ca = "yes" }, "argument 'ca' must be true or false" },
         { { path = "/c", privatekey_path = "/k", key_usage = { 1 } }, "argument 'key_usage'[1] must be a string" },
         { { path = "/c", privatekey_path = "/k", sans = {} }, "unknown argument 'sans'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("x509_csr", c[1], "site.lua:9")
            assert.is_nil(ok)
            assert.matches("site.lua:9: module 'x509_csr': " .. c[2], err, 1, true)
         end)
      end
   end)

   describe("on the controller", function()
      local d, key, args
      before_each(function()
         d = helper.tmpdir()
         key = d .. "/n.key"
         assert.is_false(modtest.run("x509_key", { path = key }, ctl).failed)
         args = { path = d .. "/n.csr", privatekey_path = key, subject = { CN = "etcd1", O = "etcd" },
            san = { dns = { "etcd1", "localhost" }, ip = { "127.0.0.1", "::1" } },
            key_usage = { "digitalSignature", "keyEncipherment" }, ext_key_usage = { "serverAuth", "clientAuth" } }
      end)

      it("creates a CSR openssl accepts, then keeps it byte for byte", function()
         local r = run(args)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("created: no CSR", r.msg)
         local pem = helper.read(args.path)
         local info = x509.csr_info(pem)
         assert.are.same({ "etcd1", "localhost" }, info.san.dns)
         assert.are.same({ "serverAuth", "clientAuth" }, info.ext_key_usage)
         assert.are.equal(420, fs.stat(args.path).mode)
         local out, _, code = helper.run("openssl req -verify -noout -in " .. q(args.path))
         assert.are.equal(0, code, out)
         assert.are.equal("subject: CN=etcd1,O=etcd\nsan: DNS:etcd1, DNS:localhost, IP:127.0.0.1, IP:::1\n"
            .. "key_usage: digitalSignature, keyEncipherment\next_key_usage: clientAuth, serverAuth\n"
            .. "basic_constraints: CA:FALSE\n", r.diff.after)

         local r2 = run(args)
         assert.is_false(r2.changed, r2.msg)
         assert.are.equal(pem, helper.read(args.path))
         -- the same SANs spelled differently are the same request
         args.san = { ip = { "0:0::1", "127.0.0.1" }, dns = { "localhost", "etcd1" } }
         assert.is_false(run(args).changed)
         -- the private key never shows
         local body = helper.read(key):match("KEY%-%-%-%-%-\n(.-)\n")
         assert.is_nil(cjson.encode({ r.msg, r.diff, r2.msg }):find(body, 1, true))
      end)

      it("regenerates when a SAN, the subject, a usage or the key changes, saying what", function()
         run(args)
         args.san.ip[3] = "198.18.0.13"
         local r = run(args)
         assert.are.equal("regenerated: SAN IP:198.18.0.13 missing", r.msg)
         assert.are.same({ "127.0.0.1", "::1", "198.18.0.13" }, x509.csr_info(helper.read(args.path)).san.ip)

         args.subject = { CN = "etcd2", O = "etcd" }
         args.san.dns = { "localhost" }
         r = run(args)
         assert.are.equal("regenerated: subject CN=etcd1,O=etcd, want CN=etcd2,O=etcd; SAN DNS:etcd1 not requested",
            r.msg)
         assert.matches("^subject: CN=etcd1,O=etcd\n", r.diff.before)
         assert.matches("^subject: CN=etcd2,O=etcd\n", r.diff.after)

         args.ext_key_usage = { "serverAuth" }
         r = run(args)
         assert.are.equal("regenerated: ext_key_usage clientAuth not requested", r.msg)

         assert.is_true(modtest.run("x509_key", { path = key, regenerate = "always" }, ctl).changed)
         r = run(args)
         assert.are.equal("regenerated: CSR is for another key", r.msg)
         assert.is_false(run(args).changed)
      end)

      it("requests a CA with a pathlen", function()
         local r = run({ path = d .. "/ca.csr", privatekey_path = key, subject = { CN = "sub-ca" }, ca = true,
            pathlen = 0 })
         assert.is_true(r.changed)
         local info = x509.csr_info(helper.read(d .. "/ca.csr"))
         assert.is_true(info.is_ca)
         assert.are.equal(0, info.pathlen)
         r = run({ path = d .. "/ca.csr", privatekey_path = key, subject = { CN = "sub-ca" }, ca = true })
         assert.are.equal("regenerated: basic constraints CA:TRUE, pathlen 0, want CA:TRUE", r.msg)
      end)

      it("check mode reports and writes nothing", function()
         local r = run(args, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would create: no CSR", r.msg)
         assert.is_nil(fs.try.stat(args.path))
         run(args)
         local pem = helper.read(args.path)
         args.san.dns[1] = "etcd9"
         r = run(args, { check = true })
         assert.are.equal("would regenerate: SAN DNS:etcd9 missing; SAN DNS:etcd1 not requested", r.msg)
         assert.are.equal(pem, helper.read(args.path))
      end)

      it("replaces a file that is not a CSR", function()
         helper.write(args.path, "junk")
         assert.are.equal("regenerated: existing file is not a valid CSR", run(args).msg)
      end)

      it("fails on a missing key naming host and path, except in check mode", function()
         args.privatekey_path = d .. "/none.key"
         local r = run(args)
         assert.is_true(r.failed)
         assert.are.equal("x509_csr: private key not found (controller:" .. d .. "/none.key)", r.msg)
         assert.are.equal("ENOENT", r.code)
         r = run(args, { check = true })
         assert.is_false(r.failed)
         assert.are.equal("would create: private key " .. d .. "/none.key does not exist yet", r.msg)
      end)

      it("fails on bad SANs and subjects naming the module", function()
         args.san = { dns = "a", mail = "x@y" }
         local r = run(args)
         assert.are.equal("x509_csr: argument 'san': unknown SAN kind 'mail' (dns, ip, email, uri)", r.msg)
         args.san = { ip = "300.1.1.1" }
         r = run(args)
         assert.is_true(r.failed)
         assert.are.equal("x509_csr: argument 'san': bad IP address '300.1.1.1' in san.ip", r.msg)
         assert.are.equal("EARGS", r.code)
         args.san, args.key_usage = nil, { "signEverything" }
         r = run(args)
         assert.are.equal("x509_csr: argument 'key_usage': unknown key_usage 'signEverything'", r.msg)
         args.key_usage, args.pathlen = nil, 1
         assert.are.equal("x509_csr: argument 'pathlen' needs ca = true", run(args).msg)
      end)
   end)
end)
