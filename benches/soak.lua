-- wrk script: the soak's mixed load. Each connection repeats a cycle of 20 requests:
-- 8 client_credentials tokens, 4 GET /api/v1/me, 3 GET of one case, 2 first pages of the
-- case list and 3 composite creates (a case, three line items, an email); every
-- LOGIN_EVERY-th request of a thread is a sign-in on /login instead (argon2: a few per
-- second, as people sign in). API calls use the newest access token the token requests
-- got back, so none expires during a long run. Each connection waits DELAY_MS before
-- each request (0: as fast as it can), which sets the rate.
-- Arguments: BASIC TOKEN CASE_ID CASE_BODY LOGIN_COOKIE LOGIN_BODY DELAY_MS LOGIN_EVERY
-- done() prints "kinds token=N me=N case=N list=N create=N login=N" and "unexpected N"
-- (answers of 400 or more; wrk counts them too).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local mix = { "token", "me", "token", "case", "token", "create", "token", "me", "list",
  "token", "case", "create", "token", "me", "token", "list", "case", "token", "me", "create" }

function init(args)
  basic, token, case_id, case_body = args[1], args[2], args[3], args[4]
  login_cookie, login_body = args[5], args[6]
  pause, login_every = tonumber(args[7]), tonumber(args[8])
  n, unexpected = 0, 0
  counts = { token = 0, me = 0, case = 0, list = 0, create = 0, login = 0 }
end

function delay()
  return pause
end

local function kind()
  n = n + 1
  if n % login_every == 0 then
    return "login"
  end
  return mix[n % #mix + 1]
end

function request()
  local k = kind()
  counts[k] = counts[k] + 1
  local bearer = { ["Authorization"] = "Bearer " .. token }
  if k == "token" then
    return wrk.format("POST", "/oauth2/token", {
      ["Authorization"] = basic,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "grant_type=client_credentials")
  elseif k == "me" then
    return wrk.format("GET", "/api/v1/me", bearer)
  elseif k == "case" then
    return wrk.format("GET", "/api/v1/cases/" .. case_id, bearer)
  elseif k == "list" then
    return wrk.format("GET", "/api/v1/cases?limit=20", bearer)
  elseif k == "create" then
    bearer["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/cases", bearer, case_body)
  else
    return wrk.format("POST", "/login", {
      ["Cookie"] = login_cookie,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, login_body)
  end
end

function response(status, headers, body)
  if status >= 400 then
    unexpected = unexpected + 1
    return
  end
  local fresh = body:match('^{"access_token":"([^"]+)"')
  if fresh then
    token = fresh
  end
end

function done(summary, latency, requests)
  local total = { token = 0, me = 0, case = 0, list = 0, create = 0, login = 0 }
  local bad = 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for k, v in pairs(c) do
      total[k] = total[k] + v
    end
    bad = bad + thread:get("unexpected")
  end
  io.write(string.format("kinds token=%d me=%d case=%d list=%d create=%d login=%d\n",
    total.token, total.me, total.case, total.list, total.create, total.login))
  io.write(string.format("unexpected %d\n", bad))
end
