--- Ansible's listing flags for a loaded playbook: --list-hosts, --list-tasks,
-- --list-tags and --syntax-check print and run nothing (no host is
-- connected to); --start-at-task picks the steps a run skips. The output
-- keeps ansible-playbook's shape, so a reader of one reads the other.
local M = {}

-- A glob (* and ?) as a Lua pattern, anchored.
local function glob(pattern)
   return "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
end

-- Tasks and controller steps (not barriers or flushes): what --list-tasks
-- lists and --start-at-task may name.
local function tasks_of(play)
   local out = {}
   for _, step in ipairs(play.steps) do
      if step.kind == "task" then
         out[#out + 1] = step
      end
   end
   return out
end

--- The steps a run started at the first task named `name` (or matching it
--- as a glob) skips: a set, or nil and a message when no task matches.
---@param pb table a loaded playbook
---@param name string
function M.start_at(pb, name)
   local pat = glob(name)
   local skip = {}
   for _, play in ipairs(pb.plays) do
      for _, step in ipairs(play.steps) do
         if step.kind == "task" and (step.name == name or tostring(step.name):match(pat)) then
            return skip
         end
         skip[step] = true
      end
   end
   return nil, ("--start-at-task: no task of %s is named '%s' (--list-tasks lists them)"):format(pb.file, name)
end

local function tag_list(tags)
   return "[" .. table.concat(tags, ", ") .. "]"
end

local function selected(task, play, opts)
   local tags = {}
   for _, t in ipairs(play.tags) do
      tags[t] = true
   end
   for _, t in ipairs(task.tags) do
      tags[t] = true
   end
   for _, t in ipairs(opts.skip_tags or {}) do
      if tags[t] then
         return false
      end
   end
   if #(opts.tags or {}) == 0 or tags.always then
      return true
   end
   for _, t in ipairs(opts.tags) do
      if tags[t] then
         return true
      end
   end
   return false
end

--- Print what the flags in opts ask for. inv is needed for --list-hosts only.
---@param pb table a loaded playbook
---@param opts table the parsed options (list_hosts, list_tasks, list_tags, tags, skip_tags, limit)
---@param inv table|nil an etcdrun.inventory
---@param write fun(s: string)
---@return integer exit code
function M.print(pb, opts, inv, write)
   write(("\nplaybook: %s\n"):format(pb.file))
   if not (opts.list_hosts or opts.list_tasks or opts.list_tags) then
      return 0 -- --syntax-check: it loaded, and loading checks everything
   end
   for i, play in ipairs(pb.plays) do
      local pattern = type(play.hosts) == "table" and table.concat(play.hosts, ",") or play.hosts
      write(("\n  play #%d (%s): %s\tTAGS: %s\n"):format(i, pattern, play.name, tag_list(play.tags)))
      if opts.list_hosts then
         local specs, err = inv:hosts(play.hosts, opts.limit)
         if not specs then
            io.stderr:write(("etcdrun: play '%s': %s\n"):format(play.name, err))
            return 2
         end
         write(("    pattern: ['%s']\n    hosts (%d):\n"):format(pattern, #specs))
         for _, spec in ipairs(specs) do
            write(("      %s\n"):format(spec.name))
         end
      end
      if opts.list_tags then
         local seen, all = {}, {}
         for _, t in ipairs(play.tags) do -- a play's tags are its tasks' too, as in Ansible
            seen[t], all[#all + 1] = true, t
         end
         for _, task in ipairs(tasks_of(play)) do
            for _, t in ipairs(task.tags) do
               if not seen[t] then
                  seen[t], all[#all + 1] = true, t
               end
            end
         end
         table.sort(all)
         write(("      TASK TAGS: %s\n"):format(tag_list(all)))
      end
      if opts.list_tasks then
         write("    tasks:\n")
         for _, task in ipairs(tasks_of(play)) do
            if selected(task, play, opts) then
               write(("      %s%s\tTAGS: %s\n"):format(task.name, task.barrier and " (controller)" or "",
                  tag_list(task.tags)))
            end
         end
      end
   end
   return 0
end

return M
