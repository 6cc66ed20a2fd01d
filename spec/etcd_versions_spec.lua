-- The version gates of an upgrade (lua/etcdrun/etcd_versions.lua): what
-- etcd's upgrade guides allow, as data, checked with planned versions.
local versions = require("etcdrun.etcd_versions")

local function three(v)
   return { etcd1 = v, etcd2 = v, etcd3 = v }
end

describe("etcd version gates", function()
   it("compares versions", function()
      assert.are.equal(-1, versions.compare("3.4.23", "3.5.16"))
      assert.are.equal(0, versions.compare("v3.5.16", "3.5.16"))
      assert.are.equal(1, versions.compare("3.10.0", "3.9.9"))
      assert.is_nil(versions.compare("latest", "3.5.16"))
   end)

   it("allows one minor up, and patches either way", function()
      local p = versions.plan(three("3.4.23"), "3.5.16")
      assert.are.equal("minor", p.kind)
      assert.are.same({}, p.problems)
      p = versions.plan(three("3.5.16"), "3.5.15")
      assert.are.equal("patch", p.kind)
      assert.are.same({}, p.problems)
      assert.are.equal("none", versions.plan(three("3.5.16"), "3.5.16").kind)
   end)

   it("refuses a jump across minors, saying what to do", function()
      local p = versions.plan(three("3.4.23"), "3.6.5")
      assert.are.equal(1, #p.problems)
      assert.matches("etcd1, etcd2, etcd3 run 3.4: etcd upgrades one minor at a time; upgrade to the newest 3.5 patch"
         .. " first, then to 3.6.5", p.problems[1], 1, true)
   end)

   it("refuses a minor downgrade, pointing to the snapshot", function()
      local p = versions.plan(three("3.5.16"), "3.4.23")
      assert.matches("newer than 3.4.23: etcd does not support downgrading a minor", p.problems[1], 1, true)
      assert.matches("restore the snapshot taken before the upgrade", p.problems[1], 1, true)
   end)

   it("refuses known-bad targets", function()
      for _, v in ipairs({ "3.5.0", "3.5.1", "3.5.2" }) do
         local p = versions.plan(three("3.4.23"), v)
         assert.matches("etcd " .. v .. " is a known-bad release", p.problems[1], 1, true)
      end
      assert.are.same({}, versions.plan(three("3.4.23"), "3.5.3").problems)
   end)

   it("finishes an upgrade half-way, but not from a minor the target does not take", function()
      local p = versions.plan({ etcd1 = "3.5.16", etcd2 = "3.4.23", etcd3 = "3.4.23" }, "3.5.16")
      assert.are.equal("minor", p.kind)
      assert.are.same({}, p.problems)
      p = versions.plan({ etcd1 = "3.4.23", etcd2 = "3.3.27", etcd3 = "3.4.23" }, "3.5.16")
      assert.matches("etcd2 run 3.3", p.problems[1], 1, true)
   end)

   it("applies a minor's prerequisites: the 3.5 patch before 3.6, auth before 3.5", function()
      local p = versions.plan(three("3.5.16"), "3.6.5")
      assert.are.equal(3, #p.problems)
      assert.matches("etcd1 runs 3.5.16: etcd's 3.6 upgrade guide asks for every member at 3.5.26", p.problems[1], 1,
         true)
      assert.are.same({}, versions.plan(three("3.5.26"), "3.6.5").problems)
      p = versions.plan(three("3.4.23"), "3.5.16", { auth = true })
      assert.matches("with authentication enabled is not supported", p.problems[1], 1, true)
   end)

   it("says what is not a version", function()
      assert.matches("etcd_version latest is not a version", versions.plan(three("3.4.23"), "latest").problems[1], 1,
         true)
   end)
end)
