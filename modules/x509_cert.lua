-- x509_cert: a certificate, self-signed (a CA) or signed by a CA, kept
-- across runs while it is still right and reissued only with a reason.
--
-- The existing certificate is kept when it parses, is for the private key
-- (or the CSR's key), verifies against the CA (provider "ca") or against
-- itself as a CA (provider "selfsigned"), has exactly the requested subject,
-- SANs, key usages and extended key usages (basic constraints for a CA), and
-- expires after the renew window (renew_before_days). Otherwise it is
-- (re)issued and msg and result.reason say why ("SAN IP:198.18.0.13
-- missing", "expires in 12 days"). The diff is a summary of the old and new
-- certificate, never PEM.
--
-- Paths are on ctx.host. With ca_on_controller = true the CA certificate and
-- key are read on the controller instead, so a node can keep its own key
-- (generated there) while the CA key never leaves the controller.
local x509 = require("etcdrun.x509")
local pki = require("etcdrun.pki")
local fa = require("etcdrun.fileattrs")

local DEFAULT_KU = { "digitalSignature", "keyEncipherment" }
local DEFAULT_EKU = { "serverAuth" }
local CA_KU = { "cRLSign", "keyCertSign" }

local M = {
   examples = [[controller "CA" { x509_cert = { path = "pki/ca.crt", provider = "selfsigned",
   privatekey_path = "pki/ca.key", subject = { CN = "etcd CA" }, days = 3650 } }]],
   doc = "An X.509 certificate, self-signed CA or CA-signed, reissued only when invalid, mismatched or expiring.",
   args = {
      path = { type = "path", required = true, doc = "certificate file; relative paths are relative to the playbook" },
      provider = { type = "string", choices = { "selfsigned", "ca" }, required = true,
         doc = "selfsigned: a CA certificate for privatekey_path; ca: signed by ca_cert_path/ca_key_path" },
      privatekey_path = { type = "path", doc = "the certificate's private key" },
      csr_path = { type = "path",
         doc = "provider ca: a CSR to sign (else one is made from privatekey_path, subject, san)" },
      subject = { type = "table", doc = "subject, e.g. {CN='etcd1'} (with csr_path: taken from the CSR)" },
      san = { type = "table", doc = "subjectAltName {dns=, ip=, email=, uri=} (with csr_path: default the CSR's)" },
      ca_cert_path = { type = "path", doc = "provider ca: the CA certificate" },
      ca_key_path = { type = "path", doc = "provider ca: the CA private key" },
      privatekey_passphrase = { type = "string", secret = true,
         doc = "the passphrase of an encrypted privatekey_path (a CA's own key, selfsigned)" },
      ca_key_passphrase = { type = "string", secret = true, doc = "the passphrase of an encrypted ca_key_path" },
      ca_on_controller = { type = "boolean", default = false,
         doc = "read ca_cert_path and ca_key_path on the controller rather than on the host" },
      days = { type = "integer", doc = "validity in days (default 3650 selfsigned, 365 ca)" },
      renew_before_days = { type = "integer", default = 30,
         doc = "reissue when it expires within this many days (days <= this renews on every run)" },
      pathlen = { type = "integer", doc = "selfsigned: basicConstraints pathlen" },
      key_usage = { type = "list", elements = "string",
         doc = "provider ca: keyUsage (default digitalSignature, keyEncipherment)" },
      ext_key_usage = { type = "list", elements = "string",
         doc = "provider ca: extendedKeyUsage (default serverAuth), e.g. {'serverAuth','clientAuth'}" },
      mode = { type = "mode", default = "0644", doc = "file mode, an octal string" },
      owner = { type = "string", doc = "file owner" },
      group = { type = "string", doc = "file group" },
   },
   required_if = {
      { "provider", "selfsigned", { "privatekey_path", "subject" } },
      { "provider", "ca", { "ca_cert_path", "ca_key_path" } },
   },
}

local days_until = pki.days_until

local function fail(code, fmt, ...)
   return { failed = true, msg = "x509_cert: " .. fmt:format(...), result = { code = code } }
end

-- The inputs: state field, argument, whether it is on the CA's host, what it is, secret.
local INPUTS = { { "key", "privatekey_path", false, "private key", true }, { "csr", "csr_path", false, "CSR" },
   { "ca_cert", "ca_cert_path", true, "CA certificate" }, { "ca_key", "ca_key_path", true, "CA key", true } }

--- Read the inputs and the certificate (false: missing) and parse them:
--- key {spki, desc}, csr {valid, subject, san, spki}, ca_cert {valid,
--- subject_dn}, ca_key (true), ca_key_matches; cert {valid, info, spki,
--- verified (against the CA, or itself for selfsigned), verify_err}; its
--- stat; now. The PEMs go to apply (state.pem).
function M.gather(ctx, args)
   local ca_host = args.ca_on_controller and ctx.controller or ctx.host
   local state = { now = os.time(), paths = {}, pem = {}, ca_host = ca_host.name }
   local paths, pem = state.paths, state.pem
   for _, a in ipairs({ "path", "privatekey_path", "csr_path", "ca_cert_path", "ca_key_path" }) do
      if args[a] then
         local host = (a == "ca_cert_path" or a == "ca_key_path") and ca_host or ctx.host
         local p, err = pki.path(ctx, host, args[a], "x509_cert: argument '" .. a .. "'")
         if not p then
            return nil, err, "EARGS"
         end
         paths[a] = p
      end
   end
   for _, i in ipairs(INPUTS) do
      local field, arg, on_ca, _, secret = table.unpack(i)
      if paths[arg] then
         local data, err, code = pki.read(on_ca and ca_host or ctx.host, paths[arg])
         if data == nil then
            return nil, err, code
         end
         pem[field] = (data and secret) and ctx.secret(data) or data
         state[field] = data and {} or false
      end
   end
   -- an encrypted key is used decrypted, in memory only
   for field, a in pairs({ key = "privatekey_passphrase", ca_key = "ca_key_passphrase" }) do
      if pem[field] and pem[field]:find("ENCRYPTED PRIVATE KEY", 1, true) then
         local path = paths[field == "key" and "privatekey_path" or "ca_key_path"]
         if not args[a] then
            return nil, ("x509_cert: %s is encrypted: its passphrase is needed (argument '%s')"):format(path, a),
               "EPASSPHRASE"
         end
         local plain, err, code = x509.try.decrypt_key(pem[field], args[a], path)
         if not plain then
            return nil, "x509_cert: " .. tostring(err), code
         end
         pem[field] = ctx.secret(plain)
      end
   end
   if pem.key then
      local ki = x509.try.key_info(pem.key)
      state.key = { spki = pki.spki(pem.key), desc = ki and pki.key_desc(ki) }
   end
   local ci = pem.csr and x509.try.csr_info(pem.csr, paths.csr_path)
   if pem.csr then
      state.csr = ci and ci.signature_valid and { valid = true, subject = ci.subject, san = ci.san,
         spki = pki.spki(pem.csr) } or { valid = false }
   end
   ci = pem.ca_cert and x509.try.info(pem.ca_cert, paths.ca_cert_path)
   if pem.ca_cert then
      state.ca_cert = { valid = ci and true or false, subject_dn = ci and ci.subject_dn }
   end
   state.ca_key = pem.ca_key and true or state.ca_key
   if pem.ca_key and ci then
      state.ca_key_matches, state.ca_key_err = x509.try.key_matches(pem.ca_key, pem.ca_cert)
   end
   local old, st, code = pki.read_stat(ctx.host, paths.path)
   if old == nil then
      return nil, st, code
   end
   state.cert, state.st = pki.cert_facts(old, paths.path, state.now, pem.ca_cert, args.provider == "selfsigned"), st
   return state
end

-- Arguments that go together: true and the SANs asked for (nil: none), or
-- false and a failed plan.
local function check_args(args, ca)
   if ca then
      for _, a in ipairs({ "csr_path", "ca_cert_path", "ca_key_path", "san", "key_usage", "ext_key_usage" }) do
         if args[a] ~= nil then
            return false, fail("EARGS", "argument '%s' is for provider 'ca'", a)
         end
      end
   elseif args.pathlen then
      return false, fail("EARGS", "argument 'pathlen' is for provider 'selfsigned'")
   elseif not args.csr_path and not (args.privatekey_path and args.subject) then
      return false, fail("EARGS", "provider 'ca' needs csr_path, or privatekey_path and subject")
   elseif args.csr_path and args.subject then
      return false, fail("EARGS", "argument 'subject' comes from csr_path: give one or the other")
   end
   local san, serr = pki.check_san(args.san, "x509_cert: argument 'san'")
   if serr then
      return false, { failed = true, msg = serr, result = { code = "EARGS" } }
   end
   return true, san
end

-- The wanted certificate's fields, in comparable form, or nil and a failed plan.
local function wanted(state, args, ca, san, host)
   local w = { ca = ca, pathlen = args.pathlen }
   local subject, paths = args.subject, state.paths
   if state.csr then
      if not state.csr.valid then
         return nil, fail("EPEM", "not a valid CSR (%s:%s)", host, paths.csr_path)
      end
      subject, san, w.spki = state.csr.subject, san or state.csr.san, state.csr.spki
      if state.key and state.key.spki ~= w.spki then
         return nil, fail("EKEYMISMATCH", "CSR %s is not for private key %s (%s)", paths.csr_path,
            paths.privatekey_path, host)
      end
   elseif state.key then
      w.spki = state.key.spki
      if not w.spki then
         return nil, fail("EPEM", "not a readable private key (%s:%s)", host, paths.privatekey_path)
      end
   end
   local c, err = pki.canonical(subject, san, ca and CA_KU or args.key_usage or DEFAULT_KU,
      (not ca) and (args.ext_key_usage or DEFAULT_EKU) or nil)
   if not c then
      return nil, fail("EARGS", "%s", err)
   end
   w.subject, w.subject_dn, w.san = c.subject, c.subject_dn, c.san
   w.key_usage, w.ext_key_usage = c.key_usage, c.ext_key_usage
   if state.ca_cert then
      if not state.ca_cert.valid then
         return nil, fail("EPEM", "not a certificate (%s:%s)", state.ca_host, paths.ca_cert_path)
      end
      w.issuer_dn = state.ca_cert.subject_dn
      -- caught here, so that check mode already says what apply would hit
      if not state.ca_key_matches then
         return nil, state.ca_key_err and fail("EKEYMISMATCH", "%s", state.ca_key_err)
            or fail("EKEYMISMATCH", "CA key %s does not match CA certificate %s (%s)", paths.ca_key_path,
               paths.ca_cert_path, state.ca_host)
      end
   elseif ca then
      w.issuer_dn = w.subject_dn
   end
   return w
end

-- Reasons to (re)issue the certificate (empty when it is to be kept);
-- the second value says whether expiry is the only one.
local function reasons(state, args, w, ca, now)
   local cert, info, why = state.cert, state.cert.info, {}
   local function add(fmt, ...)
      why[#why + 1] = fmt:format(...)
   end
   if w.spki and cert.spki ~= w.spki then
      add(state.csr and "certificate is not for the CSR's key" or "certificate does not match the private key")
   end
   local left = info.not_after - now
   local renewing = left < args.renew_before_days * 86400
   if left <= 0 then
      add("expired %d days ago", -days_until(info.not_after, now))
   elseif renewing then
      add("expires in %d days", days_until(info.not_after, now))
   end
   if ca then
      if not info.is_ca or not info.self_signed then
         add("not a self-signed CA certificate")
      elseif not cert.verified then
         add("self-signature does not verify")
      end
      if info.is_ca and info.pathlen ~= args.pathlen then
         add("pathlen %s, want %s", tostring(info.pathlen), tostring(args.pathlen))
      end
   elseif state.ca_cert and not cert.verified then
      local verr = cert.verify_err or "?"
      add("not issued by CA %s (%s)", w.issuer_dn, verr:match("^x509%.verify: (.-) %(") or verr)
   end
   if pki.subject_string(info.subject) ~= w.subject then
      add("subject %s, want %s", info.subject_dn, w.subject_dn)
   end
   pki.mismatches(why, w, { san = pki.san_list(info.san), key_usage = pki.sorted(info.key_usage),
      ext_key_usage = pki.sorted(info.ext_key_usage) },
      { { "san", "SAN" }, { "key_usage", "key usage" }, { "ext_key_usage", "extended key usage" } })
   return why, renewing and #why == 1
end

--- Issue when missing, invalid, for another key or CA, mismatched or
--- expiring within renew_before_days; else keep, fixing attributes.
function M.plan(state, args, opts)
   local ca, path, now = args.provider == "selfsigned", state.paths.path, state.now
   local ok, san = check_args(args, ca)
   if not ok then
      return san
   end
   local missing = false
   for _, i in ipairs(INPUTS) do
      local field, arg, on_ca, what = table.unpack(i)
      if state[field] == false then
         -- check mode before an earlier task made an input: all we can say
         if not opts.check then
            return fail("ENOENT", "%s not found (%s:%s)", what, on_ca and state.ca_host or opts.host, state.paths[arg])
         end
         missing = true
      end
   end
   if missing then
      return { changed = true, msg = "would issue: an input does not exist yet (made by an earlier task)",
         diff = { path = path, before = "", after = "(new certificate)\n" } }
   end
   local w, bad = wanted(state, args, ca, san, opts.host)
   if not w then
      return bad
   end
   local cert = state.cert
   local info = cert and cert.info
   local why, renewing = { "no certificate" }, false
   if cert and not cert.valid then
      why = { "existing file is not a certificate" }
   elseif info then
      why, renewing = reasons(state, args, w, ca, now)
   end
   if #why == 0 then
      return fa.keep_plan(path, state.st, args, "valid until " .. pki.iso(info.not_after),
         pki.cert_result(path, info, nil, now))
   end
   local reason = table.concat(why, "; ")
   local verb = not cert and "issue" or renewing and "renew" or "reissue"
   local days = args.days or (ca and 3650 or 365)
   local after = {
      subject_dn = w.subject_dn, issuer_dn = w.issuer_dn, san = w.san, key_usage = w.key_usage,
      ext_key_usage = w.ext_key_usage, is_ca = ca, pathlen = args.pathlen,
      not_after = "~" .. pki.iso(now + days * 86400), key = state.key and state.key.desc,
   }
   return {
      changed = true,
      msg = ("would %s: %s"):format(verb, reason),
      diff = { path = path, before = info and pki.summary(info) or "", after = pki.summary(after) },
      result = { path = path, reason = reason },
      pem = state.pem, san = san, days = days, verb = verb, reason = reason, before = info,
   }
end

local PAST = { issue = "issued", renew = "renewed", reissue = "reissued" }

function M.apply(ctx, args, plan)
   local path = plan.result.path
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   if plan.attrs_only then
      local ok, err, code = fa.fix(ctx.host, "x509_cert", path, attrs)
      return ok and { msg = plan.msg }, err, code
   end
   local pem, err, code = pki.issue(args, plan.pem, { days = plan.days, san = plan.san, name = path })
   if not pem then
      return nil, "x509_cert: " .. err, code
   end
   local ok
   ok, err, code = ctx.host:write(path, pem, attrs)
   if not ok then
      return nil, err, code
   end
   local info = x509.info(pem)
   local r = pki.cert_result(path, info, plan.reason, os.time())
   r.msg = ("%s: %s"):format(PAST[plan.verb], plan.reason)
   r.diff = { path = path, before = plan.before and pki.summary(plan.before) or "", after = pki.summary(info) }
   return r
end

return M
