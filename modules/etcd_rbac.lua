-- etcd_rbac: users, roles and authentication as declared. gather reads the
-- users (their roles), the roles (their permissions) and whether auth is on,
-- and checks each declared password by authenticating with it (only
-- possible with auth on); plan is a pure function of that: root first
-- (its password, the root role), one certificate-only root user per member
-- (a member's certificate, CN = its name, then still works for etcdctl on
-- the node: a member holds all the data anyway), the roles with exactly
-- their permissions, the users with exactly their roles, then `auth
-- enable`. Users and roles etcd has that are not declared are reported and
-- deleted only with prune. apply carries the plan out over the gateway (on
-- a cluster with auth on, as root: etcdrun.etcd).
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.fs")

local M = {
   doc = "etcd users, roles and permissions as declared, root first, then authentication enabled.",
   args = {
      endpoints = { type = "list", elements = "string", required = true, doc = "client URLs of the members" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "client certificate (controller; CN root)" },
      key = { type = "path", required = true, doc = "its key (controller)" },
      roles = { type = "table", default = {},
         doc = "role -> list of {prefix = '/app/' | key = '/k', access = 'read'|'write'|'readwrite'}" },
      users = { type = "table", default = {},
         doc = "user -> {password = secret (none: certificate-only, CN = the name), roles = {...}}" },
      members = { type = "list", elements = "string", default = {},
         doc = "member names: certificate-only users with the root role" },
      auth = { type = "boolean", default = false, doc = "enable authentication (after root exists)" },
      prune = { type = "boolean", default = false, doc = "delete users and roles that are not declared" },
      password_file = { type = "path", required = true,
         doc = "root's password on the controller (0600; made with a random one when missing)" },
   },
   examples = [[controller "users and roles" { etcd_rbac = { endpoints = { "https://10.0.0.1:2379" },
   ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key", password_file = "pki/root.password",
   roles = { app = { { prefix = "/app/", access = "readwrite" } } },
   users = { app = { password = secret("..."), roles = { "app" } } }, auth = true } }]],
}

local ACCESS = { read = "READ", write = "WRITE", readwrite = "READWRITE" }

-- the key range a prefix covers: its last byte below 0xff raised by one
local function prefix_end(p)
   local i = #p
   while i > 0 and p:byte(i) == 255 do
      i = i - 1
   end
   if i == 0 then
      return "\0"
   end
   return p:sub(1, i - 1) .. string.char(p:byte(i) + 1)
end

-- "READWRITE /app/ (prefix)": one permission, comparable
local function perm_text(access, key, range_end)
   if range_end == nil or range_end == "" then
      return ("%s %s"):format(access, key)
   elseif range_end == prefix_end(key) then
      return ("%s %s (prefix)"):format(access, key)
   end
   return ("%s [%s, %s)"):format(access, key, range_end)
end

