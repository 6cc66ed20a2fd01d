-- etcd_status renders the member table from recorded status, no cluster needed.
local module = require("etcdrun.module")

local mod = assert(module.load("etcd_status"))

describe("etcd_status plan", function()
   it("renders leader, version, DB size, health, expiry and a note", function()
      local p = module.plan(mod, { rows = {
         { status = { is_leader = false, version = "3.4.23", db_size = 20480 }, healthy = true, not_after = 0 },
         { status = false, healthy = false, not_after = false },
      } }, { members = { { name = "etcd1", client_url = "https://a:2379" },
         { name = "etcd2", client_url = "https://b:2379" } },
         ca = "/c", cert = "/c", key = "/c", note = "hello" })
      assert.is_false(p.changed)
      assert.are.equal("2 members, 1 healthy", p.msg)
      local lines = {}
      for l in p.result.report:gmatch("[^\n]+") do
         lines[#lines + 1] = l
      end
      assert.matches("^member%s+client URL%s+leader%s+version%s+DB size%s+health%s+cert expires", lines[1])
      assert.matches("^etcd1%s+https://a:2379%s+no%s+3%.4%.23%s+20%.0 KiB%s+healthy%s+1970%-01%-01", lines[2])
      assert.matches("^etcd2%s+https://b:2379%s+%?%s+%?%s+%?%s+UNHEALTHY%s+%?", lines[3])
      assert.are.equal("hello", lines[4])
   end)
end)
