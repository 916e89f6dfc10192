-- wrk: POST /v1/assign with a new visitor each request. The request is
-- written as one string from parts made once per thread (wrk.format per
-- request cost the load generator, on the same two cores, about an eighth
-- of the throughput it measures).
local thread_id = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end
local n = 0
local head, tail
init = function()
  head = "POST /v1/assign HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port ..
    "\r\nContent-Type: application/json\r\nContent-Length: "
  tail = '","attributes":{"device":"mobile"}}'
end
request = function()
  n = n + 1
  local body = '{"visitor_id":"v-' .. (id or 0) .. "-" .. n .. tail
  return head .. #body .. "\r\n\r\n" .. body
end
