-- Users and roles (the second seed's `user add root`, `auth enable` and a
-- role with a prefix permission) with playbooks/tls-cluster.lua on the lab's
-- real nodes etcd7..etcd9: authentication enabled under a writer with no
-- failed write; then a second run, the doctor, a snapshot and the member
-- table work as before; a password user limited to a prefix writes there and
-- is refused elsewhere, a certificate-only user reads and may not write; the
-- password is never printed; undeclared users and roles are kept until
-- pruning is asked for; the upgrade gate refuses 3.4 -> 3.5 with auth on.
local helper = require("support.helper")
local lab = require("support.lab")
local labcluster = require("support.labcluster")
local etcd = require("etcdrun.etcd")

local q = helper.q
local NODES = 10
local VIA = { 7, 8, 9 }
local PASSWORD = "app-pw-7f3c9e1d"
local dir, why_not, c, ready

local VARS = [[
return {
   etcd_auth = true,
   etcd_roles = { app = { { prefix = "/app/", access = "readwrite" } },
      ro = { { prefix = "/app/", access = "read" } } },
   etcd_users = { app = { password = secret("%s"), roles = { "app" } }, reporter = { roles = { "ro" } } },
}
]]

local function no_lab()
   if not dir then
      pending(why_not)
      return true
   end
   if not ready then
      pending("needs the cluster with authentication of the setup, which did not come up")
      return true
   end
   return false
end

-- a gateway call as `user` (the CN-less gateway certificate and a token)
local function as_user(user, password)
   local pki = c.ws .. "/pki/"
   local tls = { ca = pki .. "ca.crt", cert = pki .. "gateway.crt", key = pki .. "gateway.key" }
   local url = labcluster.urls(VIA)[1]
   local token = assert(etcd.authenticate(url, tls, user, password))
   return function(key, value)
      local http = require("etcdrun.http")
      local r = assert(http.request({ url = url .. "/v3/kv/put", method = "POST", ca = tls.ca, cert = tls.cert,
         key = tls.key, headers = { Authorization = token, ["Content-Type"] = "application/json" },
         body = ('{"key":"%s","value":"%s"}'):format(etcd.b64(key), etcd.b64(value)) }))
      return r.status, r.body
   end
end

