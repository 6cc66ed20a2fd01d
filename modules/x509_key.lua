-- x509_key: a private key file (PKCS#8 PEM), made once and kept.
--
-- A key is the one thing a PKI must not replace casually: every certificate
-- and CSR made from it stops matching. So an existing key is kept whenever it
-- parses and is of the requested type, size and curve; only a missing or
-- unreadable file, a key of another kind (with regenerate="on_mismatch", the
-- default) or regenerate="always" makes a new one. With regenerate="never" a
-- key of another kind is kept (and said so in msg), and an unreadable file is
-- an error rather than overwritten.
--
-- The key is generated in the etcdrun process (OpenSSL, on the controller)
-- and written through ctx.host atomically with its mode set before any byte
-- is written. Key material is marked secret and never appears in msg, diff
-- or result: the diff shows only the key's kind.
local x509 = require("etcdrun.x509")
local pki = require("etcdrun.pki")
local fa = require("etcdrun.fileattrs")

local M = {
   examples = [[controller "CA key" { x509_key = { path = "pki/ca.key", type = "ec", curve = "P-256" } }]],
   doc = "A private key (RSA, ECDSA or Ed25519) in a PEM file, generated once and kept while it matches.",
   args = {
      path = { type = "path", required = true,
         doc = "key file; relative paths are relative to the playbook (controller only)" },
      type = { type = "string", choices = { "rsa", "ec", "ed25519" }, default = "ec", doc = "key algorithm" },
      bits = { type = "integer", choices = { 2048, 3072, 4096 },
         doc = "RSA key size (type rsa only; default 2048)" },
      curve = { type = "string", choices = { "P-256", "P-384", "P-521" },
         doc = "ECDSA curve (type ec only; default P-256)" },
      mode = { type = "mode", default = "0600", doc = "file mode, an octal string" },
      owner = { type = "string", doc = "file owner (name or uid)" },
      group = { type = "string", doc = "file group (name or gid)" },
      passphrase = { type = "string", secret = true,
         doc = "encrypt the key with this passphrase (AES-256, PKCS#8); an existing plain key is encrypted in place,"
            .. " an encrypted one needs it to be read" },
      regenerate = { type = "string", choices = { "on_mismatch", "never", "always" }, default = "on_mismatch",
         doc = "on_mismatch: replace a missing, unreadable or different key; never: keep any readable key; "
            .. "always: a new key on every run (rotation; not idempotent)" },
   },
}

local function wanted(args)
   if args.type == "rsa" then
      return { type = "rsa", bits = args.bits or 2048 }
   elseif args.type == "ec" then
      return { type = "ec", curve = args.curve or "P-256" }
   end
   return { type = "ed25519" }
end

local function matches(info, want)
   return info.type == want.type and (want.bits == nil or info.bits == want.bits)
      and (want.curve == nil or info.curve == want.curve)
end

local function result(path, k)
   return { path = path, type = k.type, bits = k.bits, curve = k.curve }
end

local function fail(msg, code)
   return { failed = true, msg = msg, result = { code = code } }
end

--- The key file on ctx.host: whether it exists, what key it holds (info:
--- type, bits, curve; nil and why when it does not parse) and its stat.
function M.gather(ctx, args)
   local path, perr = pki.path(ctx, ctx.host, args.path, "x509_key: argument 'path'")
   if not path then
      return nil, perr, "EARGS"
   end
   local pem, st, code = pki.read_stat(ctx.host, path)
   if pem == nil then
      return nil, st, code
   end
   local state = { path = path, exists = pem and true or false, st = st }
   if pem then
      ctx.secret(pem)
      state.encrypted = pem:find("ENCRYPTED PRIVATE KEY", 1, true) ~= nil
      if state.encrypted then
         if not args.passphrase then
            return nil, ("x509_key: %s is encrypted: its passphrase is needed (argument 'passphrase')"):format(path),
               "EPASSPHRASE"
         end
         local plain, derr, dcode = x509.try.decrypt_key(pem, args.passphrase, path)
         if not plain then
            return nil, "x509_key: " .. tostring(derr), dcode
         end
         pem = ctx.secret(plain)
      end
      state.info, state.why = x509.try.key_info(pem, path)
   end
   return state
end

--- Generate when missing, unreadable or (on_mismatch) of another kind, or
--- always; else keep, fixing attributes.
function M.plan(state, args, opts)
   if args.bits and args.type ~= "rsa" then
      return fail("x509_key: argument 'bits' is for type 'rsa'", "EARGS")
   end
   if args.curve and args.type ~= "ec" then
      return fail("x509_key: argument 'curve' is for type 'ec'", "EARGS")
   end
   local path, info = state.path, state.info
   local want = wanted(args)
   local desc = pki.key_desc(want)
   local reason
   if not state.exists then
      reason = "no key"
   elseif not info then
      if args.regenerate == "never" then
         return fail(("x509_key: %s is not a readable private key (%s) and regenerate is 'never' (%s)")
            :format(path, state.why, opts.host), "EPEM")
      end
      reason = "existing file is not a readable private key"
   elseif args.regenerate == "always" then
      reason = "regenerate is 'always'"
   elseif not matches(info, want) and args.regenerate == "on_mismatch" then
      reason = ("existing key is %s, not %s"):format(pki.key_desc(info), desc)
   end
   if reason then
      return {
         changed = true,
         msg = (state.exists and "would regenerate: " or "would generate: ") .. reason,
         diff = { path = path, before = info and (pki.key_desc(info) .. " key\n") or "",
            after = desc .. " key (new)\n", secret = true },
         reason = reason,
         existed = state.exists,
         result = { path = path, type = want.type, bits = want.bits, curve = want.curve },
      }
   end
   local kept = matches(info, want) and "kept" or ("kept %s key (regenerate is 'never')"):format(pki.key_desc(info))
   if args.passphrase and not state.encrypted then
      return { changed = true, encrypt = true, msg = "would encrypt the key with its passphrase (the same key)",
         diff = { path = path, before = pki.key_desc(info) .. " key\n", after = pki.key_desc(info)
            .. " key, encrypted\n", secret = true }, result = result(path, info) }
   end
   return fa.keep_plan(path, state.st, args, kept, result(path, info))
end

function M.apply(ctx, args, plan)
   local path = plan.result.path
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   if plan.attrs_only then
      local ok, err, code = fa.fix(ctx.host, "x509_key", path, attrs)
      return ok and { msg = plan.msg }, err, code
   end
   local pem, err, code
   if plan.encrypt then
      pem, err, code = ctx.host:read(path)
   else
      -- generated on a thread of its own: other hosts' keys are made meanwhile
      pem, err, code = ctx.await(x509.key_job(wanted(args)))
   end
   if not pem then
      return nil, err, code
   end
   ctx.secret(pem)
   local plain = pem
   if args.passphrase then
      pem, err, code = x509.try.encrypt_key(plain, args.passphrase, path)
      if not pem then
         return nil, err, code
      end
      ctx.secret(pem)
   end
   local ok
   ok, err, code = ctx.host:write(path, pem, attrs)
   if not ok then
      return nil, err, code
   end
   local r = result(path, x509.key_info(plain))
   r.msg = plan.encrypt and "encrypted the key with its passphrase" or ((plan.existed and "regenerated: "
      or "generated: ") .. plan.reason .. (args.passphrase and ", encrypted" or ""))
   return r
end

return M
