local helper = require("support.helper")
local x509 = require("etcdrun.core.x509")
local facade = require("etcdrun.x509")

local q = helper.q

-- Runs an openssl command; returns stdout and fails the test on a non-zero exit.
local function openssl(args)
   local out, err, code = helper.run("openssl " .. args)
   assert(code == 0, "openssl " .. args .. " failed: " .. err)
   return out
end

local function write(dir, name, data)
   local p = dir .. "/" .. name
   helper.write(p, data)
   return p
end

describe("x509", function()
   it("encrypts a key with a passphrase and gives it back only with that passphrase", function()
      local key = x509.key({ type = "ec" })
      local enc = x509.encrypt_key(key, "correct horse", "ca.key")
      assert.matches("^%-%-%-%-%-BEGIN ENCRYPTED PRIVATE KEY%-%-%-%-%-\n", enc)
      assert.is_nil(enc:find(key:match("\n(.-)\n"), 1, true))
      assert.are.equal(key, x509.decrypt_key(enc, "correct horse", "ca.key"))
      local v, err, code = x509.decrypt_key(enc, "wrong", "ca.key")
      assert.is_nil(v)
      assert.are.equal("x509.decrypt_key: wrong passphrase (ca.key)", err)
      assert.are.equal("EPASSPHRASE", code)
      assert.has_error(function() x509.encrypt_key(key, "") end, "x509.encrypt_key: the passphrase is empty")
   end)

   local dir
   -- One CA for most tests: Ed25519 keeps the spec fast.
   local ca_key, ca_cert
   setup(function()
      ca_key = assert(x509.key({ type = "ed25519" }))
      ca_cert = assert(x509.ca({ key = ca_key, subject = { CN = "etcd CA", O = "etcdrun" },
                                 days = 3650, pathlen = 1 }))
   end)
   before_each(function()
      dir = helper.tmpdir()
   end)

   local function server_cert(opts)
      local key = assert(x509.key({ type = "ec", curve = "P-256" }))
      local csr = assert(x509.csr({
         key = key,
         subject = { CN = "etcd1", O = "etcd", OU = "peers", C = "DE", ST = "Berlin", L = "Berlin" },
         san = { dns = { "etcd1" }, ip = { "127.0.0.1", "198.18.0.11" } },
      }))
      local sign = { csr = csr, ca_cert = ca_cert, ca_key = ca_key, days = 365 }
      for k, v in pairs(opts or {}) do
         sign[k] = v
      end
      return key, assert(x509.sign(sign))
   end

   describe("key", function()
      it("makes EC P-256, P-384 and Ed25519 keys as PKCS#8 PEM that openssl reads", function()
         for _, case in ipairs({
            { opts = { type = "ec", curve = "P-256" }, type = "ec", bits = 256, curve = "P-256" },
            { opts = { type = "ec", curve = "P-384" }, type = "ec", bits = 384, curve = "P-384" },
            { opts = { type = "ec" }, type = "ec", bits = 256, curve = "P-256" },
            { opts = { type = "ed25519" }, type = "ed25519", bits = 256 },
         }) do
            local pem = assert(x509.key(case.opts))
            assert.matches("^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-\n", pem)
            local info = assert(x509.key_info(pem))
            assert.are.equal(case.type, info.type)
            assert.are.equal(case.bits, info.bits)
            assert.are.equal(case.curve, info.curve)
            local text = openssl("pkey -noout -text -in " .. q(write(dir, "k.pem", pem)))
            if case.curve then
               assert.matches("NIST CURVE: " .. case.curve, text, 1, true)
            else
               assert.matches("ED25519 Private%-Key", text)
            end
         end
      end)

      it("makes an RSA 2048 key that openssl checks", function()
         local pem = assert(x509.key({ type = "rsa", bits = 2048 }))
         assert.are.same({ type = "rsa", bits = 2048 }, x509.key_info(pem))
         local out = openssl("pkey -noout -check -in " .. q(write(dir, "rsa.pem", pem)))
         assert.matches("Key is valid", out)
      end)

      it("gives the public key that openssl derives", function()
         local pem = assert(x509.key({ type = "ec" }))
         local pub = assert(x509.public_key(pem))
         assert.matches("^%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-\n", pub)
         assert.are.equal(openssl("pkey -pubout -in " .. q(write(dir, "k.pem", pem))), pub)
      end)

      it("raises on unknown types, curves, sizes and options", function()
         assert.has_error(function() x509.key({ type = "dsa" }) end,
            "x509.key: unknown key type 'dsa' (rsa, ec, ed25519)")
         assert.has_error(function() x509.key({ type = "ec", curve = "P-224" }) end,
            "x509.key: unknown curve 'P-224' (P-256, P-384, P-521)")
         assert.has_error(function() x509.key({ type = "rsa", bits = 1024 }) end,
            "x509.key: rsa bits must be 2048, 3072 or 4096")
         assert.has_error(function() x509.key({ type = "ed25519", curve = "P-256" }) end,
            "x509.key: option 'curve' is for type ec")
         assert.has_error(function() x509.key({ type = "ec", size = 256 }) end,
            "x509.key: unknown option 'size' (known: type, bits, curve)")
         assert.has_error(function() x509.key({}) end, "x509.key: option 'type' is required")
         assert.has_error(function() x509.key("ec") end)
      end)
   end)

   describe("ca and sign", function()
      it("makes a CA and a server certificate that openssl verify accepts", function()
         local _, cert = server_cert({ ext_key_usage = { "serverAuth", "clientAuth" } })
         local ca_path = write(dir, "ca.pem", ca_cert)
         local srv_path = write(dir, "server.pem", cert)
         local out = openssl("verify -CAfile " .. q(ca_path) .. " -purpose sslserver " .. q(srv_path))
         assert.are.equal(srv_path .. ": OK\n", out)
         out = openssl("verify -CAfile " .. q(ca_path) .. " -purpose sslclient " .. q(srv_path))
         assert.are.equal(srv_path .. ": OK\n", out)

         local ca_text = openssl("x509 -noout -text -in " .. q(ca_path))
         assert.matches("X509v3 Basic Constraints: critical\n%s*CA:TRUE, pathlen:1\n", ca_text)
         assert.matches("X509v3 Key Usage: critical\n%s*Certificate Sign, CRL Sign\n", ca_text)
         assert.matches("X509v3 Subject Key Identifier:", ca_text, 1, true)
         assert.matches("Issuer: O = etcdrun, CN = etcd CA", ca_text, 1, true)

         local text = openssl("x509 -noout -text -in " .. q(srv_path))
         assert.matches("X509v3 Basic Constraints: critical\n%s*CA:FALSE\n", text)
         assert.matches("X509v3 Key Usage: critical\n%s*Digital Signature, Key Encipherment\n", text)
         assert.matches("TLS Web Server Authentication, TLS Web Client Authentication", text, 1, true)
         assert.matches("DNS:etcd1, IP Address:127.0.0.1, IP Address:198.18.0.11", text, 1, true)
         assert.matches("X509v3 Authority Key Identifier:", text, 1, true)
         assert.matches("Subject: C = DE, ST = Berlin, L = Berlin, O = etcd, OU = peers, CN = etcd1",
            text, 1, true)
         -- a positive 128-bit serial: 16 octets
         local serial = text:match("Serial Number:%s*\n%s*([%x:]+)\n")
         assert.is_string(serial)
         assert.are.equal(16, #serial:gsub(":", "") // 2)
         assert.are.equal(openssl("x509 -noout -serial -in " .. q(srv_path)),
            "serial=" .. x509.info(cert).serial .. "\n")
         assert.are_not.equal(x509.info(cert).serial, x509.info(select(2, server_cert())).serial)
      end)

      it("never gives a CSR CA:TRUE or its requested usages", function()
         local key = assert(x509.key({ type = "ed25519" }))
         local csr = assert(x509.csr({
            key = key, subject = { CN = "sneaky" }, ca = true, pathlen = 0,
            key_usage = { "keyCertSign", "cRLSign" }, ext_key_usage = { "codeSigning" },
         }))
         local req = assert(x509.csr_info(csr))
         assert.is_true(req.is_ca)
         assert.are.equal(0, req.pathlen)
         assert.are.same({ "keyCertSign", "cRLSign" }, req.key_usage)
         assert.are.same({ "codeSigning" }, req.ext_key_usage)
         assert.is_true(req.signature_valid)

         local cert = assert(x509.sign({ csr = csr, ca_cert = ca_cert, ca_key = ca_key }))
         local info = assert(x509.info(cert))
         assert.is_false(info.is_ca)
         assert.is_nil(info.pathlen)
         assert.are.same({ "digitalSignature", "keyEncipherment" }, info.key_usage)
         assert.are.same({ "serverAuth" }, info.ext_key_usage)
         local text = openssl("x509 -noout -text -in " .. q(write(dir, "c.pem", cert)))
         assert.matches("CA:FALSE", text, 1, true)
         assert.not_matches("CA:TRUE", text, 1, true)
         assert.not_matches("Certificate Sign", text, 1, true)
      end)

      it("takes SANs from the sign options when given, else from the CSR", function()
         local _, cert = server_cert({ san = { dns = { "etcd9.example" }, ip = { "fd00::9" } } })
         local info = x509.info(cert)
         assert.are.same({ "etcd9.example" }, info.san.dns)
         assert.are.same({ "fd00::9" }, info.san.ip)
         _, cert = server_cert({ san = {} })
         assert.are.same({ dns = {}, ip = {}, email = {}, uri = {} }, x509.info(cert).san)
         _, cert = server_cert()
         assert.are.same({ "127.0.0.1", "198.18.0.11" }, x509.info(cert).san.ip)
      end)

      it("refuses a CA key that does not match the CA certificate", function()
         local other = assert(x509.key({ type = "ed25519" }))
         local csr = assert(x509.csr({ key = other, subject = { CN = "x" } }))
         local cert, err, code = x509.sign({ csr = csr, ca_cert = ca_cert, ca_key = other })
         assert.is_nil(cert)
         assert.are.equal("EKEYMISMATCH", code)
         assert.are.equal("x509.sign: CA key does not match CA certificate (etcd CA)", err)
         cert, err = x509.sign({ csr = csr, ca_cert = ca_cert, ca_key = other, name = "ca.crt" })
         assert.is_nil(cert)
         assert.are.equal("x509.sign: CA key does not match CA certificate (ca.crt)", err)
         assert.has_error(function()
            facade.sign({ csr = csr, ca_cert = ca_cert, ca_key = other, name = "ca.crt" })
         end, "x509.sign: CA key does not match CA certificate (ca.crt)")
      end)

      it("refuses to sign with a certificate that is not a CA", function()
         local key, cert = server_cert()
         local csr = assert(x509.csr({ key = key, subject = { CN = "y" } }))
         local c, err, code = x509.sign({ csr = csr, ca_cert = cert, ca_key = key })
         assert.is_nil(c)
         assert.are.equal("ENOTCA", code)
         assert.are.equal("x509.sign: CA certificate is not a CA (etcd1)", err)
      end)

      it("refuses a CSR whose signature does not verify", function()
         local key = assert(x509.key({ type = "ec" }))
         local csr = assert(x509.csr({ key = key, subject = { CN = "tampered" } }))
         local der = openssl("req -outform DER -in " .. q(write(dir, "r.pem", csr)))
         local last = der:byte(#der)
         helper.write(dir .. "/bad.der", der:sub(1, -2) .. string.char((last + 1) % 256))
         local bad = openssl("req -inform DER -in " .. q(dir .. "/bad.der"))
         assert.is_false(x509.csr_info(bad).signature_valid)
         local c, err, code = x509.sign({ csr = bad, ca_cert = ca_cert, ca_key = ca_key })
         assert.is_nil(c)
         assert.are.equal("EBADCSR", code)
         assert.matches("^x509%.sign: CSR signature does not verify: .* %(tampered%)$", err)
      end)

      it("returns EPEM naming the input for garbage PEM", function()
         local key = assert(x509.key({ type = "ec" }))
         local csr = assert(x509.csr({ key = key, subject = { CN = "z" } }))
         local cases = {
            { function() return x509.info("garbage") end,
              "x509.info: cannot parse certificate: no start line (cert)" },
            { function() return x509.info("garbage", "server.crt") end,
              "x509.info: cannot parse certificate: no start line (server.crt)" },
            { function() return x509.key_info("garbage") end,
              "x509.key_info: cannot parse private key: no start line (key)" },
            { function() return x509.key_info(ca_cert) end,
              "x509.key_info: cannot parse private key: no private key in the PEM data (key)" },
            { function() return x509.csr_info("nope") end,
              "x509.csr_info: cannot parse CSR: no start line (csr)" },
            { function() return x509.public_key("nope") end,
              "x509.public_key: cannot parse a key, CSR or certificate: no start line (key)" },
            { function() return x509.key_matches("nope", ca_cert) end,
              "x509.key_matches: cannot parse private key: no start line (key)" },
            { function() return x509.key_matches(key, "nope") end,
              "x509.key_matches: cannot parse certificate: no start line (cert)" },
            { function() return x509.csr({ key = "nope", subject = { CN = "n1" } }) end,
              "x509.csr: cannot parse private key: no start line (n1)" },
            { function() return x509.ca({ key = "nope", subject = { CN = "root" } }) end,
              "x509.ca: cannot parse private key: no start line (root)" },
            { function() return x509.sign({ csr = "nope", ca_cert = ca_cert, ca_key = ca_key }) end,
              "x509.sign: cannot parse CSR: no start line (csr)" },
            { function()
                 return x509.sign({ csr = csr, ca_cert = "nope", ca_key = ca_key, name = "ca.crt" })
              end,
              "x509.sign: cannot parse CA certificate: no start line (ca.crt)" },
            { function() return x509.sign({ csr = csr, ca_cert = ca_cert, ca_key = "nope" }) end,
              "x509.sign: cannot parse CA key: no start line (etcd CA)" },
            { function() return x509.verify({ cert = "nope", ca = ca_cert }) end,
              "x509.verify: cannot parse certificate: no start line (cert)" },
            { function() return x509.verify({ cert = ca_cert, ca = "nope" }) end,
              "x509.verify: cannot parse CA bundle: no start line (etcd CA)" },
            { function()
                 return x509.info("-----BEGIN CERTIFICATE-----\nAA!!AA\n-----END CERTIFICATE-----\n")
              end,
              "x509.info: cannot parse certificate: bad base64 decode (cert)" },
         }
         for i, case in ipairs(cases) do
            local v, err, code = case[1]()
            assert.is_nil(v, "case " .. i)
            assert.are.equal(case[2], err, "case " .. i)
            assert.are.equal("EPEM", code, "case " .. i)
         end
         local encrypted = openssl("genpkey -algorithm ed25519 -aes256 -pass pass:x")
         local _, err, code = x509.key_info(encrypted)
         assert.are.equal("x509.key_info: cannot parse private key: the key is encrypted: its passphrase is needed"
            .. " (key)",
            err)
         assert.are.equal("EPEM", code)
         assert.has_error(function() facade.info("garbage", "a.crt") end,
            "x509.info: cannot parse certificate: no start line (a.crt)")
      end)

      it("raises on misuse", function()
         local key = assert(x509.key({ type = "ec" }))
         local function csr(extra)
            local o = { key = key, subject = { CN = "m" } }
            for k, v in pairs(extra) do
               o[k] = v
            end
            return function() x509.csr(o) end
         end
         assert.has_error(csr({ subjet = {} }))
         assert.has_error(csr({ key_usage = { "digitalSignatures" } }),
            "x509.csr: unknown key_usage 'digitalSignatures'")
         assert.has_error(csr({ ext_key_usage = { "server" } }),
            "x509.csr: unknown ext_key_usage 'server'")
         assert.has_error(csr({ san = { ip = { "300.1.1.1" } } }),
            "x509.csr: bad IP address '300.1.1.1' in san.ip")
         assert.has_error(csr({ san = { dns = "etcd1" } }), "x509.csr: 'san.dns' must be a list of strings")
         assert.has_error(csr({ san = { DNS = { "etcd1" } } }),
            "x509.csr: unknown option 'DNS' (known: dns, ip, email, uri)")
         assert.has_error(csr({ subject = { cn = "x" } }))
         assert.has_error(csr({ subject = { C = "Germany" } }))
         assert.has_error(csr({ pathlen = 1 }), "x509.csr: option 'pathlen' needs ca=true")
         assert.has_error(csr({ ca = "yes" }))
         assert.has_error(function()
            x509.sign({ csr = "x", ca_cert = ca_cert, ca_key = ca_key, days = 0 })
         end, "x509.sign: option 'days' must be between 1 and 36500")
         assert.has_error(function() x509.sign({ ca_cert = ca_cert, ca_key = ca_key }) end,
            "x509.sign: option 'csr' is required")
         assert.has_error(function() x509.ca({ key = key }) end, "x509.ca: option 'subject' is required")
         assert.has_error(function() x509.verify({ cert = ca_cert, ca = ca_cert, purpose = "web" }) end,
            "x509.verify: unknown purpose 'web' (server, client, any)")
         assert.has_error(function() x509.verify({ cert = ca_cert, ca = ca_cert, ip = "etcd1" }) end,
            "x509.verify: bad IP address 'etcd1'")
         assert.has_error(function() x509.info(nil) end)
      end)
   end)

   describe("info", function()
      it("describes a certificate", function()
         local before = os.time()
         local key, cert = server_cert({ days = 30, ext_key_usage = { "serverAuth", "clientAuth" } })
         local info = assert(x509.info(cert))
         assert.are.same({ CN = "etcd1", O = "etcd", OU = "peers", C = "DE", ST = "Berlin", L = "Berlin" },
            info.subject)
         assert.are.equal("CN=etcd1,OU=peers,O=etcd,L=Berlin,ST=Berlin,C=DE", info.subject_dn)
         assert.are.same({ CN = "etcd CA", O = "etcdrun" }, info.issuer)
         assert.are.equal("CN=etcd CA,O=etcdrun", info.issuer_dn)
         assert.are.same({ dns = { "etcd1" }, ip = { "127.0.0.1", "198.18.0.11" }, email = {}, uri = {} },
            info.san)
         assert.are.same({ "digitalSignature", "keyEncipherment" }, info.key_usage)
         assert.are.same({ "serverAuth", "clientAuth" }, info.ext_key_usage)
         assert.is_false(info.is_ca)
         assert.is_false(info.self_signed)
         assert.are.equal(3, info.version)
         assert.are.equal("ED25519", info.signature_algorithm)
         assert.are.equal("ec", info.key_type)
         assert.are.equal(256, info.key_bits)
         assert.are.equal("P-256", info.curve)
         assert.matches("^%x+$", info.serial)
         assert.are.equal(32, #info.serial)
         assert.is_true(info.not_before <= before and info.not_before >= before - 400)
         assert.is_true(math.abs(info.not_after - (info.not_before + 300 + 30 * 86400)) < 5)
         local path = write(dir, "c.pem", cert)
         assert.are.equal(openssl("x509 -noout -fingerprint -sha256 -in " .. q(path)),
            "sha256 Fingerprint=" .. info.fingerprint_sha256 .. "\n")
         local ca = assert(x509.info(ca_cert))
         assert.is_true(ca.is_ca)
         assert.are.equal(1, ca.pathlen)
         assert.is_true(ca.self_signed)
         assert.are.same({ "keyCertSign", "cRLSign" }, ca.key_usage)
         assert.are.same({}, ca.ext_key_usage)
         assert.are.equal("ed25519", ca.key_type)
         assert.are.equal(ca.ski, info.aki)
         assert.matches("^%x%x:[%x:]+%x$", ca.ski)
         assert.are.equal(20 * 3 - 1, #ca.ski)
         assert.is_true(x509.key_matches(key, cert))
      end)

      it("lists a repeated subject attribute and IPv6 SANs", function()
         local key = assert(x509.key({ type = "ec", curve = "P-384" }))
         local csr = assert(x509.csr({
            key = key,
            subject = { CN = "multi", OU = { "a", "b" } },
            san = { ip = { "::1", "2001:db8::1" }, uri = { "spiffe://etcd/x" } },
         }))
         local cert = assert(x509.sign({ csr = csr, ca_cert = ca_cert, ca_key = ca_key }))
         local info = assert(x509.info(cert))
         assert.are.same({ "a", "b" }, info.subject.OU)
         assert.are.same({ "::1", "2001:db8::1" }, info.san.ip)
         assert.are.same({ "spiffe://etcd/x" }, info.san.uri)
         assert.are.equal("P-384", info.curve)
         assert.are.equal(384, info.key_bits)
      end)
   end)

   describe("key_matches", function()
      it("tells whether a key belongs to a certificate", function()
         local key, cert = server_cert()
         assert.is_true(x509.key_matches(key, cert))
         assert.is_false(x509.key_matches(ca_key, cert))
         assert.is_true(x509.key_matches(ca_key, ca_cert))
         assert.is_false(x509.key_matches(assert(x509.key({ type = "ec" })), cert))
      end)
   end)

   describe("verify", function()
      local cert
      before_each(function()
         cert = select(2, server_cert())
      end)

      it("accepts the right IP and host for the server purpose", function()
         assert.is_true(x509.verify({ cert = cert, ca = ca_cert, purpose = "server", ip = "198.18.0.11" }))
         assert.is_true(x509.verify({ cert = cert, ca = ca_cert, purpose = "server", host = "etcd1" }))
         assert.is_true(x509.verify({ cert = cert, ca = ca_cert }))
      end)

      it("fails with EVERIFY naming the subject", function()
         local function fails(opts, msg)
            opts.cert, opts.ca = opts.cert or cert, opts.ca or ca_cert
            local ok, err, code = x509.verify(opts)
            assert.is_nil(ok)
            assert.are.equal("EVERIFY", code)
            assert.are.equal(msg, err)
         end
         fails({ purpose = "server", host = "etcd2" }, "x509.verify: hostname mismatch (etcd1)")
         fails({ purpose = "server", ip = "198.18.0.12" }, "x509.verify: IP address mismatch (etcd1)")
         fails({ purpose = "client" }, "x509.verify: unsuitable certificate purpose (etcd1)")
         fails({ at = os.time() + 400 * 86400 }, "x509.verify: certificate has expired (etcd1)")
         fails({ at = os.time() - 86400 }, "x509.verify: certificate is not yet valid (etcd1)")
         local other_key = assert(x509.key({ type = "ed25519" }))
         local other = assert(x509.ca({ key = other_key, subject = { CN = "other CA" } }))
         fails({ ca = other, name = "server.crt" },
            "x509.verify: unable to get local issuer certificate (server.crt)")
         assert.has_error(function() facade.verify({ cert = cert, ca = other }) end,
            "x509.verify: unable to get local issuer certificate (etcd1)")
         assert.is_nil((facade.try.verify({ cert = cert, ca = other })))
      end)

      it("accepts a bundle holding several CAs", function()
         local other = assert(x509.ca({ key = assert(x509.key({ type = "ed25519" })),
                                        subject = { CN = "other CA" } }))
         assert.is_true(x509.verify({ cert = cert, ca = other .. ca_cert, purpose = "server",
                                      ip = "127.0.0.1" }))
         assert.is_true(x509.verify({ cert = cert, ca = ca_cert .. other }))
      end)

      it("checks a client certificate for the client purpose", function()
         local _, c = server_cert({ ext_key_usage = { "clientAuth" } })
         assert.is_true(x509.verify({ cert = c, ca = ca_cert, purpose = "client" }))
         assert.is_nil((x509.verify({ cert = c, ca = ca_cert, purpose = "server" })))
      end)
   end)

   describe("interop with the openssl command", function()
      it("reads keys, CSRs and CAs openssl made, and openssl reads ours", function()
         local ec = openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384")
         assert.are.same({ type = "ec", bits = 384, curve = "P-384" }, x509.key_info(ec))
         local legacy = openssl("ecparam -name prime256v1 -genkey -noout")
         assert.matches("BEGIN EC PRIVATE KEY", legacy, 1, true)
         assert.are.same({ type = "ec", bits = 256, curve = "P-256" }, x509.key_info(legacy))
         local ed = openssl("genpkey -algorithm ed25519")
         assert.are.equal("ed25519", x509.key_info(ed).type)

         -- a CA made by openssl signs our CSR
         local ca_path = write(dir, "oca.key", ec)
         local oca = openssl("req -x509 -new -key " .. q(ca_path) .. " -subj /CN=openssl-ca -days 2"
            .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign")
         assert.is_true(x509.key_matches(ec, oca))
         assert.is_true(x509.info(oca).is_ca)
         local our_key = assert(x509.key({ type = "ec" }))
         local csr = assert(x509.csr({ key = our_key, subject = { CN = "ours" },
                                       san = { dns = { "ours.example" } } }))
         local vout, verr, vcode = helper.run("openssl req -noout -verify -in "
            .. q(write(dir, "ours.csr", csr)))
         assert.are.equal(0, vcode, verr)
         assert.matches("verify OK", vout .. verr)
         local cert = assert(x509.sign({ csr = csr, ca_cert = oca, ca_key = ec }))
         local out = openssl("verify -CAfile " .. q(write(dir, "oca.pem", oca)) .. " -purpose sslserver "
            .. q(write(dir, "ours.pem", cert)))
         assert.matches(": OK\n$", out)
         assert.is_true(x509.verify({ cert = cert, ca = oca, purpose = "server", host = "ours.example" }))

         -- a CSR made by openssl, signed by our CA; its own extensions do not leak in
         local ocsr = openssl("req -new -key " .. q(write(dir, "ed.key", ed)) .. " -subj /CN=theirs"
            .. " -addext subjectAltName=DNS:theirs,IP:10.0.0.1 -addext basicConstraints=critical,CA:TRUE")
         local req = assert(x509.csr_info(ocsr))
         assert.is_true(req.is_ca)
         assert.are.same({ "theirs" }, req.san.dns)
         local c2 = assert(x509.sign({ csr = ocsr, ca_cert = ca_cert, ca_key = ca_key }))
         local info = x509.info(c2)
         assert.is_false(info.is_ca)
         assert.are.same({ "10.0.0.1" }, info.san.ip)
         assert.matches(": OK\n$", openssl("verify -CAfile " .. q(write(dir, "ca.pem", ca_cert))
            .. " -purpose sslserver " .. q(write(dir, "theirs.pem", c2))))
         assert.is_true(x509.key_matches(ed, c2))
      end)
   end)

   describe("through the CLI", function()
      it("makes a CA and a server certificate that openssl verify accepts", function()
         local script = [[
            local x = etcdrun.x509
            local cak = x.key{type="ec", curve="P-384"}
            local ca = x.ca{key=cak, subject={CN="cli CA"}, pathlen=0}
            local k = x.key{type="ed25519"}
            local csr = x.csr{key=k, subject={CN="etcd1"}, san={dns={"etcd1"}, ip={"127.0.0.1"}}}
            local crt = x.sign{csr=csr, ca_cert=ca, ca_key=cak, ext_key_usage={"serverAuth","clientAuth"}}
            assert(x.verify{cert=crt, ca=ca, purpose="server", ip="127.0.0.1"})
            for name, data in pairs({["ca.pem"]=ca, ["server.pem"]=crt}) do
               local f = assert(io.open(DIR .. "/" .. name, "w"))
               f:write(data)
               f:close()
            end
            print("made " .. x.info(crt).subject.CN)
         ]]
         script = script:gsub("DIR", string.format("%q", dir))
         local out, err, code = helper.run(q(helper.etcdrun) .. " -e " .. q(script))
         assert.are.equal(0, code, err)
         assert.are.equal("made etcd1\n", out)
         out = openssl("verify -CAfile " .. q(dir .. "/ca.pem") .. " -purpose sslserver "
            .. q(dir .. "/server.pem"))
         assert.are.equal(dir .. "/server.pem: OK\n", out)
         local _, err2, code2 = helper.run(q(helper.etcdrun) .. " -e "
            .. q("etcdrun.x509.info('junk', 'junk.pem')"))
         assert.are_not.equal(0, code2)
         assert.matches("x509.info: cannot parse certificate: no start line (junk.pem)", err2, 1, true)
      end)
   end)

   describe("key_job", function()
      it("makes keys on threads of their own, awaited by the scheduler", function()
         local sched = require("etcdrun.sched")
         local tasks = {}
         for i = 1, 3 do
            tasks[i] = function()
               local job = x509.key_job({ type = i == 1 and "rsa" or "ec" })
               return sched.await(job)
            end
         end
         local pems = {}
         for i, r in ipairs(sched.run(tasks)) do
            assert.is_true(r.ok, r.err)
            pems[i] = r.values[1]
            assert.matches("^%-%-%-%-%-BEGIN PRIVATE KEY%-%-%-%-%-", pems[i])
         end
         assert.are.equal("rsa", x509.key_info(pems[1]).type)
         assert.are.equal(2048, x509.key_info(pems[1]).bits)
         assert.are.equal("ec", x509.key_info(pems[2]).type)
         assert.are_not.equal(pems[2], pems[3])
      end)

      it("waits outside the scheduler, and checks options like key", function()
         local job = x509.key_job({ type = "ed25519" })
         local pem = job:wait()
         assert.is_true(job:done())
         assert.are.equal("ed25519", x509.key_info(pem).type)
         assert.has_error(function()
            x509.key_job({ type = "rsa", bits = 1000 })
         end, "x509.key_job: rsa bits must be 2048, 3072 or 4096")
      end)
   end)

   describe("public_key", function()
      it("gives the same public key for a private key, its CSR and its certificate", function()
         local k = x509.key({ type = "ec" })
         local other = x509.key({ type = "ec" })
         local csr = x509.csr({ key = k, subject = { CN = "m" } })
         local ca = x509.ca({ key = k, subject = { CN = "ca" } })
         local pub = x509.public_key(k)
         assert.matches("^%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-", pub)
         assert.are.equal(pub, x509.public_key(csr))
         assert.are.equal(pub, x509.public_key(ca))
         assert.are_not.equal(pub, x509.public_key(other))
         local none, err, code = x509.public_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "bad.crt")
         assert.is_nil(none)
         assert.are.equal("EPEM", code)
         assert.matches("x509.public_key: cannot parse a key, CSR or certificate: .* %(bad%.crt%)", err)
      end)
   end)
end)
