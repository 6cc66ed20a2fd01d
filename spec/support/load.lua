--- Load for lab specs: keys seeded before an operation, a writer putting a
-- key every 50 ms while it runs (spec/support/writer.lua, in the
-- background), and a read-back afterwards, so a spec can assert that an
-- operation on a cluster neither refused a write nor lost one.
--
--    local seeded = load.seed(urls, tls, "spec/seed/", 20)
--    local w = load.start({ endpoints = urls, tls = tls, prefix = "spec/w/", dir = ws })
--    ... the operation ...
--    local s = w:stop()                      -- s.written, s.failed, s.failures, ...
--    load.check(urls, tls, "spec/w/", load.acked(s))  -- .missing, .wrong
--
-- Plain Lua on the runtime's etcd client: it runs under ./etcdrun spec/run.lua.
local cjson = require("cjson")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local sched = require("etcdrun.sched")
local helper = require("support.helper")
local lab = require("support.lab")

local M = {}

local q = helper.q
local WRITER = lab.root .. "/spec/support/writer.lua"

-- a list of URLs, or "URL1,URL2"
local function urls_of(endpoints)
   if type(endpoints) == "string" then
      local t = {}
      for u in endpoints:gmatch("[^,%s]+") do
         t[#t + 1] = u
      end
      endpoints = t
   end
   assert(type(endpoints) == "table" and #endpoints > 0, "endpoints: a list of URLs or a comma-separated string")
   return endpoints
end

-- Try each endpoint until one answers: the call's reply, or nil and every error.
local function any(urls, fn)
   local errs = {}
   for _, u in ipairs(urls) do
      local r, err = fn(u)
      if r then
         return r
      end
      errs[#errs + 1] = tostring(err)
   end
   return nil, table.concat(errs, "; ")
end

--- Put n keys `prefix .. "0001"`, ... before an operation; raises when
--- the cluster refuses one (that is the setup failing, not the operation).
---@return table<string, string> expected key -> value, for load.check
function M.seed(endpoints, tls, prefix, n)
   local urls = urls_of(endpoints)
   -- a token per run: a key left over from an earlier run never passes as ours
   local token = ("%d.%d"):format(os.time(), math.random(1 << 30))
   local seeded = {}
   for i = 1, n do
      local key, value = prefix .. ("%04d"):format(i), ("seed %d of %s"):format(i, token)
      assert(any(urls, function(u)
         return etcd.put(u, tls, key, value)
      end), "load.seed: put " .. key)
      seeded[key] = value
   end
   return seeded
end

-- [prefix, range_end): etcd's own rule, the last byte below 0xff plus one
local function prefix_end(prefix)
   for i = #prefix, 1, -1 do
      local b = prefix:byte(i)
      if b < 0xff then
         return prefix:sub(1, i - 1) .. string.char(b + 1)
      end
   end
   return "\0" -- every key
end

-- Every key and value under prefix, from one member, a page at a time.
local function scan(url, tls, prefix)
   local kvs, from, stop = {}, prefix, prefix_end(prefix)
   while true do
      local r, err = etcd.call(url, "/v3/kv/range", { key = etcd.b64(from), range_end = etcd.b64(stop), limit = 1000 },
         tls, 10)
      if not r then
         return nil, err
      end
      local last
      for _, kv in ipairs(r.kvs or {}) do
         last = etcd.unb64(kv.key)
         kvs[last] = etcd.unb64(kv.value or "")
      end
      if not (r.more and last) then
         return kvs
      end
      from = last .. "\0"
   end
end

--- Read back every key under prefix and compare with `expected` (key ->
--- value); keys under prefix that are not expected are counted, not blamed
--- (a write whose acknowledgement was lost may well have landed).
---@return {expected: integer, found: integer, missing: integer, wrong: integer, extra: integer, examples: string[]}
function M.check(endpoints, tls, prefix, expected)
   local kvs = assert(any(urls_of(endpoints), function(u)
      return scan(u, tls, prefix)
   end))
   local r = { expected = 0, found = 0, missing = 0, wrong = 0, extra = 0, examples = {} }
   local keys = {}
   for k in pairs(expected) do
      keys[#keys + 1] = k
   end
   table.sort(keys)
   for _, k in ipairs(keys) do
      local want, got = expected[k], kvs[k]
      r.expected = r.expected + 1
      local what = got == nil and "missing" or got ~= want and "wrong" or "found"
      r[what] = r[what] + 1
      if what ~= "found" and #r.examples < 5 then
         r.examples[#r.examples + 1] = ("%s %s (want %q, got %s)"):format(what, k, want,
            got and ("%q"):format(got) or "none")
      end
   end
   for k in pairs(kvs) do
      if expected[k] == nil then
         r.extra = r.extra + 1
      end
   end
   return r
end

--- The keys and values the writer had acknowledged, for load.check: every
--- sequence number it used but the failed ones (writes are sequential).
---@return table<string, string> expected, integer count
function M.acked(summary)
   local failed, out, n = {}, {}, 0
   for _, seq in ipairs(summary.failed_seqs or {}) do
      failed[seq] = true
   end
   for seq = 1, summary.next_seq - 1 do
      if not failed[seq] then
         out[summary.prefix .. summary.key_format:format(seq)] = summary.value_format:format(seq)
         n = n + 1
      end
   end
   return out, n
end

--- One line for assertion messages.
function M.describe(s)
   return ("%d written, %d failed in %.1f s (max %d ms, p99 %d ms, %d failovers, %d late)%s"):format(s.written,
      s.failed, s.seconds, s.max_latency_ms, s.p99_latency_ms, s.failovers, s.late,
      #s.failures > 0 and ("; first failures: " .. table.concat(s.failures, " | ")) or "")
end

--- Raise unless the writer saw no failed write and at least min_written acked.
function M.assert_clean(s, min_written)
   if s.failed ~= 0 or s.written < (min_written or 1) then
      error("writer not clean: " .. M.describe(s), 2)
   end
   return s
end

local Writer = {}
Writer.__index = Writer

--- The writer's latest summary, or nil before its first one.
function Writer:summary()
   local text = helper.read(self.out)
   local ok, s = pcall(cjson.decode, text or "")
   return ok and type(s) == "table" and s or nil
end

function Writer:alive()
   -- a zombie (exited, not yet reaped by whoever inherited it) is not alive
   local stat = helper.read(("/proc/%d/stat"):format(self.pid))
   return stat ~= nil and not stat:match("^%d+ %b() Z")
end

function Writer:log()
   return helper.read(self.log_file) or "(no log)"
end

--- Stop the writer (the stop file; a write in flight finishes first, up to
--- its 5 s) and return its final summary: {written, failed, failed_seqs,
--- next_seq, failures, max_latency_ms, p99_latency_ms, seconds, ...}.
--- Safe to call again (from a finally, say): it returns the same summary.
function Writer:stop(timeout)
   if self.final then
      return self.final
   end
   helper.write(self.out .. ".stop", "")
   local deadline = runtime.monotonic() + (timeout or 15)
   while runtime.monotonic() < deadline do
      local s = self:summary()
      if s and s.done and not self:alive() then
         self.final = s
         return s
      end
      sched.sleep(0.05)
   end
   helper.run("kill " .. self.pid .. " 2>/dev/null")
   error(("load: the writer (pid %d) did not stop within %g s; its log:\n%s"):format(self.pid, timeout or 15,
      self:log()), 2)
end

local START_KEYS = { endpoints = true, tls = true, prefix = true, dir = true, interval = true, max_seconds = true,
   start_timeout = true, name = true }

--- Start the writer in the background and return once it has two writes
--- acknowledged (so the operation that follows runs under load); raises
--- with the writer's log when it does not get there within start_timeout.
--- max_seconds (default 300) bounds a writer whose spec died before stop().
---@param opts {endpoints: string[]|string, tls: {ca: string, cert: string, key: string}, prefix: string,
---   dir: string, interval?: number, max_seconds?: number, start_timeout?: number, name?: string}
function M.start(opts)
   for k in pairs(opts) do
      assert(START_KEYS[k], "load.start: unknown option " .. tostring(k))
   end
   local urls = urls_of(opts.endpoints)
   assert(opts.tls and opts.prefix and opts.dir, "load.start: tls, prefix and dir are required")
   local name = opts.name or "writer"
   local w = setmetatable({ out = opts.dir .. "/" .. name .. ".json", log_file = opts.dir .. "/" .. name .. ".log" },
      Writer)
   fs.remove(w.out)
   fs.remove(w.out .. ".stop")
   local cmd = ("nohup %s %s --endpoints %s --ca %s --cert %s --key %s --prefix %s --out %s --interval %s "
      .. "--max-seconds %s >%s 2>&1 </dev/null & echo $!"):format(q(helper.etcdrun), q(WRITER),
      q(table.concat(urls, ",")), q(opts.tls.ca), q(opts.tls.cert), q(opts.tls.key), q(opts.prefix), q(w.out),
      tostring(opts.interval or 0.05), tostring(opts.max_seconds or 300), q(w.log_file))
   w.pid = assert(tonumber(helper.run(cmd):match("%d+")), "load.start: no pid")
   local limit = opts.start_timeout or 15
   local deadline = runtime.monotonic() + limit
   while runtime.monotonic() < deadline do
      local s = w:summary()
      if s and s.written >= 2 then
         return w
      end
      if not w:alive() then
         break
      end
      sched.sleep(0.05)
   end
   local s = w:summary()
   helper.run("kill " .. w.pid .. " 2>/dev/null")
   error(("load: the writer made no 2 acknowledged writes within %g s (%s); its log:\n%s"):format(limit,
      s and M.describe(s) or "no summary", w:log()), 2)
end

return M
