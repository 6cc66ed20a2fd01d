--- Which etcd version changes a running cluster may take, as etcd's upgrade
-- guides say, in one place (data first, then the checks that read it):
--   * patch releases of one minor go either way;
--   * minors go up one at a time, never down (a downgrade is a restore of the
--     snapshot taken before the upgrade);
--   * the members must all be at the old minor or the target before a minor
--     upgrade (a cluster half-way through is finished first);
--   * releases with known data-loss bugs are never a target;
--   * a minor's documented prerequisites (the patch every member must be at
--     first, settings that must be off).
-- A new advisory is a line in KNOWN_BAD or PREREQUISITES.
local M = {}

--- Releases never to run, with why.
M.KNOWN_BAD = {
   { from = "3.5.0", to = "3.5.2", why = "3.5.0-3.5.2 can lose data consistency when a member crashes during"
      .. " heavy load (fixed in 3.5.3; etcd's advisory asks for 3.5.3 or later)" },
}

--- A minor's prerequisites, for the upgrade that reaches it.
M.PREREQUISITES = {
   ["3.5"] = { auth = "3.5 changed the WAL format of auth entries: a rolling upgrade from 3.4 with"
      .. " authentication enabled is not supported (etcd's 3.5 upgrade guide): disable auth, upgrade, enable it" },
   ["3.6"] = { min_patch = "3.5.26", why = "etcd's 3.6 upgrade guide asks for every member at 3.5.26 or later first"
      .. " (3.5.24-3.5.26 fix upgrade blockers such as 'too many learner members')",
      v2 = "with enable-v2 the v2 store must hold no custom data (etcdutl check v2store) and the flag must go" },
}

--- "3.5.16" (or "v3.5.16", "3.5.16-rc.0") -> { 3, 5, 16 }, or nil.
function M.parse(v)
   local a, b, c = tostring(v or ""):match("^v?(%d+)%.(%d+)%.(%d+)")
   if not a then
      return nil
   end
   return { tonumber(a), tonumber(b), tonumber(c) }
end

--- -1, 0 or 1 as a < b, a == b, a > b (nil when either is not a version).
function M.compare(a, b)
   local x, y = M.parse(a), M.parse(b)
   if not x or not y then
      return nil
   end
   for i = 1, 3 do
      if x[i] ~= y[i] then
         return x[i] < y[i] and -1 or 1
      end
   end
   return 0
end

local function minor(v)
   local p = M.parse(v)
   return p and (p[1] .. "." .. p[2]) or nil
end
M.minor = minor

--- Why `v` is a known-bad release, or nil.
function M.known_bad(v)
   for _, r in ipairs(M.KNOWN_BAD) do
      if M.compare(v, r.from) >= 0 and M.compare(v, r.to) <= 0 then
         return r.why
      end
   end
end

--- The verdict on taking a cluster whose members run `versions` (name ->
--- version) to `target`:
---   { kind = "none"|"patch"|"minor"|"mixed", problems = {...}, steps = {...} }
--- `opts.auth` (authentication enabled) and `opts.v2` (enable-v2 set) are what
--- the prerequisites ask about.
function M.plan(versions, target, opts)
   opts = opts or {}
   local problems, names = {}, {}
   for name in pairs(versions) do
      names[#names + 1] = name
   end
   table.sort(names)
   if not M.parse(target) then
      return { kind = "none",
         problems = { ("etcd_version %s is not a version (like 3.5.16)"):format(tostring(target)) } }
   end
   local bad = M.known_bad(target)
   if bad then
      problems[#problems + 1] = ("etcd %s is a known-bad release: %s. Choose another patch release"):format(target, bad)
   end
   local minors, kind = {}, "none"
   for _, name in ipairs(names) do
      local v = versions[name]
      local c = M.compare(v, target)
      if c == nil then
         problems[#problems + 1] = ("%s reports version %s, which cannot be compared"):format(name, tostring(v))
      elseif c ~= 0 then
         minors[minor(v)] = minors[minor(v)] or {}
         table.insert(minors[minor(v)], name)
         kind = minor(v) == minor(target) and (kind == "minor" and "minor" or "patch") or "minor"
      end
   end
   local t = M.parse(target)
   for m, who in pairs(minors) do
      local a, b = m:match("^(%d+)%.(%d+)$")
      a, b = tonumber(a), tonumber(b)
      if a > t[1] or (a == t[1] and b > t[2]) then
         problems[#problems + 1] = ("%s run %s, newer than %s: etcd does not support downgrading a minor by a rolling"
            .. " restart; restore the snapshot taken before the upgrade (etcdutl snapshot restore), or stay on %s")
            :format(table.concat(who, ", "), m, target, m)
      elseif a ~= t[1] or b + 1 < t[2] then
         problems[#problems + 1] = ("%s run %s: etcd upgrades one minor at a time; upgrade to the newest %d.%d patch"
            .. " first, then to %s"):format(table.concat(who, ", "), m, t[1], t[2] - 1, target)
      end
   end
   local pre = M.PREREQUISITES[minor(target)]
   if kind == "minor" and pre and #problems == 0 then
      for _, name in ipairs(names) do
         local v = versions[name]
         if pre.min_patch and minor(v) ~= minor(target) and M.compare(v, pre.min_patch) < 0 then
            problems[#problems + 1] = ("%s runs %s: %s"):format(name, v, pre.why)
         end
      end
      if pre.auth and opts.auth then
         problems[#problems + 1] = pre.auth
      end
      if pre.v2 and opts.v2 then
         problems[#problems + 1] = pre.v2
      end
   end
   return { kind = kind, problems = problems }
end

return M
