-- etcd_upgrade: the version gate of a running cluster, from the controller,
-- read-only. It asks every member which etcd it runs (and the cluster's
-- version) and holds the target `version` against etcd's upgrade rules
-- (etcdrun.etcd_versions: one minor at a time, no minor downgrade, no
-- known-bad release, a minor's prerequisites): a change the rules forbid
-- fails here, before any binary moves, saying why and what to do. With
-- `verify = true`, after the roll: every member runs the target and the
-- cluster version has moved to the target's minor (etcd moves it a few
-- seconds after the last member is upgraded: waited for, up to `timeout`).
local clock = require("etcdrun.clock")
local etcd = require("etcdrun.etcd")
local versions = require("etcdrun.etcd_versions")

local M = {
   doc = "Check an etcd version change against etcd's upgrade rules (or, after the roll, that it took); read-only.",
   args = {
      version = { type = "string", required = true, doc = "the target etcd version, e.g. 3.5.16" },
      endpoints = { type = "list", elements = "string", required = true, doc = "client URLs of the members" },
      ca = { type = "path", required = true, doc = "CA certificate (controller)" },
      cert = { type = "path", required = true, doc = "a client certificate (controller)" },
      key = { type = "path", required = true, doc = "its private key (controller)" },
      v2 = { type = "boolean", default = false, doc = "the members run with enable-v2 (a 3.6 prerequisite)" },
      verify = { type = "boolean", default = false, doc = "after the roll: every member and the cluster version" },
      timeout = { type = "number", default = 60,
         doc = "seconds to wait for the cluster version to settle (before) or to move (verify)" },
   },
   examples = [[controller "etcd version" { etcd_upgrade = { version = "3.5.16",
   endpoints = { "https://10.0.0.1:2379" }, ca = "pki/ca.crt", cert = "pki/admin.crt", key = "pki/admin.key" },
   register = "upgrade" }]],
}

local function read(tls, endpoints)
   local state = { versions = {}, unanswered = {} }
   for _, url in ipairs(endpoints) do
      local v = etcd.version(url, tls)
      local list = not state.names and etcd.members(url, tls)
      if list then
         state.names = {}
         for _, m in ipairs(list) do
            state.names[m.client_urls[1] or ""] = m.name
         end
      end
      if v then
         state.versions[url] = v.server
         state.cluster = state.cluster or v.cluster
         if state.auth == nil then
            state.auth = etcd.auth_enabled(url, tls)
         end
      else
         state.unanswered[#state.unanswered + 1] = url
      end
   end
   return state
end

-- The lowest minor the members run ("3.4"), or nil.
local function lowest_minor(state)
   local low
   for _, v in pairs(state.versions) do
      if not low or versions.compare(v, low) < 0 then
         low = v
      end
   end
   return low and versions.minor(low)
end

function M.gather(ctx, args)
   local tls = { ca = ctx.path(args.ca), cert = ctx.path(args.cert), key = ctx.path(args.key) }
   local state = read(tls, args.endpoints)
   local low = lowest_minor(state)
   if not args.verify and low and low ~= versions.minor(args.version) and not ctx.check then
      -- a minor upgrade starts only once the cluster version has settled at
      -- the members' minor (a few seconds after a bootstrap): a new-minor
      -- leader in a cluster still at 3.0 sends entries the old members
      -- cannot apply (a 3.4 member panics "not implemented")
      local stop = clock.monotonic() + args.timeout
      while versions.minor(state.cluster) ~= low and clock.monotonic() < stop do
         ctx.sleep(0.1)
         state = read(tls, args.endpoints)
      end
   end
   if args.verify and not ctx.check then
      local want = versions.minor(args.version)
      local stop = clock.monotonic() + args.timeout
      while versions.minor(state.cluster) ~= want and clock.monotonic() < stop do
         ctx.sleep(0.1)
         state = read(tls, args.endpoints)
      end
   end
   return state
end

local function by_name(state)
   local t = {}
   for url, v in pairs(state.versions) do
      t[(state.names or {})[url] or url] = v
   end
   return t
end

function M.plan(state, args, opts)
   local members = by_name(state)
   if next(members) == nil then
      return { changed = false, msg = "no member answers: nothing to compare (a first install)",
         result = { kind = "none" } }
   end
   local list = {}
   for name, v in pairs(members) do
      list[#list + 1] = name .. " " .. v
   end
   table.sort(list)
   local now = ("members run %s; cluster version %s"):format(table.concat(list, ", "), tostring(state.cluster))
   if args.verify and opts.check then
      -- nothing rolled under --check: there is nothing to verify yet
      return { skipped = true, msg = ("would check that every member runs %s and the cluster version moved (%s)")
         :format(args.version, now) }
   elseif args.verify then
      local wrong = {}
      for name, v in pairs(members) do
         if v ~= args.version then
            wrong[#wrong + 1] = ("%s runs %s"):format(name, v)
         end
      end
      table.sort(wrong)
      if #wrong > 0 or #state.unanswered > 0 or versions.minor(state.cluster) ~= versions.minor(args.version) then
         return { failed = true, msg = ("the upgrade to %s did not complete: %s%s"):format(args.version, now,
            #state.unanswered > 0 and ("; no answer from " .. table.concat(state.unanswered, ", ")) or "") }
      end
      return { changed = false, msg = now }
   end
   local verdict = versions.plan(members, args.version, { v2 = args.v2, auth = state.auth })
   local low = lowest_minor(state)
   if verdict.kind == "minor" and low ~= versions.minor(args.version) and versions.minor(state.cluster) ~= low then
      verdict.problems[#verdict.problems + 1] = ("the cluster version is %s, not yet the members' %s: a minor upgrade"
         .. " waits until it has settled (etcd decides it a few seconds after a bootstrap; waited %g s)"):format(
         tostring(state.cluster), low, args.timeout)
   end
   if #verdict.problems > 0 then
      return { failed = true, msg = ("etcd_version %s: refused, nothing was changed (%s):\n  %s"):format(args.version,
         now, table.concat(verdict.problems, "\n  ")) }
   end
   local report
   if verdict.kind ~= "none" then
      report = ("upgrade plan: %s -> %s (%s): a verified snapshot, then one member at a time, followers first,"
         .. " the leader last after handing over leadership, each healthy and caught up before the next; then the"
         .. " cluster version"):format(table.concat(list, ", "), args.version, verdict.kind == "minor"
         and "a minor upgrade" or "a patch release")
   end
   return { changed = false, msg = now, result = { kind = verdict.kind, report = report } }
end

return M
