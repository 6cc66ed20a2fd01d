-- x509_cert: a CA and certificates it signs, kept across runs while valid
-- and matching, reissued with the reason otherwise. On the controller
-- (temp dirs), checked with openssl; and a node (etcd8) whose own key is
-- certified by a CA that stays on the controller.
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local x509 = require("etcdrun.x509")
local fs = require("etcdrun.fs")
local cjson = require("cjson")

local ctl = localhost.new()
local q = helper.q

local function run(name, args, opts, h)
   local r = modtest.run(name, args, h or ctl, opts)
   return r
end

local function cert(args, opts, h)
   return run("x509_cert", args, opts, h)
end

-- openssl verify of leaf against ca, with an optional purpose; returns output, code.
local function openssl_verify(ca, leaf, purpose)
   local out, err, code = helper.run(("openssl verify %s -CAfile %s %s"):format(
      purpose and ("-purpose " .. purpose) or "", q(ca), q(leaf)))
   return out .. err, code
end

local function body(pem)
   return pem:match("%-%-%-%-%-\n(.-)\n")
end


-- Inside an `it`: report the test as skipped (with why) when no lab can run here.
local function no_lab(dir, why_not)
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

describe("x509_cert plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local pki = require("etcdrun.pki")
   local NOW, DAY = 1800000000, 86400
   local P, K, CA, CAK = "/pki/n.crt", "/pki/n.key", "/pki/ca.crt", "/pki/ca.key"
   local merge = plancases.merge
   local LEAF = { subject = { CN = "n1" }, subject_dn = "CN=n1", issuer_dn = "CN=etcd-ca", serial = "01",
      san = { dns = { "n1" }, ip = { "10.0.0.1" } }, key_usage = { "digitalSignature", "keyEncipherment" },
      ext_key_usage = { "serverAuth" }, is_ca = false, not_after = NOW + 100 * DAY }
   local ROOT = { subject = { CN = "etcd-ca" }, subject_dn = "CN=etcd-ca", issuer_dn = "CN=etcd-ca", serial = "02",
      san = {}, key_usage = { "cRLSign", "keyCertSign" }, ext_key_usage = {}, is_ca = true, self_signed = true,
      pathlen = 0, not_after = NOW + 3000 * DAY }
   -- a leaf signed by the CA, as gather finds it; `facts` changes the certificate's facts
   local function leaf(info, facts, over)
      return merge({ now = NOW, ca_host = "controller", pem = {},
         paths = { path = P, privatekey_path = K, ca_cert_path = CA, ca_key_path = CAK },
         key = { spki = "K1", desc = "ec P-256" }, ca_cert = { valid = true, subject_dn = "CN=etcd-ca" },
         ca_key = true, ca_key_matches = true, st = st("file", "0644"),
         cert = merge({ valid = true, info = merge(LEAF, info), spki = "K1", verified = true }, facts) }, over)
   end
   local function root(info, over)
      return merge({ now = NOW, ca_host = "controller", pem = {}, paths = { path = CA, privatekey_path = CAK },
         key = { spki = "C1", desc = "ec P-256" }, st = st("file", "0644"),
         cert = { valid = true, info = merge(ROOT, info), spki = "C1", verified = true } }, over)
   end
   local LARGS = { path = P, provider = "ca", privatekey_path = K, subject = { CN = "n1" },
      san = { dns = "n1", ip = "10.0.0.1" }, ca_cert_path = CA, ca_key_path = CAK }
   local CARGS = { path = CA, provider = "selfsigned", privatekey_path = CAK,
      subject = { CN = "etcd-ca" }, pathlen = 0 }
   local function largs(over)
      return merge(LARGS, over)
   end
   plancases.run(it, "x509_cert", {
      { name = "keeps a valid leaf",
         state = leaf(), args = largs(),
         want = { changed = false, diff = NONE, msg = "valid until " .. pki.iso(NOW + 100 * DAY),
            result = { path = P, serial = "01", not_after = pki.iso(NOW + 100 * DAY), days_left = 100,
               sans = { "DNS:n1", "IP:10.0.0.1" }, subject = "CN=n1", issuer = "CN=etcd-ca" } } },
      { name = "keeps it, fixing the mode",
         state = leaf(nil, nil, { st = st("file", "0600") }), args = largs(),
         want = { changed = true, attrs_only = P,
            msg = "valid until " .. pki.iso(NOW + 100 * DAY) .. "; mode 0600 -> 0644" } },
      { name = "renews inside the renew window",
         state = leaf({ not_after = NOW + 10 * DAY }), args = largs(),
         want = { changed = true, verb = "renew", msg = "would renew: expires in 10 days" } },
      { name = "keeps it outside a shorter window",
         state = leaf({ not_after = NOW + 10 * DAY }), args = largs({ renew_before_days = 5 }),
         want = { changed = false } },
      { name = "renews an expired certificate",
         state = leaf({ not_after = NOW - 3 * DAY }), args = largs(),
         want = { changed = true, msg = "would renew: expired 3 days ago" } },
      { name = "expiring and mismatched is a reissue, with every reason",
         state = leaf({ not_after = NOW + 10 * DAY }),
         args = largs({ san = { dns = "n1", ip = { "10.0.0.1", "10.0.0.2" } } }),
         want = { verb = "reissue", msg = "would reissue: expires in 10 days; SAN IP:10.0.0.2 missing" } },
      { name = "a SAN not requested",
         state = leaf({ san = { dns = { "n1", "old" }, ip = { "10.0.0.1" } } }), args = largs(),
         want = { msg = "would reissue: SAN DNS:old not requested" } },
      { name = "a usage missing",
         state = leaf(), args = largs({ ext_key_usage = { "serverAuth", "clientAuth" } }),
         want = { msg = "would reissue: extended key usage clientAuth missing" } },
      { name = "another subject",
         state = leaf({ subject = { CN = "old" }, subject_dn = "CN=old" }), args = largs(),
         want = { msg = "would reissue: subject CN=old, want CN=n1" } },
      { name = "a new key (another type or size): the certificate no longer matches it",
         state = leaf(nil, { spki = "K0" }), args = largs(),
         want = { msg = "would reissue: certificate does not match the private key" } },
      { name = "signed by another CA",
         state = leaf(nil, { verified = false, verify_err = "x509.verify: certificate signature failure (n.crt)" }),
         args = largs(),
         want = { msg = "would reissue: not issued by CA CN=etcd-ca (certificate signature failure)" } },
      { name = "issues a missing certificate; the diff is a summary, never PEM",
         state = leaf(nil, nil, { cert = false }), args = largs(),
         want = { changed = true, verb = "issue", msg = "would issue: no certificate",
            diff = { path = P, before = "", after = "subject: CN=n1\nissuer: CN=etcd-ca\nsan: DNS:n1, IP:10.0.0.1\n"
               .. "key_usage: digitalSignature, keyEncipherment\next_key_usage: serverAuth\nkey: ec P-256\n"
               .. "not_after: ~" .. pki.iso(NOW + 365 * DAY) .. "\nserial: (new)\n" } } },
      { name = "replaces a file that is not a certificate",
         state = leaf(nil, nil, { cert = { valid = false } }), args = largs(),
         want = { msg = "would reissue: existing file is not a certificate" } },
      { name = "check mode: a CA an earlier task would make",
         state = leaf(nil, nil, { ca_cert = false, ca_key = false }), args = largs(), opts = { check = true },
         want = { changed = true, msg = "would issue: an input does not exist yet (made by an earlier task)" } },
      { name = "a missing input fails for real",
         state = leaf(nil, nil, { ca_cert = false }), args = largs(),
         want = { failed = true, msg = "x509_cert: CA certificate not found (controller:/pki/ca.crt)",
            result = { code = "ENOENT" } } },
      { name = "a CA key that does not match the CA certificate",
         state = leaf(nil, nil, { ca_key_matches = false }), args = largs(),
         want = { failed = true, result = { code = "EKEYMISMATCH" },
            msg = "x509_cert: CA key /pki/ca.key does not match CA certificate /pki/ca.crt (controller)" } },
      { name = "a CSR for another key",
         state = leaf(nil, nil, { csr = { valid = true, subject = { CN = "n1" }, san = {}, spki = "K9" },
            paths = { path = P, privatekey_path = K, csr_path = "/pki/n.csr", ca_cert_path = CA, ca_key_path = CAK } }),
         args = { path = P, provider = "ca", privatekey_path = K, csr_path = "/pki/n.csr", ca_cert_path = CA,
            ca_key_path = CAK }, opts = { host = "n1" },
         want = { failed = true, msg = "x509_cert: CSR /pki/n.csr is not for private key /pki/n.key (n1)" } },
      { name = "keeps a self-signed CA",
         state = root(), args = CARGS, want = { changed = false } },
      { name = "reissues a CA whose pathlen changed",
         state = root(), args = merge(CARGS, { pathlen = 1 }), want = { msg = "would reissue: pathlen 0, want 1" } },
      { name = "reissues a CA certificate that is not a CA",
         state = root({ is_ca = false }),
         args = CARGS, want = { msg = "would reissue: not a self-signed CA certificate" } },
      { name = "reissues a CA whose self-signature does not verify",
         state = root(nil, { cert = merge(root().cert, { verified = false }) }), args = CARGS,
         want = { msg = "would reissue: self-signature does not verify" } },
      { name = "san is for provider ca",
         state = root(), args = merge(CARGS, { san = { dns = "x" } }),
         want = { failed = true,
            msg = "x509_cert: argument 'san' is for provider 'ca'", result = { code = "EARGS" } } },
      { name = "pathlen is for provider selfsigned",
         state = leaf(), args = largs({ pathlen = 1 }),
         want = { failed = true, msg = "x509_cert: argument 'pathlen' is for provider 'selfsigned'" } },
   })
end)

