-- make bench: the cost of one command on every node over sessions that are
-- already open (what the REPL and every task after the first pay).
-- Usage: ./etcdrun spec/bench/open_session.lua [nodes=3] [rounds=50]
local runtime = require("etcdrun.core.runtime")
local host = require("etcdrun.host")
local sched = require("etcdrun.sched")

local n = tonumber(arg[1]) or 3
local rounds = tonumber(arg[2]) or 50
local lab = os.getenv("LAB_DIR") or ".lab"
local hosts = {}
for i = 1, n do
   hosts[i] = host.new({ name = "etcd" .. i, address = ("198.18.0.%d"):format(10 + i), user = "root" },
      { ssh_config = lab .. "/ssh_config" })
end
local function round()
   local tasks = {}
   for i, h in ipairs(hosts) do
      tasks[i] = function()
         return assert(h:exec("hostname")).stdout
      end
   end
   for _, r in ipairs(sched.run(tasks)) do
      assert(r.ok, r.err)
   end
end
round() -- connect
local samples = {}
for k = 1, rounds do
   local t0 = runtime.monotonic()
   round()
   samples[k] = runtime.monotonic() - t0
end
table.sort(samples)
print(("A command on %d nodes over open sessions: median %.1f ms (p90 %.1f ms, %d rounds)"):format(n,
   samples[(rounds + 1) // 2] * 1000, samples[math.ceil(rounds * 0.9)] * 1000, rounds))
