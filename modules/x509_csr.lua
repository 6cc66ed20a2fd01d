-- x509_csr: a certificate signing request for an existing private key.
--
-- The wanted CSR is built in memory from the key and the arguments, and
-- compared field by field (subject, SANs, key usages, extended key usages,
-- basic constraints, and the public key itself, by its DER) with the CSR on
-- disk: a CSR's signature is not deterministic, so bytes cannot be compared.
-- The file is rewritten only when one of those differs, so a certificate
-- made from it is not reissued without cause.
local x509 = require("etcdrun.x509")
local pki = require("etcdrun.pki")
local fa = require("etcdrun.fileattrs")

local M = {
   examples = [[controller "server CSR" { x509_csr = { path = "pki/etcd1-server.csr",
   privatekey_path = "pki/etcd1-server.key", subject = { CN = "etcd1" },
   san = { dns = { "etcd1", "localhost" }, ip = { "10.0.0.1", "127.0.0.1" } } } }]],
   doc = "A PEM certificate signing request for a private key, rewritten only when its content would change.",
   args = {
      path = { type = "path", required = true, doc = "CSR file; relative paths are relative to the playbook" },
      privatekey_path = { type = "path", required = true, doc = "the private key (same host)" },
      subject = { type = "table", default = {}, doc = "subject, e.g. {CN='etcd1', O='etcd'}; a value may be a list" },
      san = { type = "table", doc = "subjectAltName: {dns={...}, ip={...}, email={...}, uri={...}}" },
      key_usage = { type = "list", elements = "string", doc = "keyUsage names, e.g. {'digitalSignature'}" },
      ext_key_usage = { type = "list", elements = "string", doc = "extendedKeyUsage names, e.g. {'serverAuth'}" },
      ca = { type = "boolean", doc = "request basicConstraints CA:TRUE (true) or CA:FALSE (false)" },
      pathlen = { type = "integer", doc = "basicConstraints pathlen (with ca=true)" },
      mode = { type = "mode", default = "0644", doc = "file mode, an octal string" },
      owner = { type = "string", doc = "file owner" },
      group = { type = "string", doc = "file group" },
   },
}

-- What a CSR says, in comparable form.
local function fields(info, spki)
   return {
      subject = pki.subject_string(info.subject),
      subject_dn = info.subject_dn,
      san = pki.san_list(info.san),
      key_usage = pki.sorted(info.key_usage),
      ext_key_usage = pki.sorted(info.ext_key_usage),
      spki = spki,
      valid = true,
   }
end

local function list(t)
   return #t > 0 and table.concat(t, ", ") or "(none)"
end

local function summary(f)
   return ("subject: %s\nsan: %s\nkey_usage: %s\next_key_usage: %s\nbasic_constraints: %s\n")
      :format(f.subject_dn, list(f.san), list(f.key_usage), list(f.ext_key_usage), f.ca)
end

-- Why the existing CSR does not match the wanted one (nil when it does).
local function differences(want, have)
   local why = {}
   if have.spki ~= want.spki then
      why[#why + 1] = "CSR is for another key"
   end
   if have.subject ~= want.subject then
      why[#why + 1] = ("subject %s, want %s"):format(have.subject_dn, want.subject_dn)
   end
   pki.mismatches(why, want, have, { { "san", "SAN" }, { "key_usage", "key_usage" },
      { "ext_key_usage", "ext_key_usage" } })
   if have.ca ~= want.ca then
      why[#why + 1] = ("basic constraints %s, want %s"):format(have.ca, want.ca)
   end
   return #why > 0 and table.concat(why, "; ") or nil
end

local function fail(msg, code)
   return { failed = true, msg = msg, result = { code = code } }
end

-- basicConstraints as a CSR states them.
local function ca_string(is_ca, pathlen)
   return is_ca and ("CA:TRUE" .. (pathlen and (", pathlen " .. pathlen) or "")) or "CA:FALSE"
end

--- The key (false: missing; else its public key, spki) and the CSR on
--- disk (false: missing; {valid = false}; or its fields, comparable), and
--- the CSR file's stat.
function M.gather(ctx, args)
   local h = ctx.host
   local path, perr = pki.path(ctx, h, args.path, "x509_csr: argument 'path'")
   local keypath, kerr = pki.path(ctx, h, args.privatekey_path, "x509_csr: argument 'privatekey_path'")
   if not path or not keypath then
      return nil, perr or kerr, "EARGS"
   end
   local state = { path = path, keypath = keypath }
   local key, err, code = pki.read(h, keypath)
   if key == nil then
      return nil, err, code
   end
   state.key = key and { spki = pki.spki(ctx.secret(key)) }
   state.key_pem = key or nil
   local old
   old, state.st, code = pki.read_stat(h, path)
   if old == nil then
      return nil, state.st, code
   end
   state.csr = old and { valid = false }
   local info = old and x509.try.csr_info(old, path)
   if info and info.signature_valid then
      state.csr = fields(info, pki.spki(old))
      state.csr.ca = ca_string(info.is_ca, info.pathlen)
   end
   return state
end

--- Rewrite when missing, invalid or different in any field; else keep.
function M.plan(state, args, opts)
   local path = state.path
   local san, serr = pki.check_san(args.san, "x509_csr: argument 'san'")
   if serr then
      return fail(serr, "EARGS")
   end
   if args.pathlen and not args.ca then
      return fail("x509_csr: argument 'pathlen' needs ca = true", "EARGS")
   end
   if not state.key then
      if opts.check then
         return { changed = true, msg = ("would create: private key %s does not exist yet"):format(state.keypath),
            diff = { path = path, before = "", after = "(new CSR)\n" } }
      end
      return fail(("x509_csr: private key not found (%s:%s)"):format(opts.host, state.keypath), "ENOENT")
   end
   local want, err = pki.canonical(args.subject, san, args.key_usage, args.ext_key_usage)
   if not want then
      return fail("x509_csr: " .. err, "EARGS")
   end
   want.ca, want.spki = ca_string(args.ca, args.pathlen), state.key.spki
   local have, reason = state.csr
   if not have then
      reason = "no CSR"
   elseif not have.valid then
      have, reason = nil, "existing file is not a valid CSR"
   else
      reason = differences(want, have)
   end
   if reason then
      return {
         changed = true,
         msg = (state.csr and "would regenerate: " or "would create: ") .. reason,
         diff = { path = path, before = have and summary(have) or "", after = summary(want) },
         reason = reason, existed = state.csr and true or false, key_pem = state.key_pem, san = san,
         result = { path = path, reason = reason },
      }
   end
   return fa.keep_plan(path, state.st, args, "kept", { path = path })
end

function M.apply(ctx, args, plan)
   local path = plan.result.path
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   if plan.attrs_only then
      local ok, err, code = fa.fix(ctx.host, "x509_csr", path, attrs)
      return ok and { msg = plan.msg }, err, code
   end
   local csr, err, code = pki.try(x509.try.csr, { key = plan.key_pem, subject = args.subject, san = plan.san,
      key_usage = args.key_usage, ext_key_usage = args.ext_key_usage, ca = args.ca, pathlen = args.pathlen,
      name = path })
   if not csr then
      return nil, "x509_csr: " .. pki.argument_error(err), code
   end
   local ok
   ok, err, code = ctx.host:write(path, csr, attrs)
   if not ok then
      return nil, err, code
   end
   return { msg = (plan.existed and "regenerated: " or "created: ") .. plan.reason }
end

return M
