-- wrk script: POST /api/v1/auth/login with a wrong password, as a guessing
-- flood would; one unknown email per wrk thread (an unknown email costs the
-- same argon2id verification as a known one).
-- Usage: wrk -t1 -c64 -d10s -s bench/wrk/login_flood.lua http://127.0.0.1:PORT
local body = ""

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  body = string.format('{"email":"guess%x@bench.example.com","password":"wrong-password"}',
                       math.random(0, 0x7fffffff))
end

function request()
  return wrk.format("POST", "/api/v1/auth/login", {["Content-Type"] = "application/json"}, body)
end
