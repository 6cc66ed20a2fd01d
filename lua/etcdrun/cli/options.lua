--- The command line's one description: the synopsis, every option, the exit
-- statuses, the environment and the files. `--help`, the etcdrun(1) man page
-- (etcdrun.doc.man) and the shell completion (`etcdrun complete options`) are
-- all rendered from these tables, so none of them can drift from the parser,
-- which is built from OPTIONS too (etcdrun.cli).
local M = {}

--- How etcdrun is called: { usage, what } per line.
M.SYNOPSIS = {
   { "etcdrun [options] PLAYBOOK.lua", "run a playbook against the inventory" },
   { "etcdrun [options] FILE.lua [ARGS...]", "run a Lua script with the runtime" },
   { "etcdrun -e CODE [-e CODE...]", "run a chunk" },
   { "etcdrun [options] PATTERN -a COMMAND", "run COMMAND on the matched hosts" },
   { "etcdrun [options] repl [PATTERN]", "a Lua prompt on the matched hosts (default all)" },
   { "etcdrun doc [MODULE]", "list the modules, or show one module's arguments" },
}

--- Every option: names, the argument's name (nil: a flag), the key it sets
-- in the parsed options, how it repeats ("list", "count", "count2") and its help.
M.OPTIONS = {
   { { "-e" }, "CODE | key=value | @vars.lua", "codes", "list",
      "with a FILE, key=value and @file set extra variables (highest precedence); otherwise CODE is run "
         .. "(repeatable)" },
   { { "-C", "--check" }, nil, "check", nil, "report what would change, change nothing" },
   { { "-D", "--diff" }, nil, "diff", nil, "show the changes made (or, with --check, that would be)" },
   { { "-t", "--tags" }, "TAGS", "tags", "list", "run only tasks with one of these tags (comma-separated)" },
   { { "--skip-tags" }, "TAGS", "skip_tags", "list", "skip tasks with one of these tags" },
   { { "--start-at-task" }, "NAME", "start_at_task", nil,
      "start the playbook at the first task whose name is NAME (a glob: * and ?); the tasks before it "
         .. "are skipped" },
   { { "--list-hosts" }, nil, "list_hosts", nil, "list each play's hosts (after --limit) and run nothing" },
   { { "--list-tasks" }, nil, "list_tasks", nil, "list each play's tasks (after --tags) and run nothing" },
   { { "--list-tags" }, nil, "list_tags", nil, "list each play's tags and run nothing" },
   { { "--syntax-check" }, nil, "syntax_check", nil,
      "check the playbook (syntax, keys, modules, arguments, handlers) and run nothing" },
   { { "-v", "-vv", "--verbose" }, nil, "verbose", "count", "more output: messages, then command output" },
   { { "-a", "--args" }, "COMMAND", "command", nil, "ad-hoc: run COMMAND on every host matching PATTERN" },
   { { "-i", "--inventory" }, "PATH", "inventory", nil, "inventory file, Ansible INI or Lua (default ./hosts)" },
   { { "-l", "--limit" }, "PATTERN", "limit", nil, "further limit the hosts (e.g. 'etcd:!etcd3')" },
   { { "-f", "--forks" }, "N", "forks", nil, "hosts worked on at once (default 50)" },
   { { "-u", "--user" }, "USER", "user", nil, "remote user when the inventory names none" },
   { { "-k", "--key" }, "PATH", "keys", "list", "private key file (repeatable); asks once for a passphrase" },
   { { "--known-hosts" }, "PATH", "known_hosts", nil,
      "known_hosts file to check host keys against (and to add to with accept-new); default ~/.ssh/known_hosts" },
   { { "--host-key" }, "POLICY", "host_key", nil, "strict (default) or accept-new (trust on first use)" },
   { { "--ssh-config" }, "PATH", "ssh_config", nil, "ssh_config to read (default ~/.ssh/config)" },
   { { "-T", "--timeout" }, "SECONDS", "timeout", nil, "connect timeout (default 10)" },
   { { "--command-timeout" }, "SECS", "command_timeout", nil, "kill a remote command after this long (default 600)" },
   { { "-b", "--become" }, nil, "become", nil, "run commands with sudo" },
   { { "-K", "--ask-become-pass" }, nil, "ask_become_pass", nil, "ask for the sudo password (once)" },
   { { "--ask-secret" }, "NAME", "ask_secret", "list",
      "ask for the variable NAME on the terminal (once, not echoed) and keep it secret (tls-cluster.lua and "
         .. "rotate-ca.lua: etcd_ca_passphrase, the CA key's)" },
   { { "--json" }, nil, "json", nil, "newline-delimited JSON events on stdout (ad-hoc: one object per host)" },
   { { "-" }, nil, nil, nil, "read the script from standard input" },
   { { "--version" }, nil, "version", nil, "print etcdrun's version and the libraries it runs with" },
   { { "-h", "--help" }, nil, "help", nil, "print this help" },
   { { "--" }, nil, nil, nil, "stop handling options" },
}

