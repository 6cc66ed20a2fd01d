-- etcd_verify decides from what it read of the cluster, no cluster needed.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_verify"))
local MEMBERS = {
   { name = "etcd1", client_url = "https://a:2379", peer_url = "https://a:2380" },
   { name = "etcd2", client_url = "https://b:2379", peer_url = "https://b:2380" },
}
local ARGS = { members = MEMBERS, ca = "/p/ca.crt", cert = "/p/h.crt", key = "/p/h.key" }

local function state(over)
   local s = { health = { true, true }, list = { { name = "etcd1", peer_urls = { "https://a:2380" } },
      { name = "etcd2", peer_urls = { "https://b:2380" } } }, canary_value = "v", read_back = "v",
      anonymous_status = nil }
   for k, v in pairs(over or {}) do
      s[k] = v
   end
   return s
end

describe("etcd_verify plan", function()
   local CASES = {
      { "all as planned", state(), nil,
         "2 members healthy and as planned; canary written on etcd1, read on etcd2; a client without a certificate "
         .. "is refused" },
      { "an unhealthy member", state({ health = { true, "refused" } }), "etcd2 unhealthy: refused" },
      { "a member too many", state({ list = { { name = "etcd1", peer_urls = { "https://a:2380" } },
         { name = "etcd2", peer_urls = { "https://b:2380" } }, { name = "old", peer_urls = { "https://c:2380" } } } }),
         "member list has 3 members, the inventory 2" },
      { "a stranger", state({ list = { { name = "etcd1", peer_urls = { "https://a:2380" } },
         { name = "x", peer_urls = { "https://b:2380" } } } }),
         "member 'x' is in the cluster but not in the inventory" },
      { "a moved member", state({ list = { { name = "etcd1", peer_urls = { "https://a:2380" } },
         { name = "etcd2", peer_urls = { "https://z:2380" } } } }), "member etcd2 advertises https://z:2380, planned" },
      { "a canary lost", state({ read_back = "other" }), "canary written on etcd1 read back as other from etcd2" },
      { "no client-cert auth", state({ anonymous_status = 200 }), "a client without a certificate was accepted" },
   }
   for _, c in ipairs(CASES) do
      it(c[1], function()
         local p = module.plan(mod, c[2], ARGS)
         if c[3] then
            assert.is_true(p.failed)
            assert.are.equal(1, select(2, p.msg:gsub(c[3]:gsub("%p", "%%%0"), "")), p.msg)
         else
            assert.is_nil(p.failed)
            assert.are.equal(c[4], p.msg)
         end
      end)
   end

   it("under --check reports a cluster that does not answer yet instead of failing", function()
      local p = module.plan(mod, state({ health = { "refused", "refused" }, list = nil }), ARGS, { check = true })
      assert.is_true(p.skipped)
      assert.matches("not verifiable now %(etcd1 unhealthy: refused%)", p.msg)
   end)
end)
