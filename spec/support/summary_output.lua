-- busted output handler: busted's plain terminal output, then a closing
-- line `N passed, N failed, N skipped` (errors count as failures). When
-- ETCDRUN_SPEC_COUNTS names a file, the counts are also appended to it so
-- spec/run-all.sh can add up several runs and print the one line CI reads.
return function(options)
   local busted = require("busted")
   local handler = require("busted.outputHandlers.plainTerminal")(options)

   local function on_suite_end()
      local passed = handler.successesCount
      local failed = handler.failuresCount + handler.errorsCount
      local skipped = handler.pendingsCount
      local line = ("%d passed, %d failed, %d skipped"):format(passed, failed, skipped)
      local path = os.getenv("ETCDRUN_SPEC_COUNTS")
      if path and path ~= "" then
         local f = assert(io.open(path, "a"))
         f:write(("%d %d %d\n"):format(passed, failed, skipped))
         f:close()
      else
         io.write(line, "\n")
      end
      return nil, true
   end

   busted.subscribe({ "suite", "end" }, on_suite_end, { priority = 2 })
   return handler
end
