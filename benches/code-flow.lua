-- wrk script: the authorization-code flow under load, one code redeemed per code issued.
-- Each thread keeps a pool of codes: an answer from the authorization endpoint (a 302 to
-- the redirect URI) puts its code in; a request takes one out and redeems it at the token
-- endpoint, or, with the pool empty, asks the authorization endpoint for another. No code
-- is presented twice. Arguments: AUTHORIZE_PATH COOKIE BASIC REDIRECT_URI.
-- done() prints "redeemed N in S s" and "unexpected N": the script, not wrk's req/s (which
-- counts both halves), gives the redemption rate.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  authorize_path, cookie, basic, redirect = args[1], args[2], args[3], args[4]
  codes, redeemed, unexpected = {}, 0, 0
end

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", "/oauth2/token", {
      ["Authorization"] = basic,
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "grant_type=authorization_code&code=" .. escape(code) .. "&redirect_uri=" .. escape(redirect))
  end
  return wrk.format("GET", authorize_path, { ["Cookie"] = cookie })
end

function response(status, headers, body)
  if status == 302 then
    local location = headers["Location"] or headers["location"] or ""
    local code = location:match("[?&]code=([^&]+)")
    if code then
      table.insert(codes, (code:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)))
      return
    end
  elseif status == 200 and body:find('"id_token"', 1, true) then
    redeemed = redeemed + 1
    return
  end
  unexpected = unexpected + 1
end

function done(summary, latency, requests)
  local total, bad = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("redeemed")
    bad = bad + thread:get("unexpected")
  end
  io.write(string.format("redeemed %d in %.3f s\nunexpected %d\n", total, summary.duration / 1e6, bad))
end
