-- x509_node_key: the key made on the host by its own openssl, and its CSR;
-- decisions from recorded state, then real runs with this machine's openssl
-- as the host (the lab's nodes run it in tls_cluster_spec).
local helper = require("support.helper")
local modtest = require("support.modtest")
local plancases = require("support.plancases")
local localhost = require("etcdrun.localhost")
local x509 = require("etcdrun.x509")
local fs = require("etcdrun.core.fs")
local cjson = require("cjson")

local PUB = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
local EC = { "Public-Key: (256 bit)", "NIST CURVE: P-256" }
local ARGS = { path = "/etc/etcd/ssl/peer.key", csr_path = "/etc/etcd/ssl/peer.csr",
   subject = { CN = "etcd1", O = "etcd peer" } }

local function state(over)
   return plancases.merge({ kind = EC, pub = PUB, csr = "CSR", csr_pub = PUB,
      csr_subject = { CN = "etcd1", O = "etcd peer" } }, over)
end

describe("x509_node_key plan", function()
   local function no_restart(p)
      assert.are.equal(false, p.result.notify)
   end
   plancases.run(it, "x509_node_key", {
      { name = "keeps a key of the kind asked for and its CSR", state = state(), args = ARGS,
         want = { changed = false, msg = "ec P-256 key and its CSR kept" }, also = function(p)
            assert.are.equal("CSR", p.result.csr)
            assert.is_nil(p.result.notify)
         end },
      { name = "makes a key where there is none", state = { kind = {}, key = "absent" }, args = ARGS,
         want = { changed = true, new_key = true, msg = "would make a ec P-256 key on the host (no key) and its CSR",
         }, also = function(p)
            assert.is_nil(p.result.csr)
            assert.is_nil(p.result.notify)
         end },
      { name = "makes a new key when the kind asked for changes", state = state(),
         args = plancases.merge(ARGS, { type = "rsa", bits = 4096 }),
         want = { changed = true, new_key = true,
            msg = "would make a rsa 4096 key on the host (the key is not rsa 4096) and its CSR" } },
      { name = "makes a new key for another curve", state = state(), args = plancases.merge(ARGS, { curve = "P-384" }),
         want = { changed = true, new_key = true } },
      { name = "replaces a key that does not parse", state = { kind = {}, key = "unreadable" }, args = ARGS,
         want = { changed = true, new_key = true, msg = "would make a ec P-256 key on the host (the key does not"
            .. " parse) and its CSR" } },
      { name = "makes only a CSR for a kept key: no restart", state = state({ csr = false, csr_pub = false }),
         args = ARGS, want = { changed = true, new_key = false, msg = "would make a CSR for the host's key (no CSR)" },
         also = no_restart },
      { name = "a CSR for another key is made again", state = state({ csr_pub = "other" }), args = ARGS,
         want = { changed = true, new_key = false,
            msg = "would make a CSR for the host's key (the CSR is not for it)" },
         also = no_restart },
      { name = "a CSR with another subject is made again", state = state(),
         args = plancases.merge(ARGS, { subject = { CN = "etcd1", O = "etcd server" } }),
         want = { changed = true, new_key = false }, also = no_restart },
      { name = "RSA bits kept", state = state({ kind = { "Public-Key: (2048 bit)" } }),
         args = plancases.merge(ARGS, { type = "rsa" }), want = { changed = false } },
      { name = "an EC key is not an RSA key of the same size", state = state({ kind = EC }),
         args = plancases.merge(ARGS, { type = "rsa", bits = 2048 }), want = { changed = true, new_key = true } },
      { name = "no openssl on the host", state = { kind = {}, key = "noopenssl" }, args = ARGS,
         also = function(p)
            assert.are.equal("ENOOPENSSL", p.result.code)
         end,
         want = { failed = true, msg = "x509_node_key: the host has no openssl to make its key with (install"
            .. " Debian's openssl package)" } },
      { name = "bits for an EC key is a mistake", state = state(), args = plancases.merge(ARGS, { bits = 2048 }),
         want = { failed = true, msg = "x509_node_key: argument 'bits' is for type rsa" } },
      { name = "a subject attribute openssl -subj cannot take", state = state(),
         args = plancases.merge(ARGS, { subject = { CN = "x", emailAddress = "a@b" } }),
         want = { failed = true,
            msg = 'x509_node_key: subject attribute "emailAddress" is not one of C ST L O OU CN' } },
   })
end)

describe("x509_node_key on a host", function()
   local host = localhost.new()
   local me = helper.run("id -un"):gsub("%s+$", "")
   local dir, args

   before_each(function()
      dir = helper.tmpdir()
      args = { path = dir .. "/peer.key", csr_path = dir .. "/peer.csr", subject = { CN = "etcd1", O = "etcd peer" },
         owner = me, group = me }
   end)

   local function run(a, opts)
      return modtest.run("x509_node_key", a, host, opts)
   end

   it("makes a key only the owner reads and a CSR for it, and shows no private key", function()
      local r = run(args)
      assert.is_true(r.changed, r.msg)
      assert.are.equal("made a ec P-256 key on the host and its CSR", r.msg)
      assert.are.equal("600", helper.run("stat -c %a " .. helper.q(args.path)):gsub("%s+$", ""))
      local key = fs.read(args.path)
      assert.are.equal(x509.public_key(key), x509.public_key(r.csr))
      assert.are.equal(fs.read(args.csr_path), r.csr)
      local info = x509.csr_info(r.csr)
      assert.is_true(info.signature_valid)
      assert.are.same({ "etcd1", "etcd peer" }, { info.subject.CN, info.subject.O })
      assert.is_nil(cjson.encode(r):find("PRIVATE KEY", 1, true), "a private key in the result")
      assert.is_nil(fs.stat(args.path .. ".etcdrun-new"), "a temporary file left")
   end)

   it("changes nothing the second time, and keeps the key while making a new CSR", function()
      run(args)
      local key, csr = fs.read(args.path), fs.read(args.csr_path)
      local r = run(args)
      assert.is_false(r.changed, r.msg)
      assert.are.equal(csr, r.csr)
      os.remove(args.csr_path)
      r = run(args)
      assert.is_true(r.changed)
      assert.are.equal(false, r.notify)
      assert.are.equal(key, fs.read(args.path))
      assert.are.equal(x509.public_key(key), x509.public_key(r.csr))
   end)

   it("makes a new key of the kind asked for", function()
      run(args)
      local old = fs.read(args.path)
      local r = run(plancases.merge(args, { type = "rsa", bits = 2048 }))
      assert.is_true(r.changed)
      assert.is_nil(r.notify)
      assert.are_not.equal(old, fs.read(args.path))
      assert.are.equal("rsa", x509.key_info(fs.read(args.path)).type)
      assert.are.equal(2048, x509.key_info(fs.read(args.path)).bits)
   end)

   it("under --check says what it would make and makes nothing", function()
      local r = run(args, { check = true })
      assert.is_true(r.changed)
      assert.matches("would make a ec P%-256 key", r.msg)
      assert.is_nil(fs.stat(args.path))
      assert.is_nil(fs.stat(args.csr_path))
   end)

   it("fails naming the host and the path when openssl cannot write the key", function()
      local a = plancases.merge(args, { path = dir .. "/missing/peer.key" })
      local r = run(a)
      assert.is_true(r.failed)
      assert.matches("^x509_node_key: controller: " .. (dir .. "/missing/peer.key"):gsub("%p", "%%%0") .. ": ", r.msg)
      assert.is_nil(fs.stat(a.csr_path))
   end)
end)
