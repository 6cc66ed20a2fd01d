--- The per-task benchmark's baseline: the first task of site.lua alone, so
-- (time(site) - time(one)) / 49 is the cost of one more task over sessions
-- already open, without start-up, connecting and the recap.
return {
   play "per-task benchmark, baseline" {
      hosts = "etcd",
      tasks = {
         task "directory 01" { file = { path = "/opt/etcdrun-bench/d01", state = "directory", mode = "0755" } },
      },
   },
}
