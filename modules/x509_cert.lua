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

local DEFAULT_KU = { "digitalSignature", "keyEncipherment" }
local DEFAULT_EKU = { "serverAuth" }
local CA_KU = { "cRLSign", "keyCertSign" }

local M = {
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

-- Whole days from now until t, rounded: a 10-day certificate issued a
-- second ago "expires in 10 days".
local function days_until(t, now)
   return math.floor((t - now) / 86400 + 0.5)
end

local function fail(fmt, ...)
   return nil, "x509_cert: " .. fmt:format(...), "EARGS"
end

-- Read a file that must exist unless this is check mode (an earlier task of
-- the same run would have made it): content, or false in check mode.
local function need(ctx, host, path, what)
   local data, err, code = pki.read(host, path)
   if data == nil then
      return nil, err, code
   end
   if not data and not ctx.check then
      return nil, ("x509_cert: %s not found (%s:%s)"):format(what, host.name, path), "ENOENT"
   end
   return data
end

-- Arguments, paths and inputs: everything check and apply need.
local function gather(ctx, args)
   local g = { ca = args.provider == "selfsigned", host = ctx.host }
   g.ca_host = args.ca_on_controller and ctx.controller or ctx.host
   local err
   for _, a in ipairs({ "path", "privatekey_path", "csr_path", "ca_cert_path", "ca_key_path" }) do
      if args[a] then
         local host = (a == "ca_cert_path" or a == "ca_key_path") and g.ca_host or ctx.host
         g[a], err = pki.path(ctx, host, args[a], "x509_cert: argument '" .. a .. "'")
         if not g[a] then
            return nil, err, "EARGS"
         end
      end
   end
   if g.ca then
      for _, a in ipairs({ "csr_path", "ca_cert_path", "ca_key_path", "san", "key_usage", "ext_key_usage" }) do
         if args[a] ~= nil then
            return fail("argument '%s' is for provider 'ca'", a)
         end
      end
   elseif args.pathlen then
      return fail("argument 'pathlen' is for provider 'selfsigned'")
   elseif not args.csr_path and not (args.privatekey_path and args.subject) then
      return fail("provider 'ca' needs csr_path, or privatekey_path and subject")
   elseif args.csr_path and args.subject then
      return fail("argument 'subject' comes from csr_path: give one or the other")
   end
   g.days = args.days or (g.ca and 3650 or 365)
   local san, serr = pki.check_san(args.san, "x509_cert: argument 'san'")
   if serr then
      return nil, serr, "EARGS"
   end
   g.san = san
   for _, i in ipairs({ { "key", "privatekey_path", ctx.host, "private key", true },
      { "csr", "csr_path", ctx.host, "CSR" }, { "ca_cert", "ca_cert_path", g.ca_host, "CA certificate" },
      { "ca_key", "ca_key_path", g.ca_host, "CA key", true } }) do
      local field, arg, host, what, secret = table.unpack(i)
      if g[arg] then
         local data, rerr, code = need(ctx, host, g[arg], what)
         if data == nil then
            return nil, rerr, code
         end
         g[field] = (data and secret) and ctx.secret(data) or data
      end
   end
   return g
end

-- The wanted certificate's fields, in comparable form, or nil, err, code.
local function wanted(args, g)
   local w = { ca = g.ca, pathlen = args.pathlen }
   local subject, san = args.subject, g.san
   if g.csr then
      local info = x509.try.csr_info(g.csr, g.csr_path)
      if not info or not info.signature_valid then
         return nil, ("x509_cert: not a valid CSR (%s:%s)"):format(g.host.name, g.csr_path), "EPEM"
      end
      subject, san = info.subject, san or info.san
      w.spki = pki.spki(g.csr)
      if g.key and pki.spki(g.key) ~= w.spki then
         return nil, ("x509_cert: CSR %s is not for private key %s (%s)"):format(g.csr_path,
            g.privatekey_path, g.host.name), "EKEYMISMATCH"
      end
   elseif g.key then
      w.spki = pki.spki(g.key)
      if not w.spki then
         return nil, ("x509_cert: not a readable private key (%s:%s)"):format(g.host.name, g.privatekey_path), "EPEM"
      end
   end
   local c, err = pki.canonical(subject, san, g.ca and CA_KU or args.key_usage or DEFAULT_KU,
      (not g.ca) and (args.ext_key_usage or DEFAULT_EKU) or nil)
   if not c then
      return nil, "x509_cert: " .. err, "EARGS"
   end
   w.subject, w.subject_dn, w.san = c.subject, c.subject_dn, c.san
   w.key_usage, w.ext_key_usage = c.key_usage, c.ext_key_usage
   if g.ca_cert then
      local ci = x509.try.info(g.ca_cert, g.ca_cert_path)
      if not ci then
         return nil, ("x509_cert: not a certificate (%s:%s)"):format(g.ca_host.name, g.ca_cert_path), "EPEM"
      end
      w.issuer_dn = ci.subject_dn
      -- caught here, so that check mode already says what apply would hit
      local match, merr = x509.try.key_matches(g.ca_key, g.ca_cert)
      if not match then
         return nil, merr and ("x509_cert: " .. merr) or ("x509_cert: CA key %s does not match CA certificate %s (%s)")
            :format(g.ca_key_path, g.ca_cert_path, g.ca_host.name), "EKEYMISMATCH"
      end
   elseif g.ca then
      w.issuer_dn = w.subject_dn
   end
   return w
end

-- Reasons to (re)issue the certificate `pem` (empty when it is to be kept);
-- the second value says whether expiry is the only one.
local function reasons(args, g, w, pem, info, now)
   local why = {}
   local function add(fmt, ...)
      why[#why + 1] = fmt:format(...)
   end
   if w.spki and pki.spki(pem) ~= w.spki then
      add(g.csr and "certificate is not for the CSR's key" or "certificate does not match the private key")
   end
   local left = info.not_after - now
   local renewing = left < args.renew_before_days * 86400
   if left <= 0 then
      add("expired %d days ago", -days_until(info.not_after, now))
   elseif renewing then
      add("expires in %d days", days_until(info.not_after, now))
   end
   local at = left > 0 and now or info.not_after - 1
   if g.ca then
      if not info.is_ca or not info.self_signed then
         add("not a self-signed CA certificate")
      elseif not x509.try.verify({ cert = pem, ca = pem, at = at }) then
         add("self-signature does not verify")
      end
      if info.is_ca and info.pathlen ~= args.pathlen then
         add("pathlen %s, want %s", tostring(info.pathlen), tostring(args.pathlen))
      end
   elseif g.ca_cert then
      local ok, verr = x509.try.verify({ cert = pem, ca = g.ca_cert, at = at })
      if not ok then
         add("not issued by CA %s (%s)", w.issuer_dn, verr:match("^x509%.verify: (.-) %(") or verr)
      end
   end
   local subject = pki.subject_string(info.subject)
   if subject ~= w.subject then
      add("subject %s, want %s", info.subject_dn, w.subject_dn)
   end
   for _, f in ipairs({ { "san", "SAN" }, { "key_usage", "key usage" }, { "ext_key_usage", "extended key usage" } }) do
      local have = f[1] == "san" and pki.san_list(info.san) or pki.sorted(info[f[1]])
      local missing, extra = pki.set_diff(w[f[1]], have)
      for _, v in ipairs(missing) do
         add("%s %s missing", f[2], v)
      end
      for _, v in ipairs(extra) do
         add("%s %s not requested", f[2], v)
      end
   end
   return why, renewing and #why == 1
end

local function result(path, info, reason, now)
   return {
      path = path, serial = info.serial, not_after = pki.iso(info.not_after),
      days_left = days_until(info.not_after, now), sans = pki.san_list(info.san),
      subject = info.subject_dn, issuer = info.issuer_dn, reason = reason,
   }
end

function M.check(ctx, args)
   local g, err, code = gather(ctx, args)
   if not g then
      return nil, err, code
   end
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   local old
   old, err, code = pki.read(ctx.host, g.path)
   if old == nil then
      return nil, err, code
   end
   -- check mode before an earlier task made an input: all we can say
   if (g.privatekey_path and not g.key) or (g.csr_path and not g.csr)
      or (not g.ca and not (g.ca_cert and g.ca_key)) then
      return { changed = true, msg = "would issue: an input does not exist yet (made by an earlier task)",
         diff = { path = g.path, before = "", after = "(new certificate)\n" } }
   end
   local w
   w, err, code = wanted(args, g)
   if not w then
      return nil, err, code
   end
   local now = os.time()
   local info = old and x509.try.info(old, g.path)
   local why, renewing = { "no certificate" }, false
   if old and not info then
      why = { "existing file is not a certificate" }
   elseif info then
      why, renewing = reasons(args, g, w, old, info, now)
   end
   if #why == 0 then
      return pki.keep_plan(ctx.host, g.path, attrs, "valid until " .. pki.iso(info.not_after),
         result(g.path, info, nil, now))
   end
   local reason = table.concat(why, "; ")
   local verb = not old and "issue" or renewing and "renew" or "reissue"
   local after = {
      subject_dn = w.subject_dn, issuer_dn = w.issuer_dn, san = w.san, key_usage = w.key_usage,
      ext_key_usage = w.ext_key_usage, is_ca = g.ca, pathlen = args.pathlen,
      not_after = "~" .. pki.iso(now + g.days * 86400),
      key = g.key and pki.key_desc(x509.key_info(g.key)) or nil,
   }
   return {
      changed = true,
      msg = ("would %s: %s"):format(verb, reason),
      diff = { path = g.path, before = info and pki.summary(info) or "", after = pki.summary(after) },
      result = { path = g.path, reason = reason },
      g = g, verb = verb, reason = reason, before = info,
   }
end

local PAST = { issue = "issued", renew = "renewed", reissue = "reissued" }

function M.apply(ctx, args, plan)
   local attrs = { mode = args.mode, owner = args.owner, group = args.group }
   if plan.attrs_only then
      return pki.apply_attrs(ctx.host, plan, attrs)
   end
   local g = plan.g
   local pem, err, code
   if g.ca then
      pem, err, code = pki.try(x509.try.ca, { key = g.key, subject = args.subject, days = g.days,
         pathlen = args.pathlen, name = g.path })
   else
      local csr = g.csr
      if not csr then
         csr, err, code = pki.try(x509.try.csr, { key = g.key, subject = args.subject, san = g.san, name = g.path })
      end
      if csr then
         pem, err, code = pki.try(x509.try.sign, { csr = csr, ca_cert = g.ca_cert, ca_key = g.ca_key,
            days = g.days, key_usage = args.key_usage, ext_key_usage = args.ext_key_usage, san = g.san,
            name = g.path })
      end
   end
   if not pem then
      return nil, "x509_cert: " .. err, code
   end
   local ok
   ok, err, code = ctx.host:write(g.path, pem, attrs)
   if not ok then
      return nil, err, code
   end
   local info = x509.info(pem)
   local r = result(g.path, info, plan.reason, os.time())
   r.msg = ("%s: %s"):format(PAST[plan.verb], plan.reason)
   r.diff = { path = g.path, before = plan.before and pki.summary(plan.before) or "",
      after = pki.summary(info) }
   return r
end

return M
