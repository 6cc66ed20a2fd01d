-- command: run a program on the host WITHOUT a shell, as Ansible's command
-- module does. `argv` is a list of words; `cmd` is a string split into
-- words the way sh would split it (whitespace, '...' and "..." quotes,
-- backslash escapes) but with no expansion at all: $HOME, *, |, >, ; and &&
-- are passed to the program as literal words. Each word is then quoted
-- (etcdrun.shell) and run with `exec`, so the login shell on the host only
-- ever sees literal words. Use the shell module for pipes and variables.
--
-- A command is not idempotent by itself: it always reports changed (and
-- "would run" under --check, where it never runs) unless `creates` exists or
-- `removes` does not, which makes it a no-op. A non-zero exit status fails
-- the task with the tail of stderr; changed_when/failed_when are the
-- runner's.
local shell = require("etcdrun.shell")

local M = {
   examples = [[task "etcd version" { command = { argv = { "/opt/etcd/bin/etcd", "--version" } },
   register = "etcd_version", changed_when = false }]],
   doc = "Run a program on the host without a shell (argv, or a string split into words); "
      .. "skipped when `creates` exists or `removes` does not.",
   args = {
      cmd = { type = "string", doc = "the command line, split into words like sh does, without any expansion" },
      argv = { type = "list", elements = "string", doc = "the program and its arguments, as a list" },
      chdir = { type = "path", doc = "directory to run in" },
      creates = { type = "path", doc = "do not run when this path exists (relative: to chdir)" },
      removes = { type = "path", doc = "do not run unless this path exists (relative: to chdir)" },
      stdin = { type = "string", doc = "data fed to the command's standard input" },
      timeout = { type = "number", doc = "seconds before the command is killed (default: --command-timeout)" },
   },
   exclusive = { { "cmd", "argv" } },
   one_of = { { "cmd", "argv" } },
}

local ESCAPABLE_IN_DQ = { ['"'] = true, ["\\"] = true, ["$"] = true, ["`"] = true, ["\n"] = true }

-- Split a command line into words with sh's quoting rules and no
-- expansion. Returns the words or nil and why.
local function split(s)
   local words, word, i, n = {}, nil, 1, #s
   while i <= n do
      local c = s:sub(i, i)
      if c:match("%s") then
         if word then
            words[#words + 1], word = word, nil
         end
      elseif c == "'" then
         local j = s:find("'", i + 1, true)
         if not j then
            return nil, "unterminated ' quote"
         end
         word, i = (word or "") .. s:sub(i + 1, j - 1), j
      elseif c == '"' then
         word = word or ""
         i = i + 1
         while true do
            local d = s:sub(i, i)
            if d == "" then
               return nil, 'unterminated " quote'
            elseif d == '"' then
               break
            elseif d == "\\" and ESCAPABLE_IN_DQ[s:sub(i + 1, i + 1)] then
               d, i = s:sub(i + 1, i + 1), i + 1
            end
            word, i = word .. d, i + 1
         end
      elseif c == "\\" then
         if i == n then
            return nil, "a trailing backslash"
         end
         word, i = (word or "") .. s:sub(i + 1, i + 1), i + 1
      else
         word = (word or "") .. c
      end
      i = i + 1
   end
   if word then
      words[#words + 1] = word
   end
   return words
end

local function resolve(args, p)
   if p:sub(1, 1) ~= "/" and args.chdir then
      return args.chdir:gsub("/+$", "") .. "/" .. p
   end
   return p
end

-- The words to run, or nil and why the command is refused.
local function words_of(args)
   local words = args.argv
   if args.cmd then
      local err
      words, err = split(args.cmd)
      if not words then
         return nil, ("command: cannot split cmd: %s: %s"):format(err, args.cmd)
      end
   end
   if #words == 0 or words[1] == "" then
      return nil, "command: nothing to run (empty command)"
   end
   return words
end

--- The state: whether `creates` and `removes` exist, { path =, exists = }
--- each. Nothing is read for a command that will be refused, nor `removes`
--- once `creates` exists (the task is skipped either way).
function M.gather(ctx, args)
   local state = {}
   if not words_of(args) then
      return state
   end
   for _, which in ipairs({ "creates", "removes" }) do
      if args[which] then
         local p = resolve(args, args[which])
         local st, err, code = ctx.host:stat(p)
         if not st and code ~= "ENOENT" then
            return nil, err, code
         end
         state[which] = { path = p, exists = st ~= nil }
         if which == "creates" and st then
            break
         end
      end
   end
   return state
end

--- The decision: refuse, skip (creates exists, removes does not), or run:
--- "would run", with the line apply runs (`plan.line`).
function M.plan(state, args)
   local words, why = words_of(args)
   if not words then
      return { failed = true, msg = why }
   end
   local shown = args.cmd or shell.join(words)
   local skip
   if state.creates and state.creates.exists then
      skip = ("skipped, %s exists"):format(state.creates.path)
   elseif state.removes and not state.removes.exists then
      skip = ("skipped, %s does not exist"):format(state.removes.path)
   end
   if skip then
      return { changed = false, msg = skip, result = { cmd = shown, rc = 0, stdout = "", stderr = "" } }
   end
   -- exec: the first word is always the program, never a shell assignment
   -- or keyword, and the timeout kills the program itself
   local line = "exec " .. shell.join(words)
   if args.chdir then
      line = ("cd %s && %s"):format(shell.quote(args.chdir), line)
   end
   return { changed = true, msg = "would run", result = { cmd = shown }, line = line }
end

local function lines(s)
   local out = {}
   for l in s:gsub("\n$", ""):gmatch("[^\n]*") do
      out[#out + 1] = l
   end
   if s == "" then
      return {}
   end
   return out
end

-- The last few lines of a command's output, for a failure message.
local function tail(s)
   s = s:gsub("%s+$", "")
   local out = {}
   for l in s:gmatch("[^\n]+") do
      out[#out + 1] = l
      if #out > 5 then
         table.remove(out, 1)
      end
   end
   local t = table.concat(out, "\n")
   return #t > 800 and ("..." .. t:sub(-800)) or t
end

function M.apply(ctx, args, plan)
   local r, err, code = ctx.host:exec(plan.line, { stdin = args.stdin, timeout = args.timeout or ctx.timeout })
   if not r then
      return nil, ("command: %s"):format(err), code
   end
   local res = {
      rc = r.status, stdout = r.stdout, stderr = r.stderr,
      stdout_lines = lines(r.stdout), stderr_lines = lines(r.stderr),
      msg = ("rc %d"):format(r.status),
   }
   if r.status ~= 0 then
      res.failed = true
      local why = tail(r.stderr ~= "" and r.stderr or r.stdout)
      res.msg = ("command failed on %s with rc %d%s"):format(ctx.host.name, r.status,
         why ~= "" and (": " .. why) or "")
      if r.status == 127 and why:find("not found", 1, true) then
         res.msg = res.msg .. " (command runs no shell: use the shell module for shell syntax)"
      end
   end
   return res
end

return M
