--- Local files: the raising facade over etcdrun.core.fs.
return require("etcdrun.raising").wrap(require("etcdrun.core.fs"), "fs")
