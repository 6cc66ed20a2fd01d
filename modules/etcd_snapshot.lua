-- etcd_snapshot: a snapshot of the cluster's keyspace, taken from the member
-- this task runs on (run_once), onto the controller, before a disruptive
-- step. gather asks the member whether it answers (etcdctl endpoint health,
-- over mutual TLS, with the node's own certificate) and lists the snapshots
-- already kept; plan says what would be taken and which old ones the
-- retention count would delete; apply saves into a 0600 temporary file on
-- the node, reads its revision/keys/hash with `snapshot status` (etcdutl
-- where etcdctl no longer has it), fetches it, checks its sha256 against the
-- node's, keeps it as <dir>/<cluster>-<UTC>-rev<revision>.db (0600) with a
-- sha256sum file beside it, and removes the node's copy whatever happened.
local cjson = require("cjson")
local clock = require("etcdrun.clock")
local fs = require("etcdrun.fs")
local shell = require("etcdrun.shell")

local q = shell.quote

local M = {
   doc = "Take a verified etcd snapshot from a member onto the controller, keeping the newest N.",
   args = {
      dir = { type = "path", required = true, doc = "controller directory (relative to the playbook), made 0700" },
      retain = { type = "integer", default = 5, doc = "snapshots of this cluster kept in dir (0: all)" },
      cluster = { type = "string", default = "etcd", doc = "file name prefix: <cluster>-<UTC time>-rev<N>.db" },
      etcdctl = { type = "path", absolute = true, default = "/opt/etcd/bin/etcdctl", doc = "on the node" },
      endpoint = { type = "string", default = "https://127.0.0.1:2379", doc = "the member's client URL" },
      cacert = { type = "path", absolute = true, default = "/etc/etcd/ssl/ca.crt", doc = "CA (node)" },
      cert = { type = "path", absolute = true, default = "/etc/etcd/ssl/server.crt", doc = "client cert (node)" },
      key = { type = "path", absolute = true, default = "/etc/etcd/ssl/server.key", doc = "its key (node)" },
      tmp_dir = { type = "path", absolute = true,
         doc = "node directory for the temporary copy (default /var/lib/etcd if there, else /var/tmp)" },
      reason = { type = "string", doc = "why, shown in the message (e.g. 'before adding etcd4')" },
      timeout = { type = "integer", default = 600, doc = "seconds allowed for saving and for fetching" },
   },
   examples = [[task "snapshot" { etcd_snapshot = { dir = "snapshots", retain = 5, reason = "before adding etcd4" },
   run_once = true }]],
}

local TMP_PREFIX = ".etcdrun-snapshot-"

-- etcdctl with the member's endpoint and mutual TLS
local function etcdctl(args, bin)
   return ("ETCDCTL_API=3 %s --endpoints=%s --cacert=%s --cert=%s --key=%s"):format(q(bin or args.etcdctl),
      q(args.endpoint), q(args.cacert), q(args.cert), q(args.key))
end

-- The snapshots of `cluster` among file names, oldest first (time, revision,
-- sequence), split into those retention deletes once `extra` more are added
-- (the oldest beyond `retain`; 0 keeps all) and those it keeps.
local function retention(names, cluster, retain, extra)
   local pat = "^" .. cluster:gsub("%p", "%%%0") .. "%-(%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ)%-rev(%d+)%-?(%d*)%.db$"
   local all = {}
   for _, n in ipairs(names) do
      local t, rev, seq = n:match(pat)
      if t then
         all[#all + 1] = { name = n, key = ("%s %020d %04d"):format(t, tonumber(rev), tonumber(seq) or 0) }
      end
   end
   table.sort(all, function(a, b) return a.key < b.key end)
   local drop, keep = {}, {}
   for i, s in ipairs(all) do
      table.insert(retain > 0 and i <= #all + extra - retain and drop or keep, s.name)
   end
   return drop, keep
end

function M.gather(ctx, args)
   local state = { dir = ctx.path(args.dir) }
   local names, err, code = fs.try.list(state.dir)
   if not names and code ~= "ENOENT" then
      return nil, err, code
   end
   state.names = names or {}
   local cmd = table.concat({
      ("[ -x %s ] || { echo etcdctl=missing; exit 0; }"):format(q(args.etcdctl)),
      args.tmp_dir and ("[ -d %s ] && echo tmp_dir=%s"):format(q(args.tmp_dir), q(args.tmp_dir))
         or "if [ -d /var/lib/etcd ]; then echo tmp_dir=/var/lib/etcd; else echo tmp_dir=/var/tmp; fi",
      ("H=$(%s endpoint health 2>&1); echo health=$?; printf '%%s\\n' \"$H\" | sed 's/^/| /'"):format(etcdctl(args)),
   }, "; ")
   local r
   r, err, code = ctx.host:exec(cmd, { timeout = 60 })
   if not r then
      return nil, err, code
   end
   state.etcdctl = not r.stdout:find("etcdctl=missing", 1, true)
   state.tmp_dir = r.stdout:match("tmp_dir=([^\n]+)") or false
   state.healthy = r.stdout:match("health=(%d+)") == "0"
   local said = {}
   for line in r.stdout:gmatch("[^\n]+") do -- etcdctl's own words, not its client's JSON log lines
      said[#said + 1] = not line:find('^| {"level"') and line:match("^| (.*)$") or nil
   end
   state.health = table.concat(said, "\n"):gsub("%s+$", "")
   return state
end

function M.plan(state, args, opts)
   local where = ("%s (%s)"):format(opts.host, args.endpoint)
   local why = not state.etcdctl and ("%s not found on %s"):format(args.etcdctl, opts.host)
      or not state.healthy and ("%s: %s"):format(where, state.health ~= "" and state.health or "no answer")
      or not state.tmp_dir and ("%s: tmp_dir %s is not a directory"):format(opts.host, tostring(args.tmp_dir))
   if why then
      if opts.check then
         return { skipped = true, msg = ("no healthy member to snapshot now (%s): a run would fail unless an earlier"
            .. " task starts it"):format(why) }
      end
      return { failed = true, msg = "no healthy member to snapshot: " .. why }
   end
   if not args.cluster:match("^[%w._-]+$") or args.retain < 0 then
      return { failed = true, msg = ("etcd_snapshot: cluster must be a file name word, retain >= 0 (got %q, %d)")
         :format(args.cluster, args.retain) }
   end
   local drop, keep = retention(state.names, args.cluster, args.retain, 1)
   local msg = ("would take a snapshot from %s into %s%s"):format(opts.host, state.dir,
      args.reason and (" (" .. args.reason .. ")") or "")
   if #drop > 0 then
      msg = msg .. ("; retention (keep %d) would delete %s"):format(args.retain, table.concat(drop, ", "))
   end
   local function lines(t, new)
      return table.concat(t, "\n") .. (#t > 0 and "\n" or "") .. (new or "")
   end
   return { changed = true, msg = msg, dir = state.dir, tmp_dir = state.tmp_dir, result = { report = msg },
      diff = { path = state.dir, before = lines(drop) .. lines(keep),
         after = lines(keep, ("%s-<UTC time>-rev<revision>.db\n"):format(args.cluster)) } }
end

local function human(n)
   local units, i = { "B", "KiB", "MiB", "GiB" }, 1
   while n >= 1024 and i < #units do
      n, i = n / 1024, i + 1
   end
   return ("%.1f %s"):format(n, units[i])
end

-- On the node: save, read the snapshot's status, hash it. Returns the
-- status table and the node's sha256, or nil, err, code.
local function save(ctx, args, tmp)
   local r, err, code = ctx.host:exec(("umask 077 && %s snapshot save %s"):format(etcdctl(args), q(tmp)),
      { timeout = args.timeout })
   if not r or r.status ~= 0 then
      return nil, err or ("etcdctl snapshot save failed on %s: %s"):format(ctx.host.name,
         (r.stderr .. r.stdout):gsub("%s+$", "")), code or "ESNAPSHOT"
   end
   local st
   local tools = { args.etcdctl, (args.etcdctl:gsub("[^/]*$", "etcdutl")) }
   for _, bin in ipairs(tools) do
      r = ctx.host:exec(("[ -x %s ] && ETCDCTL_API=3 %s snapshot status %s -w json"):format(q(bin), q(bin), q(tmp)),
         { timeout = 120 })
      local ok, v = pcall(cjson.decode, r and r.status == 0 and r.stdout or "")
      if ok and type(v) == "table" and tonumber(v.revision) then
         st = v
         break
      end
   end
   if not st then
      return nil, ("snapshot status failed on %s (etcdctl and etcdutl): %s"):format(ctx.host.name,
         r and (r.stderr .. r.stdout):gsub("%s+$", "") or "no answer"), "ESNAPSHOT"
   end
   if ctx.host.become and ctx.host.user ~= "root" then -- SFTP reads as the login user
      ctx.host:exec(("chown \"$SUDO_USER\" %s"):format(q(tmp)))
   end
   local sum
   sum, err, code = ctx.host:sha256(tmp)
   if not sum then
      return nil, err, code
   end
   return st, sum
end

-- Fetch the node's copy as <base>.db (<base>-N.db for a second snapshot in
-- one second at one revision), verified, with its .sha256: path, or nil, err, code.
local function fetch(ctx, tmp, base, sum)
   local path = base .. ".db"
   for n = 2, 99 do
      if not fs.try.stat(path) then
         break
      end
      path = ("%s-%d.db"):format(base, n)
   end
   local incoming = path:gsub("[^/]*$", ".%0.incoming")
   local ok, err, code = ctx.host:get_file(tmp, incoming, { mode = "0600" })
   if ok then
      local got = fs.try.sha256_file(incoming)
      if got ~= sum then
         ok, err, code = nil, ("etcd_snapshot: sha256 of the fetched copy %s differs from the node's %s (%s)")
            :format(tostring(got), sum, path), "ECHECKSUM"
      else
         ok, err, code = ctx.controller:write(path .. ".sha256", ("%s  %s\n"):format(sum, path:match("[^/]*$")),
            { mode = "0600" })
      end
   end
   if ok then
      ok, err = os.rename(incoming, path)
      code = "EIO"
   end
   if not ok then
      os.remove(incoming)
      os.remove(path .. ".sha256")
      return nil, err, code
   end
   return path
end

-- save, then fetch: status, sha256, path or nil, err, code
local function take(ctx, args, plan, tmp, t0)
   local st, sum, code = save(ctx, args, tmp)
   if not st then
      return nil, sum, code
   end
   local path, err
   path, err, code = fetch(ctx, tmp, ("%s/%s-%s-rev%d"):format(plan.dir, args.cluster,
      os.date("!%Y%m%dT%H%M%SZ", t0), st.revision), sum)
   if not path then
      return nil, err, code
   end
   return st, sum, path
end

function M.apply(ctx, args, plan)
   local made, err, code = ctx.controller:mkdir(plan.dir, { mode = "0700" })
   if not made then
      return nil, err, code
   end
   local tmp = ("%s/%s%08x.db"):format(plan.tmp_dir, TMP_PREFIX, math.random(0, 0x7fffffff))
   local t0, started = os.time(), clock.monotonic()
   local ok, st, sum, path = pcall(take, ctx, args, plan, tmp, t0)
   -- always (a raise included): this run's copy, and copies killed runs left an hour ago
   ctx.host:exec(("rm -f -- %s %s.part; find %s -maxdepth 1 -name %s -mmin +60 -exec rm -f -- {} + 2>/dev/null; true")
      :format(q(tmp), q(tmp), q(plan.tmp_dir), q(TMP_PREFIX .. "*")))
   if not ok then
      error(st, 0)
   elseif not st then
      return nil, sum, path
   end
   local names = fs.try.list(plan.dir) or {}
   local deleted = retention(names, args.cluster, args.retain, 0)
   for _, n in ipairs(deleted) do
      ctx.controller:remove(plan.dir .. "/" .. n)
      ctx.controller:remove(plan.dir .. "/" .. n .. ".sha256")
   end
   local fst = fs.try.stat(path)
   local size, keys = fst and fst.size or 0, math.tointeger(st.totalKey) or 0
   local msg = ("snapshot from %s%s: %s (revision %d, %d keys, %s, sha256 verified)%s"):format(ctx.host.name,
      args.reason and (" (" .. args.reason .. ")") or "", path, st.revision, keys, human(size),
      #deleted > 0 and ("; retention deleted " .. table.concat(deleted, ", ")) or "")
   return { path = path, revision = math.tointeger(st.revision), keys = keys, size = size, sha256 = sum,
      hash = math.tointeger(st.hash), deleted = deleted, seconds = clock.monotonic() - started, msg = msg,
      report = msg }
end

return M
