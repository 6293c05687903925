-- A request with the next unused DPoP proof of a file (one per line; wrk's threads take
-- alternate lines) in the DPoP header. Script args: FILE THREADS METHOD AUTHORIZATION [BODY]
-- (GET /api/v1/me with `DPoP <token>`, or POST /oauth2/token with `Basic …` and a body).
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local proofs, next_one = {}, 1
function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == id then table.insert(proofs, line) end
    n = n + 1
  end
  wrk.method = args[3]
  wrk.headers["Authorization"] = args[4]
  if args[5] then
    wrk.body = args[5]
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

function request()
  local proof = proofs[next_one]
  if proof == nil then error("out of proofs: generate more (PROOFS=)") end
  next_one = next_one + 1
  wrk.headers["DPoP"] = proof
  return wrk.format()
end
