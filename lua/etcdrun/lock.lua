--- One operator at a time: a lock held in the etcd cluster itself, as a key
-- attached to a lease, so that it goes away by itself when the run that
-- holds it dies (after the lease's TTL). The key's value says who holds it
-- (user, machine, process, since when, why). A lock whose holder was a
-- process of this machine that no longer runs is stale and taken over at
-- once: a run killed in the middle is simply run again.
local cjson = require("cjson")
local etcd = require("etcdrun.etcd")
local fs = require("etcdrun.core.fs")
local runtime = require("etcdrun.core.runtime")

local M = {}

M.KEY = "etcdrun/lock"

--- Who this run is: { user, host, pid, since, purpose }.
function M.me(purpose)
   return { user = os.getenv("USER") or os.getenv("LOGNAME") or os.getenv("SUDO_USER") or "?",
      host = runtime.hostname() or "?", pid = runtime.pid, since = os.time(), purpose = purpose }
end

--- A holder (the decoded value) in words.
function M.describe(h)
   if type(h) ~= "table" then
      return "an unknown holder"
   end
   return ("%s@%s (pid %s, since %s UTC%s)"):format(tostring(h.user), tostring(h.host),
      tostring(math.tointeger(tonumber(h.pid)) or h.pid),
      os.date("!%Y-%m-%d %H:%M:%S", tonumber(h.since) or 0), h.purpose and (", " .. h.purpose) or "")
end

--- Whether `h` is this very process.
function M.is_me(h)
   return type(h) == "table" and h.host == runtime.hostname() and tonumber(h.pid) == runtime.pid
end

--- Whether `h` was a process of this machine that is gone (an etcdrun that
-- was killed or crashed): /proc says so (no such process, a zombie, or a
-- reused PID that runs something else).
function M.is_stale(h)
   if type(h) ~= "table" or h.host ~= runtime.hostname() or not math.tointeger(tonumber(h.pid)) then
      return false
   end
   local stat = fs.read("/proc/" .. math.tointeger(tonumber(h.pid)) .. "/stat")
   local comm, st = (stat or ""):match("^%d+ %((.*)%) (%a)")
   return not comm or not comm:find("etcdrun", 1, true) or st == "Z" or st == "X"
end

local function decode(kv)
   local ok, h = pcall(cjson.decode, kv.value)
   return ok and type(h) == "table" and h or { purpose = "unreadable holder" }
end

--- The lock as it is: false (free), or { holder, lease }; nil, err when the
--- cluster does not answer.
function M.read(url, tls, key)
   local kv, err, code = etcd.get_kv(url, tls, key or M.KEY)
   if kv == nil then
      return nil, err, code
   end
   return kv and { holder = decode(kv), lease = kv.lease } or false
end

--- Take the lock for `ttl` seconds: true, or nil and why (held by someone
--- else: the message names them). A stale lock (M.is_stale) is taken over.
function M.acquire(url, tls, me, ttl, key)
   key = key or M.KEY
   for _ = 1, 2 do
      local lease, err, code = etcd.lease_grant(url, tls, ttl)
      if not lease then
         return nil, err, code
      end
      local ok, cur = etcd.create(url, tls, key, cjson.encode(me), lease)
      if ok then
         return true, lease
      end
      etcd.lease_revoke(url, tls, lease)
      if ok == nil then
         return nil, cur, "EUNAVAILABLE"
      end
      local holder = cur and decode(cur)
      if not (holder and (M.is_stale(holder) or M.is_me(holder))) then
         return nil, ("another run holds the cluster's lock (%s): %s"):format(key, M.describe(holder)), "ELOCKED"
      end
      -- ours from a dead process (or this one): drop it and take it
      if cur.lease and cur.lease ~= "0" then
         etcd.lease_revoke(url, tls, cur.lease)
      end
   end
   return nil, "the cluster's lock changed hands while taking it: run again", "ELOCKED"
end

--- Give the lock back if this process holds it.
function M.release(url, tls, key)
   local cur, err, code = M.read(url, tls, key)
   if cur == nil then
      return nil, err, code
   end
   if cur and M.is_me(cur.holder) and cur.lease then
      return etcd.lease_revoke(url, tls, cur.lease)
   end
   return true
end

--- Renew the lock's lease if this process holds it.
function M.renew(url, tls, key)
   local cur, err, code = M.read(url, tls, key)
   if not cur then
      return cur, err, code
   end
   if M.is_me(cur.holder) then
      return etcd.lease_keepalive(url, tls, cur.lease)
   end
   return false
end

return M
