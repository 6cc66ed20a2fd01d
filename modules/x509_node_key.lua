-- x509_node_key: a private key made on the host itself, by its own openssl,
-- and a CSR for it. The key never crosses the network and never sits on the
-- controller, and on real hardware every member makes its key at once, on
-- its own CPU. gather reads only public material (the key's public half and
-- the CSR); plan decides from it; apply makes a missing key, or one of
-- another kind (umask 077, then chown/chmod, then a rename: never a
-- half-written key), and the CSR. The result carries the CSR (public) for a
-- CA on the controller to sign (x509_cert with csr_path).
--
-- A new key notifies the task's handlers (the service reading it must
-- restart to pair it with its new certificate); a new CSR for the same key
-- does not.
local shell = require("etcdrun.shell")
local pki = require("etcdrun.pki")
local x509 = require("etcdrun.x509")

local q = shell.quote

local M = {
   doc = "A private key generated on the host by its openssl (it never leaves the host) and a CSR for it.",
   args = {
      path = { type = "path", required = true, absolute = true, doc = "the key file on the host (mode 0600)" },
      csr_path = { type = "path", required = true, absolute = true, doc = "the CSR file on the host (mode 0644)" },
      type = { type = "string", choices = { "ec", "rsa" }, default = "ec", doc = "key algorithm" },
      bits = { type = "integer", choices = { 2048, 3072, 4096 }, doc = "RSA key size (type rsa; default 2048)" },
      curve = { type = "string", choices = { "P-256", "P-384", "P-521" },
         doc = "ECDSA curve (type ec; default P-256)" },
      subject = { type = "table", required = true,
         doc = "the CSR's subject, e.g. { CN = 'etcd1', O = 'etcd server' } (its SANs come from the signer)" },
      owner = { type = "string", default = "root", doc = "the key's owner" },
      group = { type = "string", default = "root", doc = "the key's group" },
   },
   examples = [[task "server key" { x509_node_key = { path = "/etc/etcd/ssl/server.key", csr_path =
   "/etc/etcd/ssl/server.csr", subject = { CN = "etcd1", O = "etcd server" }, owner = "etcd", group = "etcd" },
   register = "server_key" }]],
}

-- the subject's attributes in the order openssl's -subj and our CSRs use
local SUBJECT_ORDER = { "C", "ST", "L", "O", "OU", "CN" }
local MARK = "@@etcdrun_csr@@" -- no pattern magic: it is matched as a pattern too

