--- Policy helpers shared by the x509_key, x509_csr and x509_cert modules:
-- where a path lives, reading a file that may be missing, and the
-- canonical forms (subject, SANs, usages, public key) that decide
-- whether an existing key, CSR or certificate still matches what a task asks
-- for. The crypto itself is etcdrun.x509 (the C core); nothing here touches
-- a file except through a host object, so the modules work the same on the
-- controller and on a node. File attributes are etcdrun.fileattrs'.
local x509 = require("etcdrun.x509")

local M = {}

--- An absolute path for `p` on `host`. A relative path is taken relative to
-- the playbook's directory, which only makes sense on the controller.
---@param ctx table module context
---@param host table the host the path lives on
---@param p string
---@param what string "x509_cert: argument 'path'" (for the message)
---@return string|nil path, string|nil err
function M.path(ctx, host, p, what)
   if p:sub(1, 1) == "/" then
      return p
   end
   if host.local_ then
      return ctx.path(p)
   end
   return nil, ("%s must be an absolute path on %s, got '%s'"):format(what, host.name, p)
end

--- Read a file that may legitimately be missing: its content, false when it
-- does not exist, or nil, err, code for any other failure.
---@return string|false|nil data, string|nil err, string|nil code
function M.read(host, path)
   local data, err, code = host:read(path)
   if data then
      return data
   end
   if code == "ENOENT" then
      return false
   end
   return nil, err, code
end

--- read, and for a file that exists its stat too (for fileattrs.keep_plan):
--- data and stat, false when it does not exist, or nil, err, code.
---@return string|false|nil data, table|string|nil st_or_err, string|nil code
function M.read_stat(host, path)
   local data, err, code = M.read(host, path)
   if not data then
      return data, err, code
   end
   local st
   st, err, code = host:stat(path)
   if not st then
      return nil, err, code
   end
   return data, st
end

-- ---- canonical forms ---------------------------------------------------

--- Sorted copy of a list of strings.
function M.sorted(list)
   local t = {}
   for i, v in ipairs(list or {}) do
      t[i] = v
   end
   table.sort(t)
   return t
end