local function tls_of(ctx, args)
   return { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
end

-- the first endpoint that answers the call
local function call(args, tls, path, body)
   local err, code
   for _, url in ipairs(args.endpoints) do
      local r
      r, err, code = etcd.call(url, path, body, tls)
      if r then
         return r
      end
      if code == "EHTTP" then
         break -- etcd answered: another member would say the same
      end
   end
   return nil, err, code
end

function M.gather(ctx, args)
   local tls = tls_of(ctx, args)
   local state = { users = {}, roles = {}, passwords = {} }
   local auth, err, code = etcd.auth_enabled(args.endpoints[1], tls)
   if auth == nil then
      return nil, err, code
   end
   state.auth = auth
   local ul, uerr, ucode = call(args, tls, "/v3/auth/user/list", {})
   if not ul then
      return nil, "etcd_rbac: " .. tostring(uerr), ucode
   end
   for _, name in ipairs(ul.users or {}) do
      local u = call(args, tls, "/v3/auth/user/get", { name = name }) or {}
      state.users[name] = { roles = u.roles or {} }
   end
   local rl = call(args, tls, "/v3/auth/role/list", {}) or {}
   for _, name in ipairs(rl.roles or {}) do
      local r = call(args, tls, "/v3/auth/role/get", { role = name }) or {}
      local perms = {}
      for _, p in ipairs(r.perm or {}) do
         perms[#perms + 1] = perm_text(p.permType or "READ", etcd.unb64(p.key or ""), p.range_end and
            etcd.unb64(p.range_end))
      end
      state.roles[name] = perms
   end
   -- a declared password is right when it authenticates (auth on only)
   if auth then
      for name, u in pairs(args.users) do
         if u.password and state.users[name] then
            state.passwords[name] = etcd.authenticate(args.endpoints[1], { ca = tls.ca,
               cert = tls.ca:gsub("[^/]*$", "") .. "gateway.crt", key = tls.ca:gsub("[^/]*$", "") .. "gateway.key" },
               name, tostring(u.password)) ~= nil
         end
      end
   end
   state.root_password = fs.try.read(ctx.path(args.password_file))
   return state
end

local function sorted_keys(t)
   local k = {}
   for name in pairs(t) do
      k[#k + 1] = name
   end
   table.sort(k)
   return k
end

local function set(list)
   local s = {}
   for _, x in ipairs(list or {}) do
      s[x] = true
   end
   return s
end

-- The declared roles' permissions as comparable text, or nil and a problem.
local function wanted_roles(roles)
   local out = {}
   for _, name in ipairs(sorted_keys(roles)) do
      if name == "root" then
         return nil, "role 'root' is etcd's own: declare other roles"
      end
      local perms = {}
      for i, p in ipairs(roles[name]) do
         local access = ACCESS[p.access or ""]
         if not access or (p.prefix == nil) == (p.key == nil) then
            return nil, ("role %s, permission %d: give prefix or key, and access read, write or readwrite"):format(
               name, i)
         end
         local key = p.prefix or p.key
         perms[#perms + 1] = { text = perm_text(access, key, p.prefix and prefix_end(key) or nil), access = access,
            key = key, range_end = p.prefix and prefix_end(key) or nil }
      end
      out[name] = perms
   end
   return out
end

function M.plan(state, args)
   local function fail(msg)
      return { failed = true, msg = "etcd_rbac: " .. msg, result = { code = "EARGS" } }
   end
   local roles, problem = wanted_roles(args.roles)
   if not roles then
      return fail(problem)
   end
   local steps, words = {}, {}
   local function step(s, word)
      steps[#steps + 1] = s
      words[#words + 1] = word
   end
   -- root, then the members' certificate-only root users
   if not state.users.root then
      step({ op = "user_add", name = "root", root = true }, "add user root")
   end
   if not set(state.users.root and state.users.root.roles).root then
      step({ op = "grant_role", user = "root", role = "root" }, "grant root to root")
   end
   for _, m in ipairs(args.members) do
      if not state.users[m] then
         step({ op = "user_add", name = m }, "add user " .. m .. " (certificate only)")
      end
      if not set(state.users[m] and state.users[m].roles).root then
         step({ op = "grant_role", user = m, role = "root" }, ("grant root to %s"):format(m))
      end
   end
   -- roles with exactly their permissions
   for _, name in ipairs(sorted_keys(roles)) do
      local have = set(state.roles[name])
      if not state.roles[name] then
         step({ op = "role_add", name = name }, "add role " .. name)
      end
      local want = {}
      for _, p in ipairs(roles[name]) do
         want[p.text] = true
         if not have[p.text] then
            step({ op = "grant_perm", role = name, perm = p }, ("grant %s to %s"):format(p.text, name))
         end
      end
      for _, t in ipairs(state.roles[name] or {}) do
         if not want[t] then
            step({ op = "revoke_perm", role = name, text = t }, ("revoke %s from %s"):format(t, name))
         end
      end
   end
   -- users with exactly their roles, and their passwords
   for _, name in ipairs(sorted_keys(args.users)) do
      local u = args.users[name]
      if name == "root" or set(args.members)[name] then
         return fail(("user %s is etcdrun's (root, and one per member): declare other users"):format(name))
      end
      if type(u) ~= "table" then
         return fail(("user %s: give a table {password = secret(...), roles = {...}}"):format(name))
      end
      if not state.users[name] then
         step({ op = "user_add", name = name, password = u.password }, "add user " .. name ..
            (u.password and "" or " (certificate only)"))
      elseif u.password and state.passwords[name] == false then
         step({ op = "password", name = name, password = u.password }, "set the password of " .. name)
      end
      local have, want = set(state.users[name] and state.users[name].roles), set(u.roles)
      for _, r in ipairs(u.roles or {}) do
         if not roles[r] and not state.roles[r] and r ~= "root" then
            return fail(("user %s: role %s is not declared"):format(name, r))
         end
         if not have[r] then
            step({ op = "grant_role", user = name, role = r }, ("grant %s to %s"):format(r, name))
         end
      end
      for _, r in ipairs(state.users[name] and state.users[name].roles or {}) do
         if not want[r] then
            step({ op = "revoke_role", user = name, role = r }, ("revoke %s from %s"):format(r, name))
         end
      end
   end
   -- what etcd has that is not declared
   local strays = {}
   local ours = set(args.members)
   ours.root = true
   for _, name in ipairs(sorted_keys(state.users)) do
      if not ours[name] and not args.users[name] then
         strays[#strays + 1] = "user " .. name
         if args.prune then
            step({ op = "user_delete", name = name }, "delete user " .. name)
         end
      end
   end
   for _, name in ipairs(sorted_keys(state.roles)) do
      if name ~= "root" and not roles[name] then
         strays[#strays + 1] = "role " .. name
         if args.prune then
            step({ op = "role_delete", name = name }, "delete role " .. name)
         end
      end
   end
   if args.auth and not state.auth then
      step({ op = "auth_enable" }, "enable authentication")
   end
   local note = (#strays > 0 and not args.prune) and ("; not declared, kept (prune deletes them): "
      .. table.concat(strays, ", ")) or ""
   if #steps == 0 then
      return { changed = false, msg = ("users and roles as declared, authentication %s%s"):format(
         state.auth and "on" or "off", note), result = { report = #strays > 0 and not args.prune and note:sub(3)
         or nil } }
   end
   return { changed = true, steps = steps, new_root = not state.users.root,
      msg = "would " .. table.concat(words, ", ") .. note,
      result = { report = "plan: " .. table.concat(words, ", ") .. note } }
end

-- 24 random bytes from the kernel, as base64: root's password
local function random_password()
   local f = assert(io.open("/dev/urandom", "rb"))
   local b = f:read(24)
   f:close()
   return (etcd.b64(b):gsub("[+/=]", ""))
end

function M.apply(ctx, args, plan)
   local tls = tls_of(ctx, args)
   local pwfile = ctx.path(args.password_file)
   for _, s in ipairs(plan.steps) do
      local path, body
      if s.op == "user_add" then
         local pw = s.password and tostring(s.password)
         if s.root then
            pw = fs.try.read(pwfile)
            pw = pw and pw:match("^[^\n]+")
            if not pw then
               pw = ctx.secret(random_password())
               local ok, err, code = ctx.controller:write(pwfile, pw .. "\n", { mode = "0600" })
               if not ok then
                  return nil, err, code
               end
            end
         end
         path, body = "/v3/auth/user/add", { name = s.name, password = pw or "",
            options = { no_password = pw == nil } }
      elseif s.op == "password" then
         path, body = "/v3/auth/user/changepw", { name = s.name, password = tostring(s.password) }
      elseif s.op == "grant_role" then
         path, body = "/v3/auth/user/grant", { user = s.user, role = s.role }
      elseif s.op == "revoke_role" then
         path, body = "/v3/auth/user/revoke", { name = s.user, role = s.role }
      elseif s.op == "role_add" then
         path, body = "/v3/auth/role/add", { name = s.name }
      elseif s.op == "grant_perm" then
         path, body = "/v3/auth/role/grant", { name = s.role, perm = { permType = s.perm.access,
            key = etcd.b64(s.perm.key), range_end = s.perm.range_end and etcd.b64(s.perm.range_end) or nil } }
      elseif s.op == "revoke_perm" then
         local key = s.text:match("^%u+ (%S+) %(prefix%)$") or s.text:match("^%u+ (%S+)$")
         local range_end = key and s.text:find("(prefix)", 1, true) and prefix_end(key) or nil
         path, body = "/v3/auth/role/revoke", { role = s.role, key = etcd.b64(key or ""),
            range_end = range_end and etcd.b64(range_end) or nil }
      elseif s.op == "user_delete" then
         path, body = "/v3/auth/user/delete", { name = s.name }
      elseif s.op == "role_delete" then
         path, body = "/v3/auth/role/delete", { role = s.name }
      elseif s.op == "auth_enable" then
         path, body = "/v3/auth/enable", {}
      end
      local r, err, code = call(args, tls, path, body)
      if not r then
         -- etcd's reply never repeats a password
         return nil, ("etcd_rbac: %s: %s"):format(s.op, tostring(err)), code
      end
   end
   local made = plan.result.report:gsub("^plan: ", "made: ")
   return { msg = ("%d change%s made"):format(#plan.steps, #plan.steps == 1 and "" or "s"), report = made }
end

return M
