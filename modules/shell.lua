-- shell: run a command line through /bin/sh -c on the host (pipes,
-- redirections, variables, && ...), with the command module's rules:
-- `creates`/`removes` make it a no-op, --check reports "would run" without
-- running anything, a non-zero exit fails the task with the stderr tail.
--
-- /bin/sh rather than the login shell, so a playbook behaves the same for
-- every user; `executable` picks another shell (e.g. /bin/bash for
-- `set -o pipefail`).
local module = require("etcdrun.module")

local M = {
   examples = [[task "free space" { shell = { cmd = "df -P /var/lib | tail -1" }, register = "df",
   changed_when = false }]],
   doc = "Run a command line with /bin/sh -c on the host; skipped when `creates` exists "
      .. "or `removes` does not.",
   args = {
      cmd = { type = "string", required = true, doc = "the shell command line" },
      executable = { type = "path", default = "/bin/sh", doc = "the shell that runs cmd (with -c)" },
      chdir = { type = "path", doc = "directory to run in" },
      creates = { type = "path", doc = "do not run when this path exists (relative: to chdir)" },
      removes = { type = "path", doc = "do not run unless this path exists (relative: to chdir)" },
      stdin = { type = "string", doc = "data fed to the command's standard input" },
      timeout = { type = "number", doc = "seconds before the command is killed (default: --command-timeout)" },
   },
}

local command -- the command module, loaded on first use

-- The same task for the command module: argv {shell, "-c", cmd}.
local function as_command(args)
   return {
      argv = { args.executable, "-c", args.cmd }, chdir = args.chdir, creates = args.creates,
      removes = args.removes, stdin = args.stdin, timeout = args.timeout,
   }
end

--- The state: the command module's (`creates`, `removes`).
function M.gather(ctx, args)
   command = command or module.load("command")
   return command.gather(ctx, as_command(args))
end

--- The decision: the command module's, showing the command line as given.
function M.plan(state, args, opts)
   command = command or module.load("command")
   local plan = command.plan(state, as_command(args), opts)
   if plan.result then
      plan.result.cmd = args.cmd
   end
   return plan
end

function M.apply(ctx, args, plan)
   local r, err, code = command.apply(ctx, as_command(args), plan)
   if r and r.failed then
      r.msg = r.msg:gsub("^command failed", "shell command failed")
         :gsub(" %(command runs no shell: use the shell module for shell syntax%)$", "")
   end
   return r, err, code
end

return M
