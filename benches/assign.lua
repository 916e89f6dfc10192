-- wrk: POST /v1/assign with a new visitor each request.
local thread_id = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"visitor_id":"v-%d-%d","attributes":{"device":"mobile"}}', id or 0, n)
  return wrk.format("POST", "/v1/assign", { ["Content-Type"] = "application/json" }, body)
end