--- Exit statuses: { code, meaning }.
M.EXIT = {
   { "0", "success" },
   { "1", "failure: a host failed, or the playbook did not load (FILE:LINE: message)" },
   { "2", "usage error (a malformed host pattern or --limit too, a --start-at-task that no task matches)" },
   { "3", "a host was unreachable" },
   { "130", "interrupted (Ctrl-C: commands in flight are killed, the recap says what ran)" },
}

--- Environment variables read: { name, meaning }.
M.ENVIRONMENT = {
   { "ETCDRUN_HOME", "the directory holding lua/, modules/ and playbooks/ (default: next to the binary, "
      .. "else ../share/etcdrun from it, else the data directory it was built for)" },
   { "ETCDRUN_PATH", "colon-separated directories of site modules, searched after modules/ next to the "
      .. "playbook" },
   { "XDG_STATE_HOME", "the REPL's history and the pending-handler journal go under $XDG_STATE_HOME/etcdrun "
      .. "(default ~/.local/state/etcdrun)" },
   { "XDG_CACHE_HOME", "downloads and releases are cached under $XDG_CACHE_HOME/etcdrun (default "
      .. "~/.cache/etcdrun)" },
   { "SSH_AUTH_SOCK", "the ssh-agent to take keys from" },
   { "NO_COLOR", "set: no colour on a terminal" },
   { "TMPDIR", "where downloads are staged (default /tmp)" },
}

--- Files read or written: { path, meaning }.
M.FILES = {
   { "./hosts", "the inventory when -i is not given" },
   { "~/.ssh/known_hosts", "host keys (--known-hosts), checked strictly" },
   { "~/.ssh/config", "ssh_config (--ssh-config)" },
   { "~/.ssh/id_*", "private keys tried when neither the inventory nor -k names one" },
   { "~/.local/state/etcdrun/history", "the REPL's history (mode 0600)" },
   { "~/.local/state/etcdrun/pending-handlers/", "handlers notified but not run yet, replayed on the next run" },
   { "~/.cache/etcdrun/", "downloaded files and etcd releases" },
   { "/usr/share/etcdrun/", "the installed runtime: lua/, modules/ (the built-in modules) and playbooks/ "
      .. "(tls-cluster.lua, rotate-ca.lua, reset.lua)" },
}

--- Examples: { command, what it does }. Each must work as printed.
M.EXAMPLES = {
   { "etcdrun -i hosts /usr/share/etcdrun/playbooks/tls-cluster.lua -C",
      "what the TLS cluster playbook would change on the group etcd of ./hosts" },
   { "etcdrun -i hosts /usr/share/etcdrun/playbooks/tls-cluster.lua --list-tasks", "its tasks, play by play" },
   { "etcdrun -i hosts etcd -a 'systemctl is-active etcd'", "a command on every host of the group etcd" },
   { "etcdrun -i hosts repl 'etcd:!etcd3'", "a Lua prompt on etcd's hosts but etcd3" },
   { "etcdrun doc x509_cert", "the x509_cert module's arguments and an example" },
}

local function wrap(text, width, indent)
   local lines, line = {}, ""
   for word in text:gmatch("%S+") do
      if line ~= "" and #line + 1 + #word > width then
         lines[#lines + 1] = line
         line = word
      else
         line = line == "" and word or (line .. " " .. word)
      end
   end
   lines[#lines + 1] = line
   return table.concat(lines, "\n" .. indent)
end
M.wrap = wrap

--- An option's names and argument as the help shows them: "-i, --inventory PATH".
function M.label(o)
   local names = table.concat(o[1], ", ")
   return o[2] and (names .. " " .. o[2]) or names
end

--- The text of `etcdrun --help`.
function M.help()
   local out = {}
   for i, s in ipairs(M.SYNOPSIS) do
      out[#out + 1] = ("%s %-38s %s"):format(i == 1 and "usage:" or "      ", s[1], s[2])
   end
   out[#out + 1] = "\nScripts see the global table `etcdrun` (fs, template, x509, archive, http, ...);"
   out[#out + 1] = "a file that returns plays (play \"name\" { ... }) is run as a playbook.\n\noptions:"
   local pad = (" "):rep(26)
   for _, o in ipairs(M.OPTIONS) do
      local label = "  " .. M.label(o)
      if #label > 24 then
         out[#out + 1] = label
         label = ""
      end
      out[#out + 1] = ("%-26s%s"):format(label, wrap(o[5], 52, pad))
   end
   out[#out + 1] = "\nexit status:"
   for _, e in ipairs(M.EXIT) do
      out[#out + 1] = ("  %-4s %s"):format(e[1], wrap(e[2], 72, "       "))
   end
   out[#out + 1] = "\n`etcdrun doc` lists the modules; installed (the package, make install), `man etcdrun`"
   out[#out + 1] = "and `man etcdrun-playbook` say more."
   return table.concat(out, "\n") .. "\n"
end

--- The parser's table: option name -> { key, takes_value, repeat }.
function M.parser_table()
   local t = {}
   for _, o in ipairs(M.OPTIONS) do
      if o[3] then
         for _, n in ipairs(o[1]) do
            local rep = o[4]
            if rep == "count" and n == "-vv" then
               rep = "count2"
            end
            t[n] = { o[3], o[2] ~= nil, rep == "list" or rep }
         end
      end
   end
   return t
end

return M
