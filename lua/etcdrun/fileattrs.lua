--- File attributes, in one place: reading a path's state (one stat line,
-- parsed here for host:stat and for every module that stats in its own
-- round trip), comparing mode/owner/group with what a task asks for, the
-- chown/chmod command that fixes them, and what a failed command means
-- (the error mapping host.lua and the modules share). Also the symlink rule
-- of the content modules and diffs that are safe to show.
--
-- Everything here either builds shell text for host:exec or is pure, so it
-- works the same on a node and on the controller.
local shell = require("etcdrun.shell")

local M = {}

local q = shell.quote

--- Largest file whose content is shown in a diff; larger ones get a note.
M.DIFF_MAX = 64 * 1024

-- One line per stat: type|mode|uid|gid|user|group|size|mtime.
local FMT = "'%F|%a|%u|%g|%U|%G|%s|%Y'"

-- stat's %F names, as fs.stat (the controller's) names them
local TYPES = {
   ["regular file"] = "file",
   ["regular empty file"] = "file",
   ["directory"] = "dir",
   ["symbolic link"] = "link",
   ["fifo"] = "fifo",
   ["socket"] = "socket",
   ["character special file"] = "char",
   ["block special file"] = "block",
}

--- Shell text printing one stat line for path (following links unless
--- follow == false).
---@param path string
---@param follow? boolean
function M.stat_cmd(path, follow)
   return ("stat %s-c %s -- %s"):format(follow == false and "" or "-L ", FMT, q(path))
end

--- stat_cmd for the path in a shell variable: $p (see dest_cmd) or $var.
---@param follow? boolean
---@param var? string
function M.stat_p(follow, var)
   return ("stat %s-c %s -- \"$%s\""):format(follow == false and "" or "-L ", FMT, var or "p")
end

--- The symlink rule of every content module (copy, template, lineinfile)
--- and of the known_hosts writer, as Ansible's `follow`:
---
--- * follow (the default): a symlink at the destination is followed (the
---   whole chain, like realpath): the file it resolves to is read, diffed
---   and written, and the link stays a link. A dangling (or looping) link
---   is refused: it names no file to write.
--- * follow = false: the destination itself is managed, so a link there is
---   replaced by a regular file and the diff says so (before: "symlink ->
---   target"); nothing of the target is read or shown.
---
--- dest_cmd gathers what dest_plan decides on, in the module's one exec.

--- Shell text that sets $p to the path a content module reads and writes and
--- runs body (shell text using "$p"). When dest is a symlink it first prints
--- "link <readlink>" and "real <realpath, empty when dangling>"; body then
--- runs on the resolved path when following and the link resolves, and not
--- at all otherwise.
---@param dest string
---@param follow boolean|nil false: do not follow
---@param body string
function M.dest_cmd(dest, follow, body)
   local on_link = follow == false and ":" or ("if [ -n \"$r\" ]; then p=$r; { %s; }; fi"):format(body)
   return ("p=%s; if [ -L \"$p\" ]; then t=$(readlink -- \"$p\"); r=$(realpath -e -- \"$p\" 2>/dev/null) || r=; "
      .. "printf 'link %%s\\nreal %%s\\n' \"$t\" \"$r\"; %s; else { %s; }; fi"):format(q(dest), on_link, body)
end

--- Split dest_cmd's output: the link it found ({target, real?}, or nil when
--- dest is not a symlink) and the body's output.
---@param out string
function M.split_dest(out)
   local target, real, rest = out:match("^link ([^\n]*)\nreal ([^\n]*)\n(.*)$")
   if not target then
      return nil, out
   end
   return { target = target, real = real ~= "" and real or nil }, rest
end

--- The pure decision for a destination (see the rule above): {path = where
--- to read and write, link = the link found or nil, replace = true when
--- the link itself is replaced by a file, before = what a diff shows for
--- the link}, or nil, why (to follow after "host:dest ").
---@param dest string
---@param link {target: string, real?: string}|nil
---@param follow boolean|nil
function M.dest_plan(dest, link, follow)
   if not link then
      return { path = dest }
   end
   if follow == false then
      return { path = dest, link = link, replace = true, before = ("symlink -> %s\n"):format(link.target) }
   end
   if not link.real then
      return nil, ("is a symlink to %s, which does not exist (or loops): create the target first, "
         .. "or give follow=false to replace the link with a file"):format(link.target)
   end
   return { path = link.real, link = link }
