-- wrk: POST /v1/events, durable, `batch` events per request (the script's
-- argument after `--`, default 1), each event a new id of a new visitor.
-- Requests are built from parts made once per thread, as in assign.lua.
local thread_id = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end
local n, batch, head, run = 0, 1, nil, nil
init = function(args)
  batch = tonumber(args[1]) or 1
  head = "POST /v1/events HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
    "\r\nContent-Type: application/json\r\nContent-Length: "
  -- Ids stay new if the script runs again against the same data.
  run = tostring(os.time())
end
local function event(key)
  return '{"id":"e-' .. key .. '","visitor_id":"v-' .. key .. '","name":"order","value":20.5}'
end
request = function()
  n = n + 1
  local prefix = run .. "-" .. (id or 0) .. "-" .. n
  local body
  if batch == 1 then
    body = event(prefix)
  else
    local items = {}
    for k = 1, batch do
      items[k] = event(prefix .. "-" .. k)
    end
    body = "[" .. table.concat(items, ",") .. "]"
  end
  return head .. #body .. "\r\n\r\n" .. body
end
