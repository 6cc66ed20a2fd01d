-- lineinfile: one line present in (or absent from) a text file, as
-- Ansible's lineinfile does, with Lua patterns where Ansible takes Python
-- regular expressions (`regexp`, `insertafter`, `insertbefore`): `^export
-- PATH=` reads the same in both, but magic characters are escaped with %
-- (%. %$ %( %-), not a backslash. `search_string` matches literally.
--
-- present: the LAST line matching regexp/search_string is replaced by
-- `line`; without a match (or without regexp/search_string) the line is
-- added unless it is already there, after the last line matching
-- `insertafter` (default: at the end), or before the last line matching
-- `insertbefore`; BOF/EOF are the file's start and end; `firstmatch` uses
-- the first match instead. absent: every matching line (or every line equal
-- to `line`) is removed.
--
-- One command reads the file and its stat; the new content is written
-- atomically (host:write), keeping the file's mode and owner unless given.
-- A symlink at path is followed (the file it points to is edited, the link
-- stays), as Ansible's lineinfile does; see fileattrs.dest_plan.
local fa = require("etcdrun.fileattrs")

local M = {
   examples = [[task "no swap in fstab" { lineinfile = { path = "/etc/fstab", regexp = "^[^#].*%sswap%s",
   state = "absent" } }]],
   doc = "Make sure a line is in a text file (replacing the line a pattern matches) or is not.",
   args = {
      path = { type = "path", required = true, absolute = true, doc = "the file on the host" },
      line = { type = "string", doc = "the line (without newline); required for state=present" },
      regexp = { type = "string", doc = "Lua pattern: the line to replace (present) or lines to remove (absent)" },
      search_string = { type = "string", doc = "like regexp, but a literal string" },
      state = { type = "string", choices = { "present", "absent" }, default = "present", doc = "present or absent" },
      insertafter = { type = "string", doc = "EOF (default) or a Lua pattern: add after its last match" },
      insertbefore = { type = "string", doc = "BOF or a Lua pattern: add before its last match" },
      firstmatch = { type = "boolean", default = false, doc = "insertafter/insertbefore use the first match" },
      create = { type = "boolean", default = false, doc = "create the file when missing (state=present)" },
      mode = { type = "mode", doc = "octal string, e.g. '0644'" },
      owner = { type = "string", doc = "user name or uid" },
      group = { type = "string", doc = "group name or gid" },
      follow = { type = "boolean", default = true,
         doc = "a symlink at path: true edits the file it points to and keeps the link (a dangling "
            .. "link fails); false fails, as a link has no lines to edit" },
   },
   exclusive = { { "regexp", "search_string" }, { "insertafter", "insertbefore" } },
   required_if = { { "state", "present", { "line" } } },
}

-- A matcher for a Lua pattern or a literal. Lua reports a malformed
-- pattern only while matching, so the error is raised with the argument's
-- name and caught in check, before anything is written.
local function matcher(pattern, literal, what)
   if literal then
      return function(l)
         return l:find(literal, 1, true) ~= nil
      end
   end
   if not pattern then
      return nil
   end
   return function(l)
      local ok, r = pcall(string.find, l, pattern)
      if not ok then
         error(("lineinfile: %s is not a valid Lua pattern: %s"):format(what, tostring(r):gsub("^.-:%d+: ", "")), 0)
      end
      return r ~= nil
   end
end

local function find(lines, match, first)
   local found
   for i, l in ipairs(lines) do
      if match(l) then
         if first then
            return i
         end
         found = i
      end
   end
   return found
end

local function split(content)
   local lines = {}
   for l in content:gmatch("([^\n]*)\n") do
      lines[#lines + 1] = l
   end
   local rest = content:match("([^\n]+)$")
   if rest then
      lines[#lines + 1] = rest -- a last line without newline gets one
   end
   return lines
end

-- The new lines, and a word about what changed (nil: nothing did).
local function edit(lines, args)
   local match = matcher(args.regexp, args.search_string, "regexp")
   if args.state == "absent" then
      match = match or function(l)
         return l == args.line
      end
      local out = {}
      for _, l in ipairs(lines) do
         if not match(l) then
            out[#out + 1] = l
         end
      end
      local n = #lines - #out
      return out, n > 0 and ("%d line%s removed"):format(n, n == 1 and "" or "s") or nil
   end
   local i = match and find(lines, match)
   if i then
      if lines[i] == args.line then
         return lines
      end
      lines[i] = args.line
      return lines, "line replaced"
   end
   for _, l in ipairs(lines) do
      if l == args.line then
         return lines
      end
   end
   local at = #lines + 1
   local where, before = args.insertafter, false
   if args.insertbefore then
      where, before = args.insertbefore, true
   end
   if where == "BOF" and before then
      at = 1
   elseif where and where ~= "EOF" then
      local m = matcher(where, nil, before and "insertbefore" or "insertafter")
      local j = find(lines, m, args.firstmatch)
      if j then
         at = before and j or j + 1
      end
   end
   table.insert(lines, at, args.line)
   return lines, "line added"
end

--- In one exec: the symlink at path (if any), then the stat and content
--- of the file to edit (st nil: there is none), and whether the content or
--- the line holds a secret the run knows (its diff is then hidden).
function M.gather(ctx, args)
   local host, path = ctx.host, args.path
   local body = ("if [ -e \"$p\" ]; then %s && if [ -f \"$p\" ]; then cat -- \"$p\"; fi; else echo absent; fi")
      :format(fa.stat_p())
   local r, err, code = fa.run(host, "lineinfile", path, fa.dest_cmd(path, args.follow, body))
   if not r then
      return nil, err, code
   end
   local link, out = fa.split_dest(r.stdout)
   local first, content = out:match("^([^\n]*)\n?(.*)$")
   local state = { link = link }
   if first ~= "" and first ~= "absent" then
      state.st = fa.parse_stat(first) or { type = "unknown" }
      state.content = content
   end
   state.secret = fa.holds_secret(ctx, state.content, args.line)
   return state
end

--- The edit (pure): the new content, its diff, and attributes to fix.
function M.plan(state, args, opts)
   local host, path = opts.host, args.path
   if args.state == "absent" and not (args.regexp or args.search_string or args.line) then
      return { failed = true, msg = "lineinfile: state=absent needs regexp, search_string or line" }
   end
   local dp, why = fa.dest_plan(path, state.link, args.follow)
   if not dp then
      return { failed = true, msg = ("lineinfile: %s:%s %s"):format(host, path, why) }
   elseif dp.replace then
      return { failed = true, msg = ("lineinfile: %s:%s is a symlink to %s and follow=false: a link has no "
         .. "lines to edit (follow=true edits the file it points to)"):format(host, path, dp.link.target) }
   end
   local via = fa.via(path, dp)
   local st, content = state.st, state.content or ""
   if st and st.type ~= "file" then
      return { failed = true, msg = ("lineinfile: %s:%s is not a regular file%s"):format(host, path, via) }
   elseif not st and args.state == "absent" then
      return { changed = false, msg = "file does not exist" }
   elseif not st and not args.create then
      return { failed = true,
         msg = ("lineinfile: %s:%s does not exist (create=true creates it)"):format(host, path) }
   end
   local ok, lines, what = pcall(edit, split(content), args)
   if not ok then
      return { failed = true, msg = tostring(lines) }
   end
   local new = #lines > 0 and (table.concat(lines, "\n") .. "\n") or ""
   -- a file is rewritten only for an edit: a missing final newline alone is no reason
   local write = not st or what ~= nil
   local attrs = fa.changes(st, args)
   if not write and #attrs == 0 then
      return { changed = false, msg = "unchanged" .. via }
   end
   local msgs = { write and ((st and "" or "file created, ") .. what) or nil }
   if #attrs > 0 then
      msgs[#msgs + 1] = fa.describe(attrs)
   end
   local msg = table.concat(msgs, ", ") .. via
   local diff = write and fa.content_diff(dp.path, content, new, state.secret) or fa.attr_diff(dp.path, attrs)
   return { changed = true, msg = msg, diff = diff, content = write and new, created = not st, path = dp.path }
end

function M.apply(ctx, args, plan)
   local ok, err, code
   local path = plan.path -- the file a symlink at args.path points to
   if plan.content then
      ok, err, code = ctx.host:write(path, plan.content,
         { mode = args.mode or (plan.created and 420 or nil), owner = args.owner, group = args.group })
   else
      ok, err, code = fa.fix(ctx.host, "lineinfile", path, args)
   end
   if not ok then
      return nil, err, code
   end
   return { msg = plan.msg }
end

return M
