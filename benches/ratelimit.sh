#!/usr/bin/env bash
# What the rate limiter adds: GET /api/v1/me (one limit: api) and client_credentials
# (two limits: token-address, token-client) with limits off, counted in memory, and
# counted in Redis (one script call per limit), in the same run.
#   p50 at 1 connection = the latency one request pays; req/s at CONC connections.
# Usage: benches/ratelimit.sh  (env: DURATION=10s CONC=32 ROUNDS=3 REDIS_URL=redis://127.0.0.1:6379)
source "$(dirname "$0")/lib.sh"
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

client=$("$gh" client create --name bench --type confidential --grant client_credentials --scope api --json)
field() { printf '%s' "$client" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
id=$(field client_id) secret=$(field client_secret)
basic="Authorization: Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
printf 'wrk.method = "POST"\nwrk.body = "grant_type=client_credentials"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' > "$work/token.lua"

# p50 URL [wrk args]: the median latency in µs at one connection.
p50_us() {
  local url=$1; shift
  wrk -t1 -c1 -d"$DURATION" --latency "$@" "$url" | awk '$1 == "50%" {
    v = $2; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else { sub(/s$/, "", v); print v * 1000000 } }'
}

run_mode() { # MODE: off | memory | redis
  unset GATEHOUSE_REDIS_URL GATEHOUSE_RATE_LIMIT_REDIS_PREFIX
  local quota=0
  [ "$1" = off ] || quota=4000000000  # counted, never reached
  for limit in TOKEN_PER_CLIENT TOKEN_PER_ADDRESS API; do export "GATEHOUSE_RATE_LIMIT_$limit=$quota"; done
  if [ "$1" = redis ]; then
    export GATEHOUSE_REDIS_URL=$REDIS_URL GATEHOUSE_RATE_LIMIT_REDIS_PREFIX="gatehouse_bench_$$"
  fi
  start_gatehouse
  local token
  token=$(curl -sf -H "$basic" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  for round in $(seq "$ROUNDS"); do
    me_p50[$1]+="$(p50_us "http://127.0.0.1:$PORT/api/v1/me" -H "Authorization: Bearer $token") "
    token_p50[$1]+="$(p50_us "http://127.0.0.1:$PORT/oauth2/token" -s "$work/token.lua" -H "$basic") "
    me_rps[$1]+="$(load "me ($1)" "http://127.0.0.1:$PORT/api/v1/me" -H "Authorization: Bearer $token") "
    token_rps[$1]+="$(load "token ($1)" "http://127.0.0.1:$PORT/oauth2/token" -s "$work/token.lua" -H "$basic") "
  done
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
}

declare -A me_p50 token_p50 me_rps token_rps
for mode in off memory redis; do run_mode "$mode"; done
[ "${GATEHOUSE_RATE_LIMIT_REDIS_PREFIX:-}" ] && redis-cli -u "$REDIS_URL" --scan --pattern "gatehouse_bench_$$:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
med() { printf '%s\n' $1 | median; }
for mode in off memory redis; do
  echo "$mode: me p50=$(med "${me_p50[$mode]}")us req/s=$(med "${me_rps[$mode]}")  token p50=$(med "${token_p50[$mode]}")us req/s=$(med "${token_rps[$mode]}")"
done
awk -v a="$(med "${me_p50[redis]}")" -v b="$(med "${me_p50[off]}")" -v c="$(med "${token_p50[redis]}")" -v d="$(med "${token_p50[off]}")" \
  'BEGIN { printf "added by Redis at p50: me %.0f us (1 limit), token %.0f us (2 limits)\n", a - b, c - d }'
