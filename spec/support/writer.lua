--- A background writer for lab specs: puts one key every `interval` seconds
-- into an etcd cluster for as long as an operation runs, the way a real
-- client would (stick to the endpoint that worked, fail over to the others,
-- give up on a write only after 5 s), and keeps a JSON summary in --out so
-- the spec can tell whether the operation ever made the cluster refuse a
-- write. spec/support/load.lua starts, stops and reads it.
--
--    ./etcdrun spec/support/writer.lua --endpoints URL1,URL2,... --ca F --cert F --key F
--       --prefix P --out FILE [--interval 0.05] [--max-seconds 900]
--
-- It stops when FILE.stop exists, after --max-seconds, or on Ctrl-C, and
-- then writes a last summary with done = true. Only file names of the TLS
-- material are ever handled here, never their content.
local cjson = require("cjson")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")
local sched = require("etcdrun.sched")

local PER_TRY = 1.5 -- one endpoint's chance; a live member answers in ms
local DEADLINE = 5 -- a write no endpoint acknowledged in this long failed
local BACKOFF = 0.1 -- between rounds when every endpoint refused at once
local SUMMARY_EVERY = 0.25 -- s between summaries (each is fsynced)
local KEY_FORMAT = "%08d" -- load.lua rebuilds keys and values from these
local VALUE_FORMAT = "write %d"
local MAX_FAILURES = 5 -- first failure messages kept
local MAX_MS = 10000 -- latency histogram range (1 ms buckets)

local function usage(msg)
   io.stderr:write("writer: ", msg, "\n",
      "usage: writer.lua --endpoints URL,... --ca F --cert F --key F --prefix P --out FILE"
      .. " [--interval S] [--max-seconds S]\n")
   return 2
end

