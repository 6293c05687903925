-- POST /oauth2/token with the JWT bearer grant: each request presents the next unused
-- assertion of a file (one per line); wrk's threads take alternate lines.
-- Script args: FILE THREADS
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local assertions, next_one = {}, 1
function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == id then table.insert(assertions, line) end
    n = n + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local assertion = assertions[next_one]
  if assertion == nil then error("out of assertions: generate more (ASSERTIONS=)") end
  next_one = next_one + 1
  return wrk.format(nil, nil, nil,
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" .. assertion)
end