describe("users and roles on the lab", function()
   setup(function()
      dir, why_not = lab.ensure(NODES)
      if not dir then
         return
      end
      c = labcluster.new(dir)
      c:reset(7, 9)
      c:inventory(labcluster.nodes(7, 9))
      local out, code = c:playbook()
      assert(code == 0, out)
      c:seed(VIA, 50)
      helper.write(c.ws .. "/rbac.lua", VARS:format(PASSWORD))
      c:under_load("enable authentication with users and roles", VIA, function()
         out, code = c:playbook("-e @rbac.lua")
         assert(code == 0, out)
      end)
      assert(out:find("enable authentication", 1, true), out)
      ready = true
   end)

   it("leaves authentication on, and a second run, the doctor, a snapshot and the member table work", function()
      if no_lab() then return end
      assert.is_true(etcd.auth_enabled(labcluster.urls(VIA)[1], c:tls()))
      local out, code = c:playbook("-e @rbac.lua")
      assert.are.equal(0, code, out)
      assert.is_nil(out:match("changed%s+%S+"), out)
      assert.matches("etcd7%s+https://198%.18%.0%.17:2379", out) -- the member table
      out, code = c:run("doctor.lua")
      assert.are.equal(0, code, out)
      assert.matches("3 members: nothing needs attention", out, 1, true)
      out, code = c:run("snapshot.lua")
      assert.are.equal(0, code, out)
      assert.matches("sha256 verified", out, 1, true)
   end)

   it("says which files it needs when auth is on and root's password is missing", function()
      if no_lab() then return end
      local pw = c.ws .. "/pki/root.password"
      assert(os.rename(pw, pw .. ".away"))
      local out, code = c:run("doctor.lua")
      assert(os.rename(pw .. ".away", pw))
      assert.are_not.equal(0, code)
      assert.matches("authentication is enabled on this cluster: etcdrun needs root's password in " .. pw, out, 1,
         true)
      assert.matches(c.ws .. "/pki/gateway.crt", out, 1, true)
      assert.is_nil(out:find("stack traceback", 1, true), out)
   end)

   it("lets a user limited to a prefix write there and refuses it elsewhere", function()
      if no_lab() then return end
      local put = as_user("app", PASSWORD)
      assert.are.equal(200, (put("/app/config", "v1")))
      local status, body = put("/other/config", "v1")
      assert.are_not.equal(200, status)
      assert.matches("permission denied", body, 1, true)
      assert.is_nil(etcd.authenticate(labcluster.urls(VIA)[1], { ca = c.ws .. "/pki/ca.crt",
         cert = c.ws .. "/pki/gateway.crt", key = c.ws .. "/pki/gateway.key" }, "app", "wrong"))
   end)

   it("lets a certificate-only user (CN = its name) read its prefix and not write", function()
      if no_lab() then return end
      local pki = c.ws .. "/pki"
      helper.write(pki .. "/reporter.ext", "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
         .. "extendedKeyUsage=clientAuth\n")
      helper.run(([[cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out reporter.key \
         2>/dev/null && openssl req -new -key reporter.key -subj /CN=reporter | openssl x509 -req -CA ca.crt \
         -CAkey ca.key -set_serial 0x77 -days 2 -out reporter.crt -extfile reporter.ext 2>/dev/null]]):format(q(pki)))
      local ctl = ("%s/bin/etcdctl --endpoints=https://198.18.0.17:2379 --cacert=%s/ca.crt --cert=%s/reporter.crt"
         .. " --key=%s/reporter.key"):format(pki, pki, pki, pki)
      local out, err, code = helper.run("ETCDCTL_API=3 " .. ctl .. " get /app/config --print-value-only")
      assert.are.equal(0, code, err)
      assert.are.equal("v1\n", out)
      out, err, code = helper.run("ETCDCTL_API=3 " .. ctl .. " put /app/config v2")
      assert.are_not.equal(0, code)
      assert.matches("permission denied", out .. err, 1, true)
   end)

   it("never prints the password, not under -v, -D or --json", function()
      if no_lab() then return end
      local root = helper.read(c.ws .. "/pki/root.password"):gsub("%s+$", "")
      for _, args in ipairs({ "-e @rbac.lua -v -D", "-e @rbac.lua --json -v" }) do
         local out = c:playbook(args)
         assert.is_nil(out:find(PASSWORD, 1, true), "the user's password in the output")
         assert.is_nil(out:find(root, 1, true), "root's password in the output")
      end
      assert.are.equal("600", (helper.run("stat -c %a " .. q(c.ws .. "/pki/root.password")):gsub("%s+$", "")))
   end)

   it("keeps users and roles that are no longer declared until pruning is asked for", function()
      if no_lab() then return end
      helper.write(c.ws .. "/rbac2.lua", (VARS:format(PASSWORD):gsub(", reporter = { roles = { \"ro\" } }", "")
         :gsub(",\n      ro = { { prefix = \"/app/\", access = \"read\" } }", "")))
      local out, code = c:playbook("-e @rbac2.lua")
      assert.are.equal(0, code, out)
      assert.matches("not declared, kept (prune deletes them): user reporter, role ro", out, 1, true)
      out, code = c:playbook("-e @rbac2.lua -e etcd_rbac_prune=yes")
      assert.are.equal(0, code, out)
      assert.matches("delete user reporter, delete role ro", out, 1, true)
      out, code = c:playbook("-e @rbac2.lua")
      assert.are.equal(0, code, out)
      assert.is_nil(out:find("not declared", 1, true), out)
   end)

   it("refuses a rolling upgrade 3.4 -> 3.5 with authentication on, before anything moves", function()
      if no_lab() then return end
      local target = (helper.read(dir .. "/etcd_upgrade_version") or ""):gsub("%s+", "")
      local out, code = c:playbook("-e @rbac.lua", target)
      assert.are_not.equal(0, code)
      assert.matches("authentication enabled is not supported", out, 1, true)
      assert.are.equal("3.4.23", etcd.version(labcluster.urls(VIA)[1], c:tls()).server)
   end)
end)
