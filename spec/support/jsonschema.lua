--- A validator for the small part of JSON Schema docs/events.md uses:
-- type, enum, required, properties, items, additionalProperties, $ref
-- (to a name under "definitions"). Returns true or nil and the path of the
-- first violation.
local M = {}

local function type_ok(t, v)
   if t == "object" then
      return type(v) == "table"
   elseif t == "array" then
      return type(v) == "table"
   elseif t == "string" then
      return type(v) == "string"
   elseif t == "integer" then
      return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v))
   elseif t == "number" then
      return type(v) == "number"
   elseif t == "boolean" then
      return type(v) == "boolean"
   end
   return false
end

local function check(schema, v, path, defs)
   if schema["$ref"] then
      return check(defs[schema["$ref"]], v, path, defs)
   end
   if schema.type and not type_ok(schema.type, v) then
      return nil, ("%s: expected %s, got %s"):format(path, schema.type, type(v))
   end
   if schema.enum then
      local found = false
      for _, e in ipairs(schema.enum) do
         if e == v then
            found = true
         end
      end
      if not found then
         return nil, ("%s: %s is not one of the allowed values"):format(path, tostring(v))
      end
   end
   for _, k in ipairs(schema.required or {}) do
      if type(v) ~= "table" or v[k] == nil then
         return nil, ("%s: missing required field '%s'"):format(path, k)
      end
   end
   if type(v) == "table" then
      for k, sub in pairs(schema.properties or {}) do
         if v[k] ~= nil then
            local ok, err = check(sub, v[k], path .. "." .. k, defs)
            if not ok then
               return nil, err
            end
         end
      end
      if schema.items then
         for i, x in ipairs(v) do
            local ok, err = check(schema.items, x, ("%s[%d]"):format(path, i), defs)
            if not ok then
               return nil, err
            end
         end
      end
      if schema.additionalProperties then
         for k, x in pairs(v) do
            if not (schema.properties and schema.properties[k]) then
               local ok, err = check(schema.additionalProperties, x, path .. "." .. tostring(k), defs)
               if not ok then
                  return nil, err
               end
            end
         end
      end
   end
   return true
end

--- Validate one event against the events schema document.
---@param doc table the decoded schema ({definitions = {...}})
---@param event table a decoded event
function M.validate_event(doc, event)
   local defs = doc.definitions
   local ok, err = check(defs.common, event, "event", defs)
   if not ok then
      return nil, err
   end
   local specific = defs[event.event]
   if not specific then
      return nil, "event: no schema for " .. tostring(event.event)
   end
   return check(specific, event, "event(" .. event.event .. ")", defs)
end

--- The JSON schema block of docs/events.md, decoded.
function M.load_doc(path)
   local f = assert(io.open(path, "r"))
   local text = f:read("a")
   f:close()
   local block = assert(text:match("```json\n(.-)\n```"), "no ```json block in " .. path)
   return require("cjson").decode(block)
end

return M
