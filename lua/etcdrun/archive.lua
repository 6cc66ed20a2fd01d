--- Archives: the raising facade over etcdrun.core.archive.
--
-- archive.list(path, {name=}) -> { {path=, type=, size=, mode=, mtime=, link=?}, ... }
-- archive.extract(path, dest, {strip_components=0, include={...}, mode=, name=})
--    -> { paths relative to dest }
-- Both raise "archive.<fn>: <detail> (<archive>)" on failure; the
-- non-raising originals (nil, err, code) are in archive.try. Extraction
-- refuses (EUNSAFE) any entry that would land outside dest; see the
-- header of runtime/archive.c for the exact rules.
return require("etcdrun.raising").wrap(require("etcdrun.core.archive"), "archive")
