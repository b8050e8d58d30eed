-- wrk script: every request distinct, so that the hub journals each one (a repeated callback
-- is a provider's retry, acknowledged without a write).
--
-- wrk -s unique.lua URL -- METHOD PATH TEMPLATE PREFIX CONTENT_TYPE
--   TEMPLATE is the query string (GET) or the body (POST) with "{id}" where the unique id goes;
--   ids are PREFIX followed by a counter (PREFIX differs per run and per wrk thread).
-- The benchmark appends `function delay() ... end` to pace a run (wrk has no rate option).

local method, path, head, tail, prefix, headers
local counter = 0
local threads = 0
pace_ms = 0
tid = 1

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  method = args[1]
  path = args[2]
  local template = args[3]
  local at = string.find(template, "{id}", 1, true)
  head = string.sub(template, 1, at - 1)
  tail = string.sub(template, at + 4)
  prefix = args[4] .. "t" .. tostring(tid) .. "n"
  headers = {}
  if args[5] ~= nil and args[5] ~= "" then
    headers["Content-Type"] = args[5]
  end
  pace_ms = tonumber(args[6] or "0")
end

function request()
  counter = counter + 1
  local unique = head .. prefix .. counter .. tail
  if method == "GET" then
    return wrk.format("GET", path .. "?" .. unique, headers, nil)
  end
  return wrk.format(method, path, headers, unique)
end
