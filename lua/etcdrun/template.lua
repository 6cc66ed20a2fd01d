--- Template rendering (a small Jinja2-compatible subset; see
-- runtime/template.c for the language and the choices made where Jinja
-- and Lua differ). Raises on failure with the core's message, which names
-- template:line:column, e.g.
--   template.render: etcd.conf.yaml.j2:3:14: undefined variable 'foo'
-- Use `.try.render` for the non-raising `nil, err, "ETEMPLATE"` form.
---@class etcdrun.template
---@field render fun(source: string, vars: table, opts?: {name?: string}): string
---@field try table the core functions, returning nil, err, code on failure
return require("etcdrun.raising").wrap(require("etcdrun.core.template"), "template")
