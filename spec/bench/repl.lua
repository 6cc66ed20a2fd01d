-- make bench: `!hostname` in the REPL on 3 lab nodes over sessions already
-- open (what an operator waits for at the prompt). Median of many.
-- Usage: ./etcdrun spec/bench/repl.lua [pattern=etcd1:etcd2:etcd3] [rounds=200]
local repl = require("etcdrun.repl")
local runtime = require("etcdrun.core.runtime")
local adhoc = require("etcdrun.adhoc")

local lab = os.getenv("LAB_DIR") or ".lab"
local inv = assert(require("etcdrun.inventory").load(lab .. "/hosts"))
local conn = assert(adhoc.connection_options({}, inv:hosts("all")))
local devnull = assert(io.open("/dev/null", "w"))
local s = assert(repl.session({ inv = inv, conn = conn, pattern = arg[1] or "etcd1:etcd2:etcd3", stdout = devnull }))
s:feed("!hostname") -- opens the sessions
local rounds = tonumber(arg[2]) or 200
local t = {}
for i = 1, rounds do
   local t0 = runtime.monotonic()
   s:feed("!hostname")
   t[i] = (runtime.monotonic() - t0) * 1000
end
table.sort(t)
print(("REPL `!hostname` on %d nodes over open sessions: median %.1f ms (p90 %.1f ms, %d rounds)"):format(
   #s.targets, t[rounds // 2 + 1], t[math.ceil(rounds * 0.9)], rounds))
s:close()