--- state: key ("absent", "noopenssl", "unreadable" or nil when read),
--- kind (openssl's description lines of the public key), pub (its PEM),
--- csr (PEM), csr_pub and csr_subject.
function M.gather(ctx, args)
   local p = q(args.path)
   local cmd = ("if ! command -v openssl >/dev/null 2>&1; then echo key=noopenssl;"
         .. " elif [ ! -e %s ]; then echo key=absent;"
         .. " elif ! openssl pkey -in %s -pubout 2>/dev/null; then echo key=unreadable;"
         .. " else openssl pkey -in %s -noout -text_pub 2>/dev/null | grep -E '^(Public-Key|NIST CURVE)'"
         .. " | sed 's/^/kind=/'; fi; echo %s; cat %s 2>/dev/null || true")
      :format(p, p, p, MARK, q(args.csr_path))
   local r, err, code = ctx.host:exec(cmd)
   if not r then
      return nil, err, code
   end
   local head, csr = r.stdout:match("^(.-)" .. MARK .. "\n(.*)$")
   head = head or r.stdout
   local state = { kind = {}, key = head:match("key=(%a+)") }
   for k in head:gmatch("kind=([^\n]+)") do
      state.kind[#state.kind + 1] = k
   end
   state.pub = head:match("%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-.-%-%-%-%-%-END PUBLIC KEY%-%-%-%-%-\n?")
   if csr and csr:find("BEGIN CERTIFICATE REQUEST", 1, true) then
      local info = x509.try.csr_info(csr, args.csr_path)
      if info and info.signature_valid then
         state.csr, state.csr_pub, state.csr_subject = csr, pki.spki(csr), info.subject
      end
   end
   return state
end

-- The key the host holds is of the kind asked for.
local function kind_ok(state, args)
   local text = table.concat(state.kind, "\n")
   if args.type == "ec" then
      return text:find("NIST CURVE: " .. (args.curve or "P-256"), 1, true) ~= nil
   end
   return text:find(("Public-Key: (%d bit)"):format(args.bits or 2048), 1, true) ~= nil
      and not text:find("NIST CURVE", 1, true)
end

local function same_subject(have, want)
   if type(have) ~= "table" then
      return false
   end
   for _, k in ipairs(SUBJECT_ORDER) do
      local h = have[k]
      if type(h) == "table" then
         h = h[1]
      end
      if h ~= (want[k] ~= nil and tostring(want[k]) or nil) then
         return false
      end
   end
   return true
end

local function key_desc(args)
   return args.type == "ec" and ("ec " .. (args.curve or "P-256")) or ("rsa " .. (args.bits or 2048))
end

function M.plan(state, args)
   for k in pairs(args.subject) do
      if not ({ C = 1, ST = 1, L = 1, O = 1, OU = 1, CN = 1 })[k] then
         return { failed = true, msg = ("x509_node_key: subject attribute %q is not one of C ST L O OU CN"):format(k),
            result = { code = "EARGS" } }
      end
   end
   if args.bits and args.type ~= "rsa" then
      return { failed = true, msg = "x509_node_key: argument 'bits' is for type rsa", result = { code = "EARGS" } }
   elseif args.curve and args.type ~= "ec" then
      return { failed = true, msg = "x509_node_key: argument 'curve' is for type ec", result = { code = "EARGS" } }
   end
   if state.key == "noopenssl" then
      return { failed = true, result = { code = "ENOOPENSSL" },
         msg = "x509_node_key: the host has no openssl to make its key with (install Debian's openssl package)" }
   end
   local new_key = not state.pub or not kind_ok(state, args)
   local new_csr = new_key or not state.csr or state.csr_pub ~= state.pub
      or not same_subject(state.csr_subject, args.subject)
   local result = { path = args.path, csr_path = args.csr_path, key = key_desc(args),
      csr = not new_csr and state.csr or nil }
   if not new_csr then
      return { changed = false, msg = key_desc(args) .. " key and its CSR kept", result = result }
   end
   if not new_key then
      result.notify = false -- the key in use is unchanged: nothing to restart
   end
   local why = state.key == "unreadable" and "the key does not parse" or not state.pub and "no key"
      or new_key and "the key is not " .. key_desc(args) or not state.csr and "no CSR" or "the CSR is not for it"
   return { changed = true, new_key = new_key, result = result,
      msg = new_key and ("would make a %s key on the host (%s) and its CSR"):format(key_desc(args), why)
         or ("would make a CSR for the host's key (%s)"):format(why) }
end

-- "/O=etcd server/CN=etcd1": the subject as openssl req -subj takes it.
local function subj(subject)
   local parts = {}
   for _, k in ipairs(SUBJECT_ORDER) do
      if subject[k] ~= nil then
         parts[#parts + 1] = "/" .. k .. "=" .. tostring(subject[k]):gsub("([/\\=+])", "\\%1")
      end
   end
   return table.concat(parts)
end

function M.apply(ctx, args, plan)
   local steps = { "set -e", "umask 077" }
   if plan.new_key then
      local gen = args.type == "ec"
            and ("-algorithm EC -pkeyopt ec_paramgen_curve:%s"):format(args.curve or "P-256")
         or ("-algorithm RSA -pkeyopt rsa_keygen_bits:%d"):format(args.bits or 2048)
      local tmp = q(args.path .. ".etcdrun-new")
      steps[#steps + 1] = ("openssl genpkey %s -out %s"):format(gen, tmp)
      steps[#steps + 1] = ("chown %s:%s %s && chmod 0600 %s"):format(q(args.owner), q(args.group), tmp, tmp)
      steps[#steps + 1] = ("mv -f %s %s"):format(tmp, q(args.path))
   end
   local ctmp = q(args.csr_path .. ".etcdrun-new")
   steps[#steps + 1] = ("openssl req -new -key %s -subj %s -out %s"):format(q(args.path), q(subj(args.subject)), ctmp)
   steps[#steps + 1] = ("chmod 0644 %s && mv -f %s %s && cat %s"):format(ctmp, ctmp, q(args.csr_path),
      q(args.csr_path))
   local r, err, code = ctx.host:exec(table.concat(steps, "\n"))
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      return nil, ("x509_node_key: %s: %s: %s"):format(ctx.host.name, args.path, (r.stderr or ""):gsub("%s+$", "")),
         "EREMOTE"
   end
   return { csr = r.stdout, msg = plan.new_key and ("made a %s key on the host and its CSR"):format(key_desc(args))
      or "made a CSR for the host's key" }
end

return M
