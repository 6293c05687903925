-- wrk script: the refresh grant under load, with rotation. Each thread starts with its
-- share of the refresh tokens in the file given as the first argument; every request
-- takes a token out, every answer puts its successor back, so no token is used twice.
-- Start with more tokens than connections: wrk occasionally asks for a request whose
-- answer it never hands to response(), and the spares keep every connection going.
-- (Headers such as Authorization come from wrk's -H.)
local threads = {}
local tokens = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

function init(args)
  local file = assert(io.open(args[1]), "a token file")
  local count = tonumber(args[2])
  local n = 0
  for line in file:lines() do
    if line ~= "" then
      n = n + 1
      if (n - 1) % count == index - 1 then
        table.insert(tokens, line)
      end
    end
  end
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local token = table.remove(tokens) or "exhausted"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local next_token = body:match('"refresh_token":"([^"]+)"')
  if next_token then
    table.insert(tokens, next_token)
  end
end
