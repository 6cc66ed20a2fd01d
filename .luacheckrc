std = "lua54"
max_line_length = 120
self = false -- methods that ignore self keep the shared host interface
files["spec/"] = { std = "+busted" }
globals = { "etcdrun" }
exclude_files = { "build/", ".lab/" }