describe("x509_cert", function()
   describe("arguments", function()
      local cases = {
         { { path = "/c" }, "argument 'provider' is required" },
         { { path = "/c", provider = "acme" }, "argument 'provider' must be one of selfsigned, ca, got 'acme'" },
         { { path = "/c", provider = "selfsigned", subject = { CN = "x" } },
            "argument 'privatekey_path' is required when provider is 'selfsigned'" },
         { { path = "/c", provider = "ca", privatekey_path = "/k", subject = { CN = "x" }, ca_key_path = "/ck" },
            "argument 'ca_cert_path' is required when provider is 'ca'" },
         { { path = "/c", provider = "ca", days = "10" }, "argument 'days' must be an integer" },
         { { path = "/c", provider = "ca", sans = {} }, "unknown argument 'sans'" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("x509_cert", c[1], "site.lua:7")
            assert.is_nil(ok)
            assert.matches("site.lua:7: module 'x509_cert': " .. c[2], err, 1, true)
         end)
      end

      local combos = {
         { { pathlen = 1 }, "x509_cert: argument 'pathlen' is for provider 'selfsigned'" },
         { { subject = false, privatekey_path = false },
            "x509_cert: provider 'ca' needs csr_path, or privatekey_path and subject" },
         { { csr_path = "/x.csr" }, "x509_cert: argument 'subject' comes from csr_path: give one or the other" },
         { { san = { dns = "a", mail = "b" } },
            "x509_cert: argument 'san': unknown SAN kind 'mail' (dns, ip, email, uri)" },
         { { ext_key_usage = { "serverauth" } },
            "x509_cert: argument 'ext_key_usage': unknown ext_key_usage 'serverauth'" },
         { { subject = { cn = "x" } },
            "x509_cert: argument 'subject': unknown attribute 'cn' (known: DC, C," },
         { { subject = { CN = "" } }, "x509_cert: argument 'subject': CN must be a non-empty string" },
      }
      for _, c in ipairs(combos) do
         it("refuses " .. c[2], function()
            local d = helper.tmpdir()
            local a = { path = d .. "/x.crt", provider = "ca", privatekey_path = d .. "/k", subject = { CN = "x" },
               ca_cert_path = d .. "/ca.crt", ca_key_path = d .. "/ca.key" }
            for k, v in pairs(c[1]) do
               a[k] = v or nil
            end
            -- inputs exist, so what fails is the argument
            run("x509_key", { path = d .. "/k" })
            run("x509_key", { path = d .. "/ca.key" })
            cert({ path = d .. "/ca.crt", provider = "selfsigned", privatekey_path = d .. "/ca.key",
               subject = { CN = "ca" } })
            local r = cert(a)
            assert.is_true(r.failed)
            assert.are.equal(c[2], r.msg:sub(1, #c[2]))
            assert.is_nil(fs.try.stat(d .. "/x.crt"))
         end)
      end
   end)

   describe("on the controller", function()
      local d, ca, leaf
      before_each(function()
         d = helper.tmpdir()
         assert.is_false(run("x509_key", { path = d .. "/ca.key" }).failed)
         assert.is_false(run("x509_key", { path = d .. "/n.key" }).failed)
         ca = { path = d .. "/ca.crt", provider = "selfsigned", privatekey_path = d .. "/ca.key",
            subject = { CN = "etcd-ca" }, pathlen = 0 }
         leaf = { path = d .. "/n.crt", provider = "ca", privatekey_path = d .. "/n.key", subject = { CN = "etcd1" },
            san = { dns = { "etcd1", "localhost" }, ip = { "127.0.0.1", "::1" } },
            ext_key_usage = { "serverAuth", "clientAuth" },
            ca_cert_path = d .. "/ca.crt", ca_key_path = d .. "/ca.key" }
      end)

      it("makes a CA, then keeps it (same serial, same bytes)", function()
         local r = cert(ca)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("issued: no certificate", r.msg)
         local pem = helper.read(ca.path)
         local info = x509.info(pem)
         assert.is_true(info.is_ca and info.self_signed)
         assert.are.equal(0, info.pathlen)
         assert.are.equal(info.serial, r.serial)
         assert.are.equal(3650, r.days_left)
         assert.matches("^subject: CN=etcd%-ca\nissuer: CN=etcd%-ca\nca: true, pathlen 0\n", r.diff.after)
         local r2 = cert(ca)
         assert.is_false(r2.changed, r2.msg)
         assert.are.equal(r.serial, r2.serial)
         assert.is_nil(r2.reason)
         assert.are.equal(pem, helper.read(ca.path))
         -- a different pathlen is a different CA certificate (same key)
         ca.pathlen = nil
         r = cert(ca)
         assert.are.equal("reissued: pathlen 0, want nil", r.msg)
      end)

      it("issues a leaf openssl verifies for server and client use, then keeps it", function()
         cert(ca)
         local r = cert(leaf)
         assert.is_false(r.failed, r.msg)
         assert.are.equal("issued: no certificate", r.msg)
         assert.are.same({ "DNS:etcd1", "DNS:localhost", "IP:127.0.0.1", "IP:::1" }, r.sans)
         assert.are.equal("CN=etcd-ca", r.issuer)
         for _, purpose in ipairs({ "sslserver", "sslclient" }) do
            local out, code = openssl_verify(ca.path, leaf.path, purpose)
            assert.are.equal(0, code, out)
         end
         assert.are.equal(420, fs.stat(leaf.path).mode)
         local pem = helper.read(leaf.path)
         local r2 = cert(leaf)
         assert.is_false(r2.changed, r2.msg)
         assert.are.equal(r.serial, r2.serial)
         assert.are.equal(pem, helper.read(leaf.path))
         assert.matches("^valid until %d+%-%d+%-%d+T", r2.msg)
         -- neither key ever shows
         local shown = cjson.encode({ r.msg, r.diff, r2.msg, r.sans })
         assert.is_nil(shown:find(body(helper.read(d .. "/n.key")), 1, true))
         assert.is_nil(shown:find(body(helper.read(d .. "/ca.key")), 1, true))
         assert.is_nil(r.diff.after:find("BEGIN", 1, true))
      end)

      it("reissues when a SAN is missing, with the reason and a summary diff", function()
         cert(ca)
         local first = cert(leaf)
         leaf.san.ip[3] = "198.18.0.13"
         local r = cert(leaf, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would reissue: SAN IP:198.18.0.13 missing", r.msg)
         assert.are.equal(first.serial, x509.info(helper.read(leaf.path)).serial) -- check wrote nothing
         r = cert(leaf)
         assert.are.equal("reissued: SAN IP:198.18.0.13 missing", r.msg)
         assert.are.equal("SAN IP:198.18.0.13 missing", r.reason)
         assert.are_not.equal(first.serial, r.serial)
         assert.matches("\nsan: DNS:etcd1, DNS:localhost, IP:127.0.0.1, IP:::1\n", r.diff.before, 1, true)
         assert.matches("\nsan: DNS:etcd1, DNS:localhost, IP:127.0.0.1, IP:198.18.0.13, IP:::1\n", r.diff.after,
            1, true)
         assert.matches("serial: " .. first.serial, r.diff.before, 1, true)
         assert.matches("serial: " .. r.serial, r.diff.after, 1, true)
         assert.is_false(cert(leaf).changed)
         -- a SAN no longer asked for is removed too, and a usage change reissues
         leaf.san.dns = { "localhost" }
         leaf.ext_key_usage = { "serverAuth" }
         r = cert(leaf)
         assert.are.equal("reissued: SAN DNS:etcd1 not requested; extended key usage clientAuth not requested", r.msg)
      end)

      it("renews inside the renew window, and says when it expires", function()
         ca.days = 10
         local r = cert(ca)
         assert.are.equal("issued: no certificate", r.msg)
         r = cert(ca) -- 10 days of validity, renewed 30 days before expiry: always renews
         assert.is_true(r.changed)
         assert.are.equal("renewed: expires in 10 days", r.msg)
         ca.renew_before_days = 5
         assert.is_false(cert(ca).changed)
         -- the CA renewed with the same key still verifies the leaves it signed
         local l = cert(leaf)
         ca.renew_before_days = 30
         cert(ca)
         assert.are.equal(l.serial, cert(leaf).serial)
         local out, code = openssl_verify(ca.path, leaf.path)
         assert.are.equal(0, code, out)
      end)

      it("reissues a certificate signed by another CA", function()
         cert(ca)
         cert(leaf)
         run("x509_key", { path = d .. "/ca.key", regenerate = "always" })
         local r = cert(leaf, { check = true })
         assert.is_true(r.failed)
         assert.are.equal(("x509_cert: CA key %s/ca.key does not match CA certificate %s/ca.crt (controller)")
            :format(d, d), r.msg)
         r = cert(ca)
         assert.are.equal("reissued: certificate does not match the private key", r.msg)
         r = cert(leaf)
         assert.are.equal("reissued: not issued by CA CN=etcd-ca (unable to get local issuer certificate)", r.msg)
         local out, code = openssl_verify(ca.path, leaf.path)
         assert.are.equal(0, code, out)
         assert.is_false(cert(leaf).changed)
      end)

      it("reissues when the key changed", function()
         cert(ca)
         cert(leaf)
         run("x509_key", { path = d .. "/n.key", regenerate = "always" })
         local r = cert(leaf)
         assert.are.equal("reissued: certificate does not match the private key", r.msg)
         assert.is_true(x509.key_matches(helper.read(d .. "/n.key"), helper.read(leaf.path)))
      end)

      it("replaces a file that is not a certificate", function()
         cert(ca)
         helper.write(leaf.path, "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n")
         assert.are.equal("reissued: existing file is not a certificate", cert(leaf).msg)
      end)

      it("works with an RSA 4096 key", function()
         run("x509_key", { path = d .. "/n.key", type = "rsa", bits = 4096 })
         assert.is_true(cert(ca).changed)
         local r = cert(leaf)
         assert.is_false(r.failed, r.msg)
         assert.matches("\nkey: rsa 4096\n", r.diff.after, 1, true)
         local out, code = openssl_verify(ca.path, leaf.path, "sslserver")
         assert.are.equal(0, code, out)
         assert.is_false(cert(leaf).changed)
      end)

      it("signs a CSR file, keeping the certificate while the CSR's key matches", function()
         cert(ca)
         local csr = { path = d .. "/c.csr", privatekey_path = d .. "/n.key", subject = { CN = "admin" } }
         assert.is_true(run("x509_csr", csr).changed)
         local a = { path = d .. "/c.crt", provider = "ca", csr_path = csr.path, ext_key_usage = { "clientAuth" },
            ca_cert_path = ca.path, ca_key_path = d .. "/ca.key", days = 60 }
         local r = cert(a)
         assert.is_false(r.failed, r.msg)
         assert.are.equal("CN=admin", r.subject)
         assert.are.equal(60, r.days_left)
         local out, code = openssl_verify(ca.path, a.path, "sslclient")
         assert.are.equal(0, code, out)
         assert.is_false(cert(a).changed)
         run("x509_key", { path = d .. "/n.key", regenerate = "always" })
         run("x509_csr", csr)
         assert.are.equal("reissued: certificate is not for the CSR's key", cert(a).msg)
      end)

      it("check mode writes nothing, also when its inputs do not exist yet", function()
         local r = cert(ca, { check = true })
         assert.are.equal("would issue: no certificate", r.msg)
         assert.matches("not_after: ~", r.diff.after, 1, true)
         leaf.privatekey_path = d .. "/later.key"
         r = cert(leaf, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would issue: an input does not exist yet (made by an earlier task)", r.msg)
         assert.are.same({ "ca.key", "n.key" }, fs.list(d))
      end)

      it("fails when an input is missing outside check mode, naming host and path", function()
         local r = cert(leaf)
         assert.is_true(r.failed)
         assert.are.equal("x509_cert: CA certificate not found (controller:" .. d .. "/ca.crt)", r.msg)
         assert.are.equal("ENOENT", r.code)
      end)

      it("fixes a drifted mode without reissuing", function()
         cert(ca)
         local r = cert(leaf)
         fs.chmod(leaf.path, 384)
         local r2 = cert(leaf)
         assert.is_true(r2.changed)
         assert.are.equal("; mode 0600 -> 0644", r2.msg:sub(-19))
         assert.are.equal(r.serial, r2.serial)
         assert.are.equal(420, fs.stat(leaf.path).mode)
      end)
   end)

   describe("on a node, with the CA on the controller", function()
      local dir, why_not, h, d
      local base = "/root/etcdrun-x509-cert-test"
      setup(function()
         dir, why_not = lab.ensure(10)
         if dir then
            h = lab.host(dir, 8)
            assert(h:exec("rm -rf " .. base .. " && mkdir -p " .. base))
         end
      end)
      teardown(function()
         if h then
            h:exec("rm -rf " .. base)
            h:close()
         end
      end)

      it("certifies the node's own key; the CA key never reaches the node", function()
         if no_lab(dir, why_not) then return end
         d = helper.tmpdir()
         run("x509_key", { path = d .. "/ca.key" })
         cert({ path = d .. "/ca.crt", provider = "selfsigned", privatekey_path = d .. "/ca.key",
            subject = { CN = "etcd-ca" } })
         local key = run("x509_key", { path = base .. "/peer.key" }, nil, h)
         assert.is_false(key.failed, key.msg)
         local a = { path = base .. "/peer.crt", provider = "ca", privatekey_path = base .. "/peer.key",
            subject = { CN = "etcd8" }, san = { ip = { "198.18.0.18" } }, ca_on_controller = true,
            ca_cert_path = d .. "/ca.crt", ca_key_path = d .. "/ca.key",
            ext_key_usage = { "serverAuth", "clientAuth" } }
         local r = cert(a, { check = true }, h)
         assert.is_true(r.changed)
         assert.are.equal("peer.key\n", lab.ssh(dir, "etcd8", "ls " .. base))
         r = cert(a, nil, h)
         assert.is_false(r.failed, r.msg)
         assert.are.equal("issued: no certificate", r.msg)
         helper.write(d .. "/peer.crt", h:read(a.path))
         local out, code = openssl_verify(d .. "/ca.crt", d .. "/peer.crt", "sslserver")
         assert.are.equal(0, code, out)
         assert.are.equal("peer.crt\npeer.key\n", lab.ssh(dir, "etcd8", "ls " .. base))
         -- past the PKCS#8 header every P-256 key shares: the private scalar
         local secret = body(helper.read(d .. "/ca.key")):sub(49, 64)
         local _, grep = lab.ssh(dir, "etcd8", "grep -rqF -e " .. q(secret) .. " /root /tmp /etc")
         assert.are_not.equal(0, grep)
         -- the same probe finds the node's own key, so a miss above means something
         local own = body(h:read(base .. "/peer.key")):sub(49, 64)
         _, grep = lab.ssh(dir, "etcd8", "grep -rqF -e " .. q(own) .. " /root")
         assert.are.equal(0, grep)
         assert.is_false(cert(a, nil, h).changed)
      end)
   end)
end)
