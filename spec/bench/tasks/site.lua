--- The per-task benchmark (issue 5): 50 tasks that, once converged, find
-- their state already right: 20 directories, 15 files with given content
-- (one of them a unit file), 10 templates, 4 lines in a file, 1 unit enabled
-- and started. spec/bench/tasks/site.yml is the same playbook for Ansible,
-- task for task; spec/bench/tasks.lua runs and times both.
--
--   etcdrun -i hosts spec/bench/tasks/site.lua
--
-- one.lua holds only the first task: the cost of starting, connecting and
-- the recap, which the per-task figure leaves out.
local ROOT = "/opt/etcdrun-bench"

local function dir(i)
   return ("%s/d%02d"):format(ROOT, i)
end

local tasks = {}
local function add(t)
   tasks[#tasks + 1] = t
end

for i = 1, 20 do
   add(task(("directory %02d"):format(i)) {
      file = { path = dir(i), state = "directory", mode = "0755" },
   })
end
for i = 1, 14 do
   add(task(("copy %02d"):format(i)) {
      copy = {
         dest = ("%s/copy%02d.conf"):format(dir(i), i),
         content = ("# per-task benchmark, file %d\nkey = value%d\n"):format(i, i),
         mode = "0644",
      },
   })
end
add(task "unit file" {
   copy = { src = "files/etcdrun-bench.service", dest = "/etc/systemd/system/etcdrun-bench.service", mode = "0644" },
})
for i = 1, 10 do
   add(task(("template %02d"):format(i)) {
      template = {
         src = "templates/bench.conf.j2",
         dest = ("%s/tmpl%02d.conf"):format(dir(i), i),
         mode = "0644",
         vars = { n = i },
      },
   })
end
for i = 1, 4 do
   add(task(("line %d"):format(i)) {
      lineinfile = { path = ROOT .. "/lines.conf", line = ("option%d = on"):format(i), create = true },
   })
end
add(task "unit enabled and started" {
   systemd = { name = "etcdrun-bench", enabled = true, state = "started" },
})
assert(#tasks == 50)

return {
   play "per-task benchmark" {
      hosts = "etcd",
      vars = { peers = { "alpha", "beta", "gamma" } },
      tasks = tasks,
   },
}
