-- wrk script: POST /api/v1/users with a unique email per request.
-- Usage: TOKEN=... wrk -t1 -c32 -d10s -s bench/wrk/post_users.lua http://127.0.0.1:PORT
local counter = 0
local prefix = ""

function init(args)
  -- A per-thread random prefix keeps emails unique across threads and runs.
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  prefix = string.format("%x%x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function request()
  counter = counter + 1
  local body = string.format('{"email":"b%s-%d@bench.example.com","full_name":"Bench Buyer"}',
                             prefix, counter)
  return wrk.format("POST", "/api/v1/users", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms  p99 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
