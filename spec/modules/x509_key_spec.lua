-- x509_key: generate once, keep while it matches, regenerate with a reason;
-- on the controller (temp dirs) and on a lab node (etcd8).
local helper = require("support.helper")
local lab = require("support.lab")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local x509 = require("etcdrun.x509")
local fs = require("etcdrun.fs")
local cjson = require("cjson")

local ctl = localhost.new()

local function run(args, opts, h)
   return modtest.run("x509_key", args, h or ctl, opts)
end

-- Everything a task shows (msg, diff, result fields), as one string.
local function shown(r)
   local copy = {}
   for k, v in pairs(r) do
      if k ~= "secrets" then
         copy[k] = v
      end
   end
   return cjson.encode(copy)
end

-- The base64 body of a PEM key: what must never be shown.
local function key_body(pem)
   return pem:match("KEY%-%-%-%-%-\n(.-)\n")
end


-- Inside an `it`: report the test as skipped (with why) when no lab can run here.
local function no_lab(dir, why_not)
   if not dir then
      pending(why_not)
      return true
   end
   return false
end

describe("x509_key plan", function()
   local st, NONE = plancases.st, plancases.NONE
   local P = "/pki/k.key"
   local function have(info, mode)
      return { path = P, exists = true, info = info, st = st("file", mode or "0600") }
   end
   local EC = { type = "ec", curve = "P-256" }
   plancases.run(it, "x509_key", {
      { name = "generates a missing key; the diff shows only its kind, as a secret",
         state = { path = P, exists = false }, args = { path = P },
         want = { changed = true, msg = "would generate: no key", existed = false, reason = "no key",
            diff = { path = P, before = "", after = "ec P-256 key (new)\n", secret = true },
            result = { path = P, type = "ec", curve = "P-256" } } },
      { name = "encrypts a plain key in place when given a passphrase (the same key)",
         state = have(EC), args = { path = P, passphrase = "pw" },
         want = { changed = true, encrypt = true, msg = "would encrypt the key with its passphrase (the same key)" } },
      { name = "keeps an encrypted key it can read",
         state = plancases.merge(have(EC), { encrypted = true }), args = { path = P, passphrase = "pw" },
         want = { changed = false, msg = "kept" } },
      { name = "keeps a key of the asked kind",
         state = have(EC), args = { path = P },
         want = { changed = false, msg = "kept", diff = NONE,
            result = { path = P, type = "ec", curve = "P-256" } } },
      { name = "keeps the key, fixes its mode",
         state = have(EC, "0644"), args = { path = P },
         want = { changed = true, msg = "kept; mode 0644 -> 0600", attrs_only = P } },
      { name = "regenerates a key of another type (on_mismatch)",
         state = have({ type = "rsa", bits = 2048 }), args = { path = P, type = "ed25519" },
         want = { changed = true, existed = true,
            msg = "would regenerate: existing key is rsa 2048, not ed25519",
            diff = { path = P, before = "rsa 2048 key\n", after = "ed25519 key (new)\n", secret = true } } },
      { name = "regenerates an RSA key of another size",
         state = have({ type = "rsa", bits = 2048 }), args = { path = P, type = "rsa", bits = 4096 },
         want = { msg = "would regenerate: existing key is rsa 2048, not rsa 4096" } },
      { name = "regenerates an EC key on another curve",
         state = have(EC), args = { path = P, curve = "P-384" },
         want = { msg = "would regenerate: existing key is ec P-256, not ec P-384" } },
      { name = "regenerate=never keeps a key of another kind, and says so",
         state = have({ type = "rsa", bits = 2048 }), args = { path = P, regenerate = "never" },
         want = { changed = false, msg = "kept rsa 2048 key (regenerate is 'never')",
            result = { path = P, type = "rsa", bits = 2048 } } },
      { name = "regenerate=never refuses to overwrite an unreadable file",
         state = { path = P, exists = true, why = "no PEM", st = st("file", "0600") },
         args = { path = P, regenerate = "never" }, opts = { host = "n1" },
         want = { failed = true, result = { code = "EPEM" },
            msg = "x509_key: /pki/k.key is not a readable private key (no PEM) and regenerate is 'never' (n1)" } },
      { name = "replaces an unreadable file",
         state = { path = P, exists = true, why = "no PEM", st = st("file", "0600") }, args = { path = P },
         want = { changed = true, msg = "would regenerate: existing file is not a readable private key" } },
      { name = "regenerate=always replaces a matching key",
         state = have(EC), args = { path = P, regenerate = "always" },
         want = { changed = true, msg = "would regenerate: regenerate is 'always'" } },
      { name = "bits is for rsa",
         state = have(EC), args = { path = P, bits = 4096 },
         want = { failed = true, msg = "x509_key: argument 'bits' is for type 'rsa'", result = { code = "EARGS" } } },
      { name = "curve is for ec",
         state = have(EC), args = { path = P, type = "rsa", curve = "P-384" },
         want = { failed = true, msg = "x509_key: argument 'curve' is for type 'ec'" } },
   })
end)

