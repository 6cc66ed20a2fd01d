std = "lua54"
max_line_length = 120
self = false -- methods that ignore self keep the shared host interface
files["spec/"] = { std = "+busted" }
globals = { "etcdrun" }
-- playbooks see the DSL as globals (lua/etcdrun/playbook.lua)
local dsl = { "play", "task", "handler", "controller", "barrier", "flush_handlers", "secret", "include" }
files["playbooks/"] = { read_globals = dsl }
files["examples/"] = { read_globals = dsl }
files["spec/fixtures/playbooks/"] = { read_globals = dsl }
files["spec/bench/tasks/"] = { read_globals = dsl }
exclude_files = {
   "build/", ".lab/",
   -- broken on purpose: the specs check that etcdrun reports them
   "spec/fixtures/playbooks/syntax_error.lua", "spec/fixtures/playbooks/undefined_global.lua",
}