end

--- " (through the symlink dest -> real)" for a followed link, "" otherwise.
function M.via(dest, dp)
   if dp and dp.link and not dp.replace then
      return (" (through the symlink %s -> %s)"):format(dest, dp.path)
   end
   return ""
end

--- Parse one line printed by stat_cmd: {type, mode, uid, gid, user, group,
--- size, mtime} (the fields of host:stat and fs.stat: type file, dir, link,
--- fifo, socket, char, block or unknown; user/group nil when the id has no
--- name), or nil.
---@param line string
function M.parse_stat(line)
   local t, mode, uid, gid, user, group, size, mtime =
      (line or ""):match("^([^|]*)|(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|(%d+)|(%d+)$")
   if not t then
      return nil
   end
   return {
      type = TYPES[t] or "unknown",
      mode = tonumber(mode, 8),
      uid = tonumber(uid),
      gid = tonumber(gid),
      user = user ~= "UNKNOWN" and user or nil,
      group = group ~= "UNKNOWN" and group or nil,
      size = tonumber(size),
      mtime = tonumber(mtime),
   }
end

local KINDS = { file = "file", dir = "directory", link = "link", absent = "absent" }

--- A stat type in words: "directory", "file", "link", "absent", and
--- "special file" for the rest (a device, a fifo, a socket).
function M.kind(t)
   return KINDS[t] or "special file"
end

--- A mode as Ansible writes it: 0644, 01777.
function M.mode_str(mode)
   return ("%04o"):format(mode)
end

-- An owner given as a number compares with the uid, a name with the user name.
local function same_id(want, name, id)
   if tostring(want):match("^%d+$") then
      return tonumber(want) == id
   end
   return want == name
end

