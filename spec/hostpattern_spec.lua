local hostpattern = require("etcdrun.hostpattern")

-- A hand-made view: hosts a1 a2 b1 b2 c1, groups a = {a1, a2}, b = {b1, b2},
-- ab = a + b, empty = {}, all.
local function view()
   local names = { "a1", "a2", "b1", "b2", "c1" }
   local index = {}
   for i, n in ipairs(names) do
      index[n] = i
   end
   return {
      names = names,
      index = index,
      group_names = { "all", "a", "b", "ab", "empty" },
      groups = { all = { 1, 2, 3, 4, 5 }, a = { 1, 2 }, b = { 3, 4 }, ab = { 1, 2, 3, 4 },
         empty = {} },
   }
end

local function sorted(set)
   local out = {}
   for i in pairs(set) do
      out[#out + 1] = i
   end
   table.sort(out)
   return out
end

local function sel(pattern)
   local set, warnings = hostpattern.select(view(), pattern)
   assert(set, warnings)
   return sorted(set), warnings
end

describe("hostpattern", function()
   describe("split", function()
      it("splits on ':' and ',' into union, intersection and exclusion terms", function()
         assert.are.same({ { op = "|", text = "a" }, { op = "&", text = "b" },
            { op = "!", text = "c" } }, hostpattern.split("a:&b:!c"))
         assert.are.same({ { op = "|", text = "a:b" }, { op = "!", text = "c" } },
            hostpattern.split("a:b, !c"))
         assert.are.same({ { op = "|", text = "a" }, { op = "|", text = "b" } },
            hostpattern.split(" a  b "))
         assert.are.same({ { op = "|", text = "a" }, { op = "!", text = "b" } },
            hostpattern.split({ "a", "!b" }))
      end)

      it("keeps brackets and IPv6 names whole", function()
         assert.are.same({ { op = "|", text = "x[a:c]" }, { op = "|", text = "y" } },
            hostpattern.split("x[a:c]:y"))
         assert.are.same({ { op = "|", text = "fe80::1" } }, hostpattern.split("fe80::1"))
         assert.are.same({ { op = "!", text = "::1" } }, hostpattern.split("!::1"))
      end)

      it("reads an empty pattern as all, and refuses dangling operators", function()
         for _, p in ipairs({ "", "  ", " , ", ":", ",," }) do -- as Ansible: all
            assert.are.same({ { op = "|", text = "all" } }, hostpattern.split(p))
         end
         assert.are.same({ nil, "host pattern '!': '!' needs a name after it" },
            { hostpattern.split("!") })
         assert.are.same({ nil, "host pattern 'a:&': '&' needs a name after it" },
            { hostpattern.split("a:&") })
         -- a '[' nothing closes
         assert.are.same({ nil, "host pattern 'web[': '[' in 'web[' is not closed" }, { hostpattern.split("web[") })
         assert.are.same({ nil, "host pattern 'a:!web[x': '[' in 'web[x' is not closed" },
            { hostpattern.split("a:!web[x") })
      end)

      it("reads Ansible's subscripts; other brackets stay globs", function()
         assert.are.same({ { op = "|", text = "web", sub = { 0 } } }, hostpattern.split("web[0]"))
         assert.are.same({ { op = "|", text = "web", sub = { -1 } } }, hostpattern.split("web[-1]"))
         assert.are.same({ { op = "|", text = "web", sub = { 0, 2 } } }, hostpattern.split("web[0:2]"))
         assert.are.same({ { op = "|", text = "web", sub = { 2, -1 } } }, hostpattern.split("web[2:]"))
         assert.are.same({ { op = "|", text = "web", sub = { 1, 3 } } }, hostpattern.split("web[1-3]"))
         assert.are.same({ { op = "!", text = "e*", sub = { 1 } } }, hostpattern.split("!e*[1]"))
         -- Ansible's regex takes neither: fnmatch sets, as in Ansible
         for _, p in ipairs({ "web[1:x]", "web[:2]", "~web[0]" }) do
            local terms = assert(hostpattern.split(p))
            assert.are.equal(p, terms[1].text)
            assert.is_nil(terms[1].sub)
         end
         assert.is_table(hostpattern.split("x[a:c]"))
         assert.is_table(hostpattern.split("n[]]"))
         assert.has_error(function()
            hostpattern.split({ "a", 1 })
         end, "host pattern: item 2 is a number, expected a string")
      end)
   end)

   describe("glob_to_lua", function()
      local cases = {
         { "etcd*", "etcd10", true }, { "etcd*", "xetcd1", false },
         { "198.18.0.*", "198.18.0.21", true }, { "198.18.0.*", "198x18.0.1", false },
         { "e?cd", "etcd", true }, { "e?cd", "ecd", false },
         { "n[ab]", "na", true }, { "n[ab]", "nc", false }, { "n[!ab]", "nc", true },
         { "n[!ab]", "na", false }, { "n[a-c]x", "nbx", true }, { "n[]]", "n]", true },
         { "n[", "n[", true }, { "a%b", "a%b", true }, { "a+b", "a+b", true },
         { "a^$()", "a^$()", true }, { "n[%^]", "n^", true }, { "n[%^]", "n%", true },
      }
      for _, c in ipairs(cases) do
         it(("%s %s %s"):format(c[1], c[3] and "matches" or "does not match", c[2]), function()
            assert.are.equal(c[3], c[2]:find(hostpattern.glob_to_lua(c[1])) ~= nil)
         end)
      end
   end)

   describe("select", function()
      it("unions, intersects and excludes in that order", function()
         assert.are.same({ 1, 2, 3, 4, 5 }, (sel("all")))
         assert.are.same({ 1, 2, 5 }, (sel("a:c1")))
         assert.are.same({ 1, 2 }, (sel("ab:&a")))
         assert.are.same({ 1, 2 }, (sel("!b:ab")))
         assert.are.same({ 5 }, (sel("!ab")))
         assert.are.same({ 3 }, (sel("&b:!b2")))
         assert.are.same({ 1, 3 }, (sel("*1:!c*")))
         assert.are.same({ 2, 4 }, (sel("~.2")))
      end)

      it("reports the terms that match nothing, but not an empty group", function()
         local set, warnings = sel("a:zz:!yy:empty")
         assert.are.same({ 1, 2 }, set)
         assert.are.same({ "host pattern 'zz' matches no group or host",
            "host pattern '!yy' matches no group or host" }, warnings)
      end)

      it("asks the view for an implicit host when a name matches nothing", function()
         local v = view()
         v.implicit = function(name)
            return name == "localhost" and 6 or nil
         end
         local set, warnings = hostpattern.select(v, "a1:localhost:nope")
         assert.are.same({ 1, 6 }, sorted(set))
         assert.are.same({ "host pattern 'nope' matches no group or host" }, warnings)
      end)

      it("returns an error for a malformed Lua pattern", function()
         local set, err = hostpattern.select(view(), "~a(")
         assert.is_nil(set)
         assert.are.equal("host pattern '~a(': unfinished capture", err)
      end)
   end)
end)
