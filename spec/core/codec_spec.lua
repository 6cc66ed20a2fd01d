local helper = require("support.helper")
local codec = require("etcdrun.core.codec")

describe("codec", function()
   it("round-trips bytes through base64 like the base64 command", function()
      for _, s in ipairs({ "", "a", "ab", "abc", "abcd", "\0\1\2\255", string.rep("etcd", 1000) }) do
         local text = codec.base64(s)
         assert.are.equal(s, codec.unbase64(text))
         local out = helper.run(("printf '%%s' %s | base64 -d"):format(helper.q(text)))
         assert.are.equal(s, out)
      end
      assert.are.equal("aGVsbG8=", codec.base64("hello"))
   end)

   it("ignores line breaks, and refuses what is not base64", function()
      assert.are.equal("hello", codec.unbase64("aGVs\nbG8=\n"))
      local data, err, code = codec.unbase64("abc")
      assert.is_nil(data)
      assert.are.equal("EBASE64", code)
      assert.matches("not a multiple of 4", err)
      local _
      data, _, code = codec.unbase64("a!c=")
      assert.is_nil(data)
      assert.are.equal("EBASE64", code)
   end)
end)
