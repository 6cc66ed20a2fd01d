--- wait_for: wait until a TCP port opens (or closes) or a URL answers.
--
-- A port is tried from where the task runs (the node, or the controller
-- when the task is delegated there) with bash's /dev/tcp under `timeout`,
-- one exec per try. A URL is requested from the controller with the http
-- primitive, optionally with a CA and a client certificate (etcd's /health
-- over mutual TLS); each try blocks the controller for at most
-- 2 x connect_timeout, so keep that small. Between tries the host sleeps
-- with ctx.sleep, so other hosts go on. It never changes anything:
-- changed is always false. The waiting is gather's (it only looks); plan
-- decides from its outcome. In check mode it tries once and reports
-- skipped instead of waiting when the target is not ready: what it waits
-- for is usually started by a task that check mode did not run.
local http = require("etcdrun.http")
local shell = require("etcdrun.shell")
local clock = require("etcdrun.clock").monotonic -- a clock, no remote work

local q = shell.quote

local M = {
   examples = [[task "etcd answers" { wait_for = { port = 2379, timeout = 30 } }]],
   doc = "Wait until a TCP port is open (or closed) or a URL answers with the expected status.",
   args = {
      host = { type = "string", default = "127.0.0.1", doc = "host for port, as seen from where the task runs" },
      port = { type = "integer", doc = "TCP port to wait for" },
      url = { type = "string", doc = "http(s) URL requested from the controller" },
      state = { type = "string", choices = { "started", "stopped" }, default = "started",
         doc = "started: the port accepts connections; stopped: it refuses them (port only)" },
      timeout = { type = "number", default = 60, doc = "seconds to wait in all before failing" },
      delay = { type = "number", default = 0, doc = "seconds to wait before the first try" },
      sleep = { type = "number", default = 1, doc = "seconds between tries" },
      connect_timeout = { type = "number", default = 5, doc = "seconds one try may take to connect" },
      status = { type = "integer", default = 200, doc = "the HTTP status that counts as ready" },
      match = { type = "string", doc = "a Lua pattern the response body must match (url)" },
      ca = { type = "string", doc = "CA certificate for the URL's server: a controller path or PEM text" },
      cert = { type = "string", doc = "client certificate: a controller path or PEM text" },
      key = { type = "string", secret = true, doc = "client key: a controller path or PEM text" },
   },
   one_of = { { "port", "url" } },
   exclusive = { { "port", "url" } },
}

local function fail(msg)
   return { failed = true, changed = false, msg = "wait_for: " .. msg }
end

-- A path relative to the playbook, PEM text as it is.
local function tls_source(ctx, v)
   if v and not v:find("^%-%-%-%-%-BEGIN") then
      return ctx.path(v)
   end
   return v
end

-- One try at the port: true when it accepts a connection, else false and why;
-- nil, err, code when the command could not run at all.
local function try_port(ctx, args)
   local script = ("exec 3<>/dev/tcp/%s/%d"):format(args.host, args.port)
   local cmd = ("timeout %g bash -c %s"):format(args.connect_timeout, q(script))
   local r, err, code = ctx.host:exec(cmd, { timeout = args.connect_timeout + 30 })
   if not r then
      return nil, err, code
   end
   if r.status == 0 then
      return true
   elseif r.status == 124 then
      return false, ("no answer within %g s"):format(args.connect_timeout)
   elseif r.status == 127 then
      return nil, ("wait_for: bash or timeout not found on %s"):format(ctx.host.name), "EREMOTE"
   end
   local why = r.stderr:match("([^\n:]+)%s*$") or ("exit status " .. r.status)
   return false, (why:gsub("^%s+", ""))
end

