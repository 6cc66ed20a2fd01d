-- etcd_rbac's plan from recorded users, roles and auth state: root first,
-- the members' certificate-only root users, roles with exactly their
-- permissions, users with exactly their roles, passwords checked, auth
-- enabled last; strays kept unless pruned; mistakes refused.
local plancases = require("support.plancases")

local ARGS = { endpoints = { "https://a:2379" }, ca = "/p/ca.crt", cert = "/p/admin.crt", key = "/p/admin.key",
   password_file = "/p/root.password", members = { "etcd1" }, auth = true,
   roles = { app = { { prefix = "/app/", access = "readwrite" } } },
   users = { app = { password = "pw", roles = { "app" } }, reporter = { roles = { "app" } } } }

local function done()
   return { auth = true, passwords = { app = true },
      users = { root = { roles = { "root" } }, etcd1 = { roles = { "root" } }, app = { roles = { "app" } },
         reporter = { roles = { "app" } } },
      roles = { root = {}, app = { "READWRITE /app/ (prefix)" } } }
end

local function with(over)
   local s = done()
   for k, v in pairs(over) do
      s[k] = v
   end
   return s
end

local function ops(p)
   local t = {}
   for _, s in ipairs(p.steps or {}) do
      t[#t + 1] = (s.op .. " " .. (s.name or s.user or s.role or "") .. (s.role and s.user and (" " .. s.role) or "")
         .. (s.perm and (" " .. s.perm.text) or "") .. (s.text and (" " .. s.text) or "")):gsub(" $", "")
   end
   return table.concat(t, ", ")
end

local function steps(want)
   return function(p)
      assert.are.equal(want, ops(p))
   end
end

describe("etcd_rbac plan", function()
   plancases.run(it, "etcd_rbac", {
      { name = "a bare cluster: root first, the members, roles, users, then auth",
         state = { auth = false, users = {}, roles = {}, passwords = {} }, args = ARGS, want = { changed = true },
         also = steps("user_add root, grant_role root root, user_add etcd1, grant_role etcd1 root, role_add app, "
            .. "grant_perm app READWRITE /app/ (prefix), user_add app, grant_role app app, user_add reporter, "
            .. "grant_role reporter app, auth_enable") },
      { name = "as declared: nothing", state = done(), args = ARGS,
         want = { changed = false, msg = "users and roles as declared, authentication on" } },
      { name = "a wrong password is set again", state = with({ passwords = { app = false } }), args = ARGS,
         want = { changed = true }, also = steps("password app") },
      { name = "a permission too many is revoked, a missing one granted",
         state = with({ roles = { root = {}, app = { "READ /other" } } }), args = ARGS, want = { changed = true },
         also = steps("grant_perm app READWRITE /app/ (prefix), revoke_perm app READ /other") },
      { name = "a role too many is revoked from a user", state = with({ users = { root = { roles = { "root" } },
         etcd1 = { roles = { "root" } }, app = { roles = { "app", "root" } }, reporter = { roles = { "app" } } } }),
         args = ARGS, want = { changed = true }, also = steps("revoke_role app root") },
      { name = "strays are kept and named", state = with({ users = { root = { roles = { "root" } },
         etcd1 = { roles = { "root" } }, app = { roles = { "app" } }, reporter = { roles = { "app" } },
         old = { roles = {} } }, roles = { root = {}, app = { "READWRITE /app/ (prefix)" }, gone = {} } }),
         args = ARGS, want = { changed = false, msg = "users and roles as declared, authentication on; not declared,"
            .. " kept (prune deletes them): user old, role gone" } },
      { name = "strays pruned when asked", state = with({ users = { root = { roles = { "root" } },
         etcd1 = { roles = { "root" } }, app = { roles = { "app" } }, reporter = { roles = { "app" } },
         old = { roles = {} } } }), args = plancases.merge(ARGS, { prune = true }), want = { changed = true },
         also = steps("user_delete old") },
      { name = "auth left alone when not asked", state = with({ auth = false }),
         args = plancases.merge(ARGS, { auth = false }), want = { changed = false } },
      { name = "role root is etcd's", state = done(), args = plancases.merge(ARGS, { roles = { root = {} } }),
         want = { failed = true, msg = "etcd_rbac: role 'root' is etcd's own: declare other roles" } },
      { name = "a user named like a member", state = done(),
         args = plancases.merge(ARGS, { users = { etcd1 = { roles = {} } } }),
         want = { failed = true, msg = "etcd_rbac: user etcd1 is etcdrun's (root, and one per member): declare other"
            .. " users" } },
      { name = "a permission without access", state = done(),
         args = plancases.merge(ARGS, { roles = { app = { { prefix = "/app/" } } } }),
         want = { failed = true, msg = "etcd_rbac: role app, permission 1: give prefix or key, and access read, write"
            .. " or readwrite" } },
      { name = "a user with an undeclared role", state = done(),
         args = plancases.merge(ARGS, { users = { x = { roles = { "nope" } } } }),
         want = { failed = true, msg = "etcd_rbac: user x: role nope is not declared" } },
   })
end)
