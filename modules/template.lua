-- template: render a template (etcdrun.template, Jinja2's syntax, see
-- runtime/template.c) on the controller with the host's variables, then
-- put the result on the host exactly as the copy module does (sha256
-- compare, atomic write, mode/owner/group, diff of rendered vs current,
-- and the same `follow` rule for a symlink at dest).
--
-- Variables: the host's (ctx.template_vars(source) from the runner: a plain
-- table with facts when the template mentions them), then `vars` over them.
-- Rendering happens in check, so a template error fails the task in
-- --check mode too, with the template:line:column message.
local module = require("etcdrun.module")
local template = require("etcdrun.template")

local M = {
   examples = [[task "etcd config" { template = { src = "templates/etcd.conf.yaml.j2",
   dest = "/etc/etcd/etcd.conf.yaml", mode = "0644" }, notify = "restart etcd" }]],
   doc = "Render a Jinja2-style template with the host's variables and put the result "
      .. "on the host like copy (only when it differs, atomically).",
   args = {
      src = { type = "path", doc = "template file on the controller, relative to the playbook's directory" },
      source = { type = "string", doc = "the template text itself, instead of src" },
      dest = { type = "path", required = true, absolute = true, doc = "file on the host" },
      mode = { type = "mode", doc = "octal string, e.g. '0600'" },
      owner = { type = "string", doc = "user name or uid" },
      group = { type = "string", doc = "group name or gid" },
      vars = { type = "table", doc = "extra variables, over the host's (ctx.vars)" },
      notify_ignore = { type = "list", elements = "string",
         doc = "Lua patterns of lines that are read only at a first start (etcd's initial-cluster): when only"
            .. " such lines changed, the file is written and the task is changed, but it notifies no handler" },
      follow = { type = "boolean", default = true,
         doc = "a symlink at dest: true writes the file it points to and keeps the link (a dangling "
            .. "link fails); false replaces the link with a regular file" },
   },
   exclusive = { { "src", "source" } },
   one_of = { { "src", "source" } },
}

local copy -- the copy module, loaded on first use

local function render(ctx, args)
   local source, name = args.source, "<source>"
   if args.src then
      name = args.src
      local err, code
      source, err, code = ctx.controller:read(ctx.path(args.src))
      if not source then
         return nil, ("template: cannot read %s: %s"):format(args.src, err), code
      end
   end
   -- The engine looks variables up raw, so it needs a plain table: the
   -- runner's ctx.template_vars(source) builds one (facts included when the
   -- template mentions them); ctx.vars is a lazy view whose pairs() sees
   -- nothing, and is copied only when it is plain already (module specs).
   local vars = {}
   local base = ctx.template_vars and ctx.template_vars(source) or ctx.vars or {}
   for k, v in pairs(base) do
      vars[k] = v
   end
   for k, v in pairs(args.vars or {}) do
      vars[k] = v
   end
   return template.try.render(source, vars, { name = name })
end

-- The copy module's arguments for the rendered content.
local function as_copy(args, content)
   return { dest = args.dest, content = content, mode = args.mode, owner = args.owner, group = args.group,
      force = true, follow = args.follow }
end

--- Render (a template error fails here, in --check too), then gather as
--- copy does for the result: copy's state.
function M.gather(ctx, args)
   local out, err, code = render(ctx, args)
   if not out then
      return nil, err, code
   end
   copy = copy or module.load("copy")
   local state, gerr, gcode = copy.gather(ctx, as_copy(args, out))
   if state and args.notify_ignore and state.st and state.st.type == "file" and state.st.digest ~= state.src.digest then
      state.old_text, state.new_text = ctx.host:read(args.dest), out
   end
   return state, gerr, gcode
end

-- The text without the lines notify_ignore names.
local function significant(text, patterns)
   local keep = {}
   for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      local skip = false
      for _, p in ipairs(patterns) do
         skip = skip or line:find(p) ~= nil
      end
      keep[#keep + 1] = not skip and line or nil
   end
   return table.concat(keep, "\n")
end

--- copy's decision for the rendered content (state.src holds it).
function M.plan(state, args, opts)
   copy = copy or module.load("copy")
   local p = copy.plan(state, as_copy(args), opts)
   if p.changed and state.old_text and significant(state.old_text, args.notify_ignore)
      == significant(state.new_text, args.notify_ignore) then
      p.result = p.result or {}
      p.result.notify = false
      p.msg = (p.msg or "") .. " (only lines read at a first start changed: no handler notified)"
   end
   return p
end

function M.apply(ctx, args, plan)
   return copy.apply(ctx, as_copy(args), plan)
end

return M