local function try_url(ctx, args)
   local r, err = http.try.request({
      url = args.url,
      ca = tls_source(ctx, args.ca),
      cert = tls_source(ctx, args.cert),
      key = tls_source(ctx, args.key),
      connect_timeout = args.connect_timeout,
      timeout = args.connect_timeout * 2,
      max_bytes = 1024 * 1024,
   })
   if not r then
      return false, err
   end
   if r.status ~= args.status then
      return false, ("HTTP %d"):format(r.status)
   end
   if args.match and not r.body:find(args.match) then
      return false, ("body does not match '%s'"):format(args.match)
   end
   return true
end

-- What is wrong with the arguments, or nil: found before anything is tried.
local function arg_error(args)
   if args.url and args.state == "stopped" then
      return "argument 'state': stopped applies to port only"
   end
   if args.url and not args.url:match("^https?://") then
      return ("argument 'url' must be an http:// or https:// URL, got '%s'"):format(args.url)
   end
   if args.host and not args.host:match("^[%w.:%-_]+$") then
      return ("argument 'host': not a host name or address: '%s'"):format(args.host)
   end
   for _, k in ipairs({ "timeout", "delay", "sleep", "connect_timeout" }) do
      if args[k] < 0 then
         return ("argument '%s' must not be negative"):format(k)
      end
   end
   if (args.cert == nil) ~= (args.key == nil) then
      return "arguments cert and key go together"
   end
end

--- The state: whether the target was ready, `why` not (the last try's
--- answer) and the `tries`; outside check mode after waiting up to the
--- timeout (then `elapsed` too when ready), under --check after one try.
--- Waiting only looks: nothing is changed. Nothing is tried for arguments
--- plan will refuse.
function M.gather(ctx, args)
   if arg_error(args) then
      return {}
   end
   local try = args.url and try_url or try_port
   local function ready()
      local ok, why, code = try(ctx, args)
      if ok == nil then
         return nil, why, code
      end
      if args.state == "stopped" then
         return not ok, ok and "still open" or nil
      end
      return ok, why
   end

   if ctx.check then
      local ok, why, code = ready()
      if ok == nil then
         return nil, why, code
      end
      return { ready = ok, why = why, tries = 1 }
   end

   if args.delay > 0 then
      ctx.sleep(args.delay)
   end
   local start = clock()
   local deadline, tries = start + args.timeout, 0
   while true do
      tries = tries + 1
      local ok, why, code = ready()
      if ok == nil then
         return nil, why, code
      end
      if ok then
         return { ready = true, tries = tries, elapsed = clock() - start }
      end
      local left = deadline - clock()
      if left <= 0 then
         return { ready = false, why = why, tries = tries }
      end
      ctx.sleep(math.min(args.sleep, left))
   end
end

--- The decision: ready, not ready after the timeout (failed), or, under
--- --check, not ready yet (skipped: what it waits for is usually started by
--- a task check mode did not run). Never a change.
function M.plan(state, args, opts)
   local bad = arg_error(args)
   if bad then
      return fail(bad)
   end
   local what = args.url and args.url:gsub("^(%a[%w+.-]*://)[^/?#@]*@", "%1***@") -- no credentials shown
      or ("%s:%d"):format(args.host, args.port)
   local want = args.url and ("answer HTTP %d"):format(args.status)
      or (args.state == "started" and "open" or "close")
   if opts.check then
      if state.ready then
         return { changed = false, msg = ("%s did %s"):format(what, want) }
      end
      return { changed = false, skipped = true,
         msg = ("check mode: %s does not %s yet (%s); a real run would wait up to %g s"):format(what, want,
            state.why, args.timeout) }
   end
   if state.ready then
      return { changed = false, msg = ("%s did %s after %.1f s"):format(what, want, state.elapsed),
         result = { elapsed = state.elapsed, tries = state.tries } }
   end
   local where = args.url and "from the controller" or ("on " .. opts.host)
   return fail(("%s did not %s within %g s %s (%d %s; last: %s)"):format(what, want, args.timeout,
      where, state.tries, state.tries == 1 and "try" or "tries", state.why))
end

return M