local function parse(argv)
   local known = { endpoints = true, ca = true, cert = true, key = true, prefix = true, out = true,
      interval = true, ["max-seconds"] = true }
   local o = { interval = "0.05", ["max-seconds"] = "900" }
   local i = 1
   while argv[i] do
      local name = argv[i]:match("^%-%-(.+)$")
      if not name or not known[name] then
         return nil, ("unknown argument '%s'"):format(argv[i])
      end
      if argv[i + 1] == nil then
         return nil, ("--%s needs a value"):format(name)
      end
      o[name] = argv[i + 1]
      i = i + 2
   end
   for _, k in ipairs({ "endpoints", "ca", "cert", "key", "prefix", "out" }) do
      if not o[k] then
         return nil, "--" .. k .. " is required"
      end
   end
   o.urls = {}
   for u in o.endpoints:gmatch("[^,%s]+") do
      o.urls[#o.urls + 1] = u:gsub("/+$", "")
   end
   o.interval, o.max_seconds = tonumber(o.interval), tonumber(o["max-seconds"])
   if #o.urls == 0 or not o.interval or o.interval <= 0 or not o.max_seconds or o.max_seconds <= 0 then
      return nil, "--endpoints must name a URL, --interval and --max-seconds must be positive numbers"
   end
   return o
end

local o, perr = parse(arg)
if not o then
   return usage(perr)
end
local tls = { ca = o.ca, cert = o.cert, key = o.key }
local stop_file = o.out .. ".stop"
local now = runtime.monotonic

local st = {
   prefix = o.prefix, key_format = KEY_FORMAT, value_format = VALUE_FORMAT, interval = o.interval,
   endpoints = o.urls,
   started_at = os.date("!%Y-%m-%dT%H:%M:%SZ"), ended_at = cjson.null,
   written = 0, failed = 0, next_seq = 1, failed_seqs = {}, failures = {},
   max_latency_ms = 0, p99_latency_ms = 0, mean_latency_ms = 0,
   failovers = 0, -- writes acknowledged by another endpoint than the one tried first
   late = 0, -- writes that started more than one interval behind schedule
   seconds = 0, done = false, stopped_by = cjson.null,
}
local hist, sum_ms = {}, 0
local t0 = now()

local function p99()
   local want, seen = math.ceil(st.written * 0.99), 0
   if want == 0 then
      return 0
   end
   for ms = 0, MAX_MS do
      seen = seen + (hist[ms] or 0)
      if seen >= want then
         return ms
      end
   end
   return MAX_MS
end

local function save()
   st.seconds = math.floor((now() - t0) * 1000 + 0.5) / 1000
   st.p99_latency_ms = p99()
   st.mean_latency_ms = st.written > 0 and math.floor(sum_ms / st.written * 10 + 0.5) / 10 or 0
   -- fs.write goes through a temporary file and a rename: a reader never
   -- sees half a summary
   local ok, err = fs.write(o.out, cjson.encode(st) .. "\n")
   if not ok then
      io.stderr:write("writer: ", err, "\n")
   end
end

-- One write: the endpoint that worked last first, then the others in turn,
-- round after round until one acknowledges or DEADLINE passes. A put of the
-- same key and value twice is harmless, so a retry after a timeout is safe.
local current = 1
local function put(key, value)
   local started = now()
   local body = { key = etcd.b64(key), value = etcd.b64(value) }
   local tries, last_err = 0, nil
   local first = current
   local function gave_up()
      return nil, ("no endpoint acknowledged it in %.1f s (%d tries); last: %s"):format(now() - started, tries,
         tostring(last_err)), now() - started
   end
   while true do
      for k = 0, #o.urls - 1 do
         local i = (current - 1 + k) % #o.urls + 1
         local left = DEADLINE - (now() - started)
         if left < 0.05 then
            return gave_up()
         end
         tries = tries + 1
         local r, err = etcd.call(o.urls[i], "/v3/kv/put", body, tls, math.min(PER_TRY, left))
         if r then
            if i ~= first then
               st.failovers = st.failovers + 1
            end
            current = i
            return true, nil, now() - started
         end
         last_err = err
      end
      -- every endpoint refused (a stopped cluster refuses at once): do not spin
      if DEADLINE - (now() - started) < BACKOFF then
         return gave_up()
      end
      sched.sleep(BACKOFF)
   end
end

io.stderr:write(("writer: %d endpoints, prefix %s, every %g s, summary in %s\n"):format(#o.urls, o.prefix,
   o.interval, o.out))
local next_at, saved_at = t0, -math.huge
while true do
   if fs.stat(stop_file) then
      st.stopped_by = "stop file"
      break
   elseif now() - t0 >= o.max_seconds then
      st.stopped_by = "max-seconds"
      break
   elseif runtime.interrupted() then
      st.stopped_by = "interrupted"
      break
   end
   local seq = st.next_seq
   local ok, err, took = put(o.prefix .. KEY_FORMAT:format(seq), VALUE_FORMAT:format(seq))
   st.next_seq = seq + 1
   if ok then
      local ms = math.floor(took * 1000 + 0.5)
      st.written = st.written + 1
      st.max_latency_ms = math.max(st.max_latency_ms, ms)
      hist[math.min(ms, MAX_MS)] = (hist[math.min(ms, MAX_MS)] or 0) + 1
      sum_ms = sum_ms + ms
   else
      st.failed = st.failed + 1
      st.failed_seqs[#st.failed_seqs + 1] = seq
      if #st.failures < MAX_FAILURES then
         local msg = ("seq %d at %.3f s: %s"):format(seq, now() - t0, err)
         st.failures[#st.failures + 1] = msg
         io.stderr:write("writer: failed: ", msg, "\n")
      end
   end
   if not ok or st.written <= 2 or now() - saved_at >= SUMMARY_EVERY then
      save() -- at once for the first writes, which load.start waits for
      saved_at = now()
   end
   -- start writes on a fixed schedule; after a slow write, carry on from now
   -- rather than firing the missed ones back to back
   next_at = next_at + o.interval
   local wait = next_at - now()
   if wait > 0 then
      sched.sleep(wait)
   elseif -wait > o.interval then
      st.late = st.late + 1
      next_at = now()
   end
end
st.done = true
st.ended_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
save()
io.stderr:write(("writer: stopped (%s): %d written, %d failed, max %d ms, p99 %d ms\n"):format(st.stopped_by,
   st.written, st.failed, st.max_latency_ms, st.p99_latency_ms))
return 0