--- Append to `why` what differs between two sets of lists: for each
--- {field, label} of fields, "<label> <v> missing" for a value of want[field]
--- not in have[field] and "<label> <v> not requested" for the reverse.
---@param why string[]
---@param want table
---@param have table
---@param fields table[] { {"san", "SAN"}, {"key_usage", "key usage"}, ... }
function M.mismatches(why, want, have, fields)
   for _, f in ipairs(fields) do
      local w, h = {}, {}
      for _, v in ipairs(want[f[1]]) do
         w[v] = true
      end
      for _, v in ipairs(have[f[1]]) do
         h[v] = true
      end
      for _, v in ipairs(want[f[1]]) do
         if not h[v] then
            why[#why + 1] = ("%s %s missing"):format(f[2], v)
         end
      end
      for _, v in ipairs(have[f[1]]) do
         if not w[v] then
            why[#why + 1] = ("%s %s not requested"):format(f[2], v)
         end
      end
   end
   return why
end

--- Whole days from now until t, rounded: a 10-day certificate issued a
--- second ago "expires in 10 days".
function M.days_until(t, now)
   return math.floor((t - now) / 86400 + 0.5)
end

--- A certificate's facts as gather records them: false (no file), {valid =
--- false}, or {valid, info (x509.info), spki, verified, verify_err}: verified
--- against ca_pem (or itself when selfsigned and it is a self-signed CA) at
--- now, or just before it expired.
function M.cert_facts(pem, path, now, ca_pem, selfsigned)
   local info = pem and x509.try.info(pem, path)
   if not info then
      return pem and { valid = false }
   end
   local facts = { valid = true, info = info, spki = M.spki(pem) }
   local at = info.not_after > now and now or info.not_after - 1
   local ca = selfsigned and info.is_ca and info.self_signed and pem or (not selfsigned and ca_pem)
   if ca then
      facts.verified, facts.verify_err = x509.try.verify({ cert = pem, ca = ca, at = at })
   end
   return facts
end

local SAN_PREFIX = { { "dns", "DNS" }, { "ip", "IP" }, { "email", "email" }, { "uri", "URI" } }

--- A SAN table as x509.info returns it ({dns={..}, ip={..}, ...}) as one
--- sorted list "DNS:localhost", "IP:127.0.0.1", ...
---@param san table|nil
---@return string[]
function M.san_list(san)
   local out = {}
   for _, p in ipairs(SAN_PREFIX) do
      for _, v in ipairs((san or {})[p[1]] or {}) do
         out[#out + 1] = p[2] .. ":" .. v
      end
   end
   table.sort(out)
   return out
end

--- A subject table as one stable string "CN=a/O=b/OU=x+y" (keys sorted).
---@param subject table|nil
---@return string
function M.subject_string(subject)
   local keys = {}
   for k in pairs(subject or {}) do
      keys[#keys + 1] = k
   end
   table.sort(keys)
   local parts = {}
   for _, k in ipairs(keys) do
      local v = subject[k]
      if type(v) == "table" then
         v = table.concat(v, "+")
      end
      parts[#parts + 1] = k .. "=" .. tostring(v)
   end
   return table.concat(parts, "/")
end

--- Call an etcdrun.x509 (core) function that may raise on a malformed
--- argument (a bad IP, an unknown usage name) or return nil, err, code:
--- either way the result, or nil and a message without the position and
--- the "x509.fn: " prefix, for the module to put its own name in front.
---@return any|nil result, string|nil err, string|nil code
function M.try(fn, ...)
   local ok, r, err, code = pcall(fn, ...)
   if ok and r ~= nil then
      return r
   end
   local msg = tostring(ok and err or r)
   return nil, (msg:gsub("^[^:\n]*:%d+: ", ""):gsub("^x509%.[%w_]+: ", "")), ok and code or "EARGS"
end

--- The core's message about a malformed subject, SAN or usage, prefixed
--- with the module argument it is about.
---@param err string
---@return string
function M.argument_error(err)
   local arg
   if err:find("san%.") then
      arg = "san"
   elseif err:find("ext_key_usage", 1, true) then
      arg = "ext_key_usage"
   elseif err:find("key_usage", 1, true) then
      arg = "key_usage"
   elseif err:find("subject", 1, true) or err:find("(known: DC,", 1, true) then
      arg, err = "subject", err:gsub("^unknown option", "unknown attribute"):gsub("subject%.", "")
   end
   return arg and ("argument '%s': %s"):format(arg, err) or err
end

-- A throwaway key, only ever used to let the core parse and normalise a
-- requested subject and SAN list (IPv6 spelling, list forms) exactly the way
-- it reads them back from a certificate.
local scratch_key

--- The requested subject, SANs and usages the way the core reads them back
--- from a CSR or certificate: {subject = "CN=..", subject_dn =, san =
--- {"DNS:.."}, key_usage = {..}, ext_key_usage = {..}} (lists sorted), or
--- nil and the core's message for a malformed subject, SAN or usage name.
---@param subject table|nil
---@param san table|nil san as returned by check_san
---@param key_usage string[]|nil
---@param ext_key_usage string[]|nil
---@return table|nil canonical, string|nil err
function M.canonical(subject, san, key_usage, ext_key_usage)
   scratch_key = scratch_key or x509.key({ type = "ed25519" })
   local csr, err = M.try(x509.try.csr, { key = scratch_key, subject = subject or {}, san = san,
      key_usage = key_usage, ext_key_usage = ext_key_usage })
   if not csr then
      return nil, M.argument_error(err)
   end
   local info = x509.csr_info(csr)
   return { subject = M.subject_string(info.subject), subject_dn = info.subject_dn,
      san = M.san_list(info.san), key_usage = M.sorted(info.key_usage),
      ext_key_usage = M.sorted(info.ext_key_usage) }
end

--- Check a `san` argument: {dns=, ip=, email=, uri=}, each a string or a
--- list of strings; returns it with every value a list, or nil, message.
function M.check_san(san, what)
   if san == nil then
      return nil
   end
   local out = {}
   for k, v in pairs(san) do
      if k ~= "dns" and k ~= "ip" and k ~= "email" and k ~= "uri" then
         return nil, ("%s: unknown SAN kind '%s' (dns, ip, email, uri)"):format(what, tostring(k))
      end
      if type(v) == "string" then
         v = { v }
      end
      if type(v) ~= "table" then
         return nil, ("%s: san.%s must be a string or a list of strings"):format(what, k)
      end
      for _, e in ipairs(v) do
         if type(e) ~= "string" then
            return nil, ("%s: san.%s must be a string or a list of strings"):format(what, k)
         end
      end
      out[k] = v
   end
   return out
end

-- ---- public keys: which key a CSR or a certificate is for --------------

--- The public key (PEM) of a CSR, certificate or private key PEM, for
--- comparing which key a CSR or certificate is for: OpenSSL writes the same
--- key as the same text.
---@param pem string
---@return string|nil pub
function M.spki(pem)
   return (x509.try.public_key(pem))
end

--- Make a certificate as x509_cert's arguments say (provider selfsigned:
--- a CA for pem.key; ca: pem.csr, or a CSR made from pem.key and the
--- subject, signed with pem.ca_cert and pem.ca_key): the PEM, or nil, err, code.
---@param args table x509_cert's arguments
---@param pem table {key?, csr?, ca_cert?, ca_key?}
---@param o table {days, san?, name}
function M.issue(args, pem, o)
   if args.provider == "selfsigned" then
      return M.try(x509.try.ca, { key = pem.key, subject = args.subject, days = o.days, pathlen = args.pathlen,
         name = o.name })
   end
   local csr = pem.csr
   if not csr then
      local err, code
      csr, err, code = M.try(x509.try.csr, { key = pem.key, subject = args.subject, san = o.san, name = o.name })
      if not csr then
         return nil, err, code
      end
   end
   return M.try(x509.try.sign, { csr = csr, ca_cert = pem.ca_cert, ca_key = pem.ca_key, days = o.days,
      key_usage = args.key_usage, ext_key_usage = args.ext_key_usage, san = o.san, name = o.name })
end

-- ---- showing certificates ----------------------------------------------

--- What x509_cert returns about a certificate (x509.info `info`).
function M.cert_result(path, info, reason, now)
   return {
      path = path, serial = info.serial, not_after = M.iso(info.not_after),
      days_left = M.days_until(info.not_after, now), sans = M.san_list(info.san),
      subject = info.subject_dn, issuer = info.issuer_dn, reason = reason,
   }
end

--- Seconds since the epoch as ISO 8601 UTC.
function M.iso(t)
   return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

--- A short text summary of a certificate, for diffs: what changed, never
--- the PEM. `i` is an x509.info table, or a predicted one with san as a
--- list ("DNS:..") and key as a description ("ec P-256").
---@param i table {subject_dn, issuer_dn, san, key_usage, ext_key_usage, not_after, serial, is_ca, pathlen, key}
---@return string
function M.summary(i)
   if i.san and i.san.dns then
      local copy = {}
      for k, v in pairs(i) do
         copy[k] = v
      end
      copy.san, copy.key = M.san_list(i.san), M.key_desc(i)
      copy.key_usage, copy.ext_key_usage = M.sorted(i.key_usage), M.sorted(i.ext_key_usage)
      i = copy
   end
   local lines = {
      "subject: " .. (i.subject_dn or "?"),
      "issuer: " .. (i.issuer_dn or "?"),
   }
   if i.is_ca then
      lines[#lines + 1] = "ca: true" .. (i.pathlen and (", pathlen " .. i.pathlen) or "")
   end
   if i.san and #i.san > 0 then
      lines[#lines + 1] = "san: " .. table.concat(i.san, ", ")
   end
   if i.key_usage and #i.key_usage > 0 then
      lines[#lines + 1] = "key_usage: " .. table.concat(i.key_usage, ", ")
   end
   if i.ext_key_usage and #i.ext_key_usage > 0 then
      lines[#lines + 1] = "ext_key_usage: " .. table.concat(i.ext_key_usage, ", ")
   end
   if i.key then
      lines[#lines + 1] = "key: " .. i.key
   end
   lines[#lines + 1] = "not_after: " .. (type(i.not_after) == "number" and M.iso(i.not_after) or i.not_after or "?")
   lines[#lines + 1] = "serial: " .. (i.serial or "(new)")
   return table.concat(lines, "\n") .. "\n"
end

--- "ec P-256", "rsa 4096", "ed25519" from a key_info-like table.
function M.key_desc(t, bits, curve)
   if type(t) == "table" then
      t, bits, curve = t.type or t.key_type, t.bits or t.key_bits, t.curve
   end
   if t == "ec" then
      return "ec " .. tostring(curve)
   elseif t == "rsa" then
      return "rsa " .. tostring(bits)
   end
   return tostring(t)
end

return M