describe("x509_key", function()
   describe("arguments", function()
      local cases = {
         { {}, "argument 'path' is required" },
         { { path = "/k", type = "dsa" }, "argument 'type' must be one of rsa, ec, ed25519, got 'dsa'" },
         { { path = "/k", type = "rsa", bits = 1024 }, "argument 'bits' must be one of 2048, 3072, 4096" },
         { { path = "/k", mode = 384 }, "write modes as strings" },
         { { path = "/k", curve = "P-192" }, "argument 'curve' must be one of P-256, P-384, P-521" },
         { { path = "/k", size = 2048 }, "unknown argument 'size'" },
         { { path = "/k", regenerate = "yes" }, "argument 'regenerate' must be one of" },
      }
      for _, c in ipairs(cases) do
         it("refuses " .. c[2], function()
            local ok, err = modtest.validate("x509_key", c[1], "site.lua:3")
            assert.is_nil(ok)
            assert.matches("site.lua:3: module 'x509_key': ", err, 1, true)
            assert.matches(c[2], err, 1, true)
         end)
      end

      it("refuses bits without type rsa and curve without type ec, before touching anything", function()
         local d = helper.tmpdir()
         local r = run({ path = d .. "/k", bits = 4096 })
         assert.is_true(r.failed)
         assert.are.equal("x509_key: argument 'bits' is for type 'rsa'", r.msg)
         r = run({ path = d .. "/k", type = "rsa", curve = "P-384" })
         assert.are.equal("x509_key: argument 'curve' is for type 'ec'", r.msg)
         assert.are.same({}, fs.list(d))
      end)
   end)

   describe("on the controller", function()
      local d
      before_each(function()
         d = helper.tmpdir()
      end)

      it("generates an ECDSA P-256 key 0600, then keeps it byte for byte", function()
         local p = d .. "/ca.key"
         local r = run({ path = p })
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         assert.are.equal("generated: no key", r.msg)
         assert.are.same({ "ec", 256, "P-256" }, { r.type, r.bits, r.curve })
         local pem = helper.read(p)
         assert.are.same({ type = "ec", bits = 256, curve = "P-256" }, x509.key_info(pem))
         assert.are.equal(384, fs.stat(p).mode)
         assert.is_true(r.diff.secret)

         local r2 = run({ path = p })
         assert.is_false(r2.changed)
         assert.are.equal("kept", r2.msg)
         assert.are.equal(pem, helper.read(p))
         -- the key never shows, and it was handed to ctx.secret for redaction
         assert.is_nil(shown(r):find(key_body(pem), 1, true))
         assert.is_nil(shown(r2):find(key_body(pem), 1, true))
         assert.are.equal(pem, r2.secrets[1])
      end)

      it("makes RSA 4096 and Ed25519 keys", function()
         local r = run({ path = d .. "/rsa.key", type = "rsa", bits = 4096 })
         assert.is_true(r.changed)
         assert.are.same({ type = "rsa", bits = 4096 }, x509.key_info(helper.read(d .. "/rsa.key")))
         assert.is_false(run({ path = d .. "/rsa.key", type = "rsa", bits = 4096 }).changed)
         assert.is_true(run({ path = d .. "/ed.key", type = "ed25519" }).changed)
         assert.are.equal("ed25519", x509.key_info(helper.read(d .. "/ed.key")).type)
      end)

      it("check mode reports the new key and writes nothing", function()
         local r = run({ path = d .. "/k" }, { check = true })
         assert.is_true(r.changed)
         assert.are.equal("would generate: no key", r.msg)
         assert.are.same({ path = d .. "/k", before = "", after = "ec P-256 key (new)\n", secret = true }, r.diff)
         assert.are.same({}, fs.list(d))
      end)

      it("regenerates a key of another kind, saying which, unless regenerate is 'never'", function()
         local p = d .. "/k"
         run({ path = p })
         local old = helper.read(p)
         local r = run({ path = p, type = "ec", curve = "P-384", regenerate = "never" })
         assert.is_false(r.changed)
         assert.are.equal("kept ec P-256 key (regenerate is 'never')", r.msg)
         assert.are.equal(old, helper.read(p))
         r = run({ path = p, type = "ec", curve = "P-384" })
         assert.is_true(r.changed)
         assert.are.equal("regenerated: existing key is ec P-256, not ec P-384", r.msg)
         assert.are.equal("P-384", x509.key_info(helper.read(p)).curve)
         assert.is_nil(shown(r):find(key_body(old), 1, true))
         assert.is_nil(shown(r):find(key_body(helper.read(p)), 1, true))
      end)

      it("replaces an unreadable file, or refuses to with regenerate = 'never'", function()
         local p = d .. "/k"
         helper.write(p, "not a key\n")
         local r = run({ path = p, regenerate = "never" })
         assert.is_true(r.failed)
         assert.matches("x509_key: " .. p .. " is not a readable private key", r.msg, 1, true)
         assert.are.equal("EPEM", r.code)
         assert.are.equal("not a key\n", helper.read(p))
         r = run({ path = p })
         assert.are.equal("regenerated: existing file is not a readable private key", r.msg)
         assert.are.equal("ec", x509.key_info(helper.read(p)).type)
      end)

      it("regenerate = 'always' makes a new key every run", function()
         local p = d .. "/k"
         run({ path = p })
         local old = helper.read(p)
         local r = run({ path = p, regenerate = "always" })
         assert.is_true(r.changed)
         assert.are_not.equal(old, helper.read(p))
      end)

      it("fixes a drifted mode without touching the key", function()
         local p = d .. "/k"
         run({ path = p })
         local pem = helper.read(p)
         fs.chmod(p, 420)
         local r = run({ path = p })
         assert.is_true(r.changed)
         assert.are.equal("kept; mode 0644 -> 0600", r.msg)
         assert.are.equal(384, fs.stat(p).mode)
         assert.are.equal(pem, helper.read(p))
         assert.is_false(run({ path = p }).changed)
      end)

      it("takes a relative path relative to the playbook directory", function()
         local r = modtest.run("x509_key", { path = "pki/k" }, ctl, { playbook_dir = d })
         assert.is_true(r.failed)
         assert.are.equal("host.write: No such file or directory (controller:" .. d .. "/pki/k)", r.msg)
         fs.mkdir(d .. "/pki")
         r = modtest.run("x509_key", { path = "pki/k" }, ctl, { playbook_dir = d })
         assert.is_false(r.failed, r.msg)
         assert.are.equal(d .. "/pki/k", r.path)
         assert.is_truthy(fs.stat(d .. "/pki/k"))
      end)

      it("fails naming the host and path when the directory is missing", function()
         local r = run({ path = d .. "/no/k" })
         assert.is_true(r.failed)
         assert.matches("controller:" .. d .. "/no/k", r.msg, 1, true)
      end)
   end)

   describe("on a node", function()
      local dir, why_not, h
      local base = "/root/etcdrun-x509-key-test"
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

      it("generates over SSH, keeps on the second run, and check mode writes nothing", function()
         if no_lab(dir, why_not) then return end
         local p = base .. "/node.key"
         local r = run({ path = p }, { check = true }, h)
         assert.is_true(r.changed)
         assert.are.equal("", lab.ssh(dir, "etcd8", "ls -A " .. base))
         r = run({ path = p, owner = "nobody" }, nil, h)
         assert.is_false(r.failed, r.msg)
         assert.is_true(r.changed)
         local out = lab.ssh(dir, "etcd8", "stat -c '%a %U' " .. p .. " && openssl pkey -in " .. p
            .. " -noout -text | head -1")
         assert.matches("^600 nobody\nPrivate%-Key: %(256 bit", out)
         local pem = h:read(p)
         r = run({ path = p, owner = "nobody" }, nil, h)
         assert.is_false(r.changed, r.msg)
         assert.are.equal(pem, h:read(p))
      end)

      it("refuses a relative path on a node", function()
         if no_lab(dir, why_not) then return end
         local r = run({ path = "pki/k" }, nil, h)
         assert.is_true(r.failed)
         assert.are.equal("x509_key: argument 'path' must be an absolute path on etcd8, got 'pki/k'", r.msg)
      end)
   end)
end)
