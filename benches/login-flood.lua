-- wrk script: wrong-password sign-ins. The CSRF cookie and token come from the first two
-- arguments (one browser's pair is valid for every request); the third, when "random",
-- makes every attempt name a different account, so that no account lockout stops the
-- argon2 work (the worst case; the per-address limit is raised for it by the caller).
local cookie, csrf, mode

function init(args)
  cookie, csrf, mode = args[1], args[2], args[3]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Cookie"] = cookie
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end

function request()
  local user = "flood"
  if mode == "random" then
    user = "flood" .. math.random(1, 1000000000)
  end
  return wrk.format(nil, nil, nil,
    "username=" .. user .. "&password=wrong-password&csrf_token=" .. csrf)
end