--- What differs between a stat and the mode/owner/group asked for: a list of
--- {attr, before, after} (empty when nothing does, or when st is nil). A
--- link's mode is never compared (a Linux symlink has none).
---@param st table|nil parse_stat, host:stat or fs.stat result
---@param want {mode?: integer, owner?: string, group?: string}
function M.changes(st, want)
   local out = {}
   if not st then
      return out
   end
   if want.mode and st.type ~= "link" and st.mode & 4095 ~= want.mode then
      out[#out + 1] = { attr = "mode", before = M.mode_str(st.mode & 4095), after = M.mode_str(want.mode) }
   end
   if want.owner and not same_id(want.owner, st.user, st.uid) then
      out[#out + 1] = { attr = "owner", before = st.user or tostring(st.uid), after = want.owner }
   end
   if want.group and not same_id(want.group, st.group, st.gid) then
      out[#out + 1] = { attr = "group", before = st.group or tostring(st.gid), after = want.group }
   end
   return out
end

--- "mode 0644 -> 0600, owner root -> etcd"
function M.describe(changes)
   local parts = {}
   for i, c in ipairs(changes) do
      parts[i] = ("%s %s -> %s"):format(c.attr, c.before, c.after)
   end
   return table.concat(parts, ", ")
end

--- The attribute part of a diff: {before = "mode 0644\n", after = "mode 0600\n"}.
function M.attr_diff(path, changes)
   local b, a = {}, {}
   for _, c in ipairs(changes) do
      b[#b + 1] = ("%s %s\n"):format(c.attr, c.before)
      a[#a + 1] = ("%s %s\n"):format(c.attr, c.after)
   end
   return { path = path, before = table.concat(b), after = table.concat(a) }
end

--- Shell text that sets mode/owner/group on path (those given in want), or
--- nil when none is: chown first, as chown may clear set-id bits the chmod
--- sets. link = true changes a symlink itself (chown -h) and never its mode.
---@param want {mode?: integer, owner?: string, group?: string}
function M.fix_cmd(path, want, link)
   local parts = {}
   if want.owner or want.group then
      parts[#parts + 1] = ("chown %s%s%s -- %s"):format(link and "-h " or "",
         want.owner and q(want.owner) or "", want.group and (":" .. q(want.group)) or "", q(path))
   end
   if want.mode and not link then
      parts[#parts + 1] = ("chmod %o -- %s"):format(want.mode, q(path))
   end
   return #parts > 0 and table.concat(parts, " && ") or nil
end

--- The plan for a file whose content is right (pure): unchanged, or
--- changed only in its attributes ({attrs_only = path}; apply then calls
--- fix). st nil (nothing gathered, in --check before the file exists) keeps.
---@param st table|nil the file's stat
---@param want {mode?: integer, owner?: string, group?: string}
---@param msg string what the module says about the content ("kept")
---@param result? table result fields
function M.keep_plan(path, st, want, msg, result)
   local ch = M.changes(st, want)
   if #ch > 0 then
      return { changed = true, msg = msg .. "; " .. M.describe(ch), attrs_only = path, result = result }
   end
   return { changed = false, msg = msg, result = result }
end

--- The error of a command that exited non-zero: nil, "op: reason
--- (host:path)", code. The reason is the last line of stderr (else stdout);
--- the code ENOENT, EACCES, ENOTDIR or EREMOTE. bare = true (host.lua's
--- own operations) drops the tool's "stat: " prefix and says ENOENT as
--- "No such file or directory"; a module keeps the tool's whole line.
---@param op string "copy", "host.stat"
---@param name string the host's name
---@param r table {stdout, stderr, status}
---@param bare? boolean
function M.failure(op, name, path, r, bare)
   local why = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", ""):match("[^\n]*$")
   local code = "EREMOTE"
   if why:find("No such file", 1, true) then
      code = "ENOENT"
   elseif why:find("Permission denied", 1, true) or why:find("not permitted", 1, true) then
      code = "EACCES"
   elseif why:find("Not a directory", 1, true) then
      code = "ENOTDIR"
   end
   if bare then
      why = code == "ENOENT" and "No such file or directory" or why:gsub("^[%w%-]+: ", "")
   end
   return nil, ("%s: %s (%s:%s)"):format(op, why, name, path), code
end

--- Run a shell command on the host for module `op`: its result, or the
--- failure above for a non-zero exit.
function M.run(host, op, path, cmd)
   local r, err, code = host:exec(cmd)
   if not r then
      return nil, err, code
   end
   if r.status ~= 0 then
      return M.failure(op, host.name, path, r)
   end
   return r
end

--- Give an existing path the mode/owner/group in want (fix_cmd through
--- host:exec, so on a node, under become and on the controller alike):
--- true, or nil, err, code.
function M.fix(host, op, path, want, link)
   local cmd = M.fix_cmd(path, want, link)
   if not cmd then
      return true
   end
   local r, err, code = M.run(host, op, path, cmd)
   return r and true, err, code
end

--- Whether s can be shown as text in a diff (valid UTF-8, no NUL).
function M.is_text(s)
   return not s:find("\0", 1, true) and utf8.len(s) ~= nil
end

--- Whether s holds a private key: such content is never shown in a diff.
function M.looks_secret(s)
   return type(s) == "string" and s:find("-----BEGIN [%w ]*PRIVATE KEY-----") ~= nil
end

--- For gather: whether any of the texts holds a secret the run knows
--- (ctx.contains_secret: the output's redaction, every form of every
--- secret), so that plan, which has no ctx, hides a diff of it whole.
---@param ctx table module context
---@param ... string|nil
function M.holds_secret(ctx, ...)
   for i = 1, select("#", ...) do
      local s = select(i, ...)
      if type(s) == "string" and ctx.contains_secret(s) then
         return true
      end
   end
   return false
end

--- What a diff shows for content it does not load (too large, or a
--- controller file it did not read).
function M.note(size, digest)
   return ("(%d bytes, sha256 %s: not shown)\n"):format(size or 0, digest or "?")
end

--- A content diff of two strings ("" for a file that does not exist): text
--- up to DIFF_MAX as is, otherwise a one-line note; secret = true when
--- either side looks like a private key or `marked` (holds_secret, from
--- gather) says a side holds a secret. Pure.
---@param path string
---@param before string
---@param after string
---@param marked? boolean
function M.content_diff(path, before, after, marked)
   local function show(s)
      if #s > M.DIFF_MAX or not M.is_text(s) then
         return ("(%s, %d bytes: not shown)\n"):format(M.is_text(s) and "large file" or "binary", #s)
      end
      return s
   end
   local secret = marked or M.looks_secret(before) or M.looks_secret(after)
   return { path = path, before = show(before), after = show(after), secret = secret or nil }
end

return M
