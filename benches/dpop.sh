#!/usr/bin/env bash
# DPoP (RFC 9449) under wrk, next to the bearer equivalents, on SQLite, with
# BENCH_POSTGRES_URL on PostgreSQL, and with BENCH_REDIS_URL on SQLite with the spent
# proof ids in Redis (`dpop_replay_store = redis`; the rate limits are off, as in every
# benchmark, so Redis is asked only by the replay check):
#   GET /api/v1/me with a DPoP-bound token and a fresh proof per request, against the same
#     GET with a bearer token (goal: at least half its rate);
#   client_credentials with a proof per request, against plain client_credentials.
# Every proof is new (the server refuses a replay), so they are signed before the load
# (benches/assertions) and the proof lifetime is raised to cover the run. The server's
# CPU per request is read from /proc; `assertions costs` prints the proof's crypto alone,
# so what the jti replay check costs is the rest.
# Usage: benches/dpop.sh   (env: DURATION=10s CONC=32 ROUNDS=3 PROOFS=400000 BENCH_POSTGRES_URL=…
#                          BENCH_REDIS_URL=redis://127.0.0.1:6379)
source "$(dirname "$0")/lib.sh"
PROOFS=${PROOFS:-400000} PG_PORT=${PG_PORT:-18082} REDIS_PORT=${REDIS_PORT:-18083}
signer_and_keys
export GATEHOUSE_DPOP_PROOF_LIFETIME_SECS=3600
printf 'wrk.method = "POST"\nwrk.body = "grant_type=client_credentials"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' > "$work/token.lua"

measure() { # LABEL PID URL [wrk args...]: one round; prints req/s, logs the server's CPU
  local label=$1 pid=$2 url=$3 before after rps
  shift 3
  before=$(cpu_ticks "$pid")
  rps=$(load "$label" "$url" "$@")
  after=$(cpu_ticks "$pid")
  awk -v t=$((after - before)) -v r="$rps" -v d="${DURATION%s}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "  server CPU %.0f%%, %.0f µs per request\n", 100 * t / hz / d, 1e6 * t / hz / (r * d) }' >&2
  echo "$rps"
}

run_case() { # LABEL URL PORT
  local label=$1 url=$2 port=$3 id secret base pid token dpop_token basic
  GATEHOUSE_DATABASE_URL=$url "$gh" migrate >/dev/null
  read -r id secret < <(service_client "$url")
  serve_db "$url" "$port"
  pid=$gh_pid base="http://127.0.0.1:$port"
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  token=$(access_token "$base" "$id" "$secret")
  dpop_token=$(curl -sf -u "$id:$secret" -d grant_type=client_credentials \
    -H "DPoP: $("$signer" dpop "$work/ec.pem" POST "$base/oauth2/token" - 1)" "$base/oauth2/token" |
    python3 -c 'import json, sys; t = json.load(sys.stdin); assert t["token_type"] == "DPoP"; print(t["access_token"])')
  local bearer=() dpop=() plain=() bound=()
  for round in $(seq "$ROUNDS"); do
    bearer+=("$(measure "bearer GET /me ($label)" "$pid" "$base/api/v1/me" -H "Authorization: Bearer $token")")
    "$signer" dpop "$work/ec.pem" GET "$base/api/v1/me" "$dpop_token" "$PROOFS" > "$work/get.txt"
    dpop+=("$(measure "DPoP GET /me ($label)" "$pid" "$base/api/v1/me" -s benches/dpop.lua -- "$work/get.txt" 2 GET "DPoP $dpop_token")")
    plain+=("$(measure "client_credentials ($label)" "$pid" "$base/oauth2/token" -s "$work/token.lua" -H "Authorization: $basic")")
    "$signer" dpop "$work/ec.pem" POST "$base/oauth2/token" - "$PROOFS" > "$work/token.txt"
    bound+=("$(measure "DPoP client_credentials ($label)" "$pid" "$base/oauth2/token" -s benches/dpop.lua -- "$work/token.txt" 2 POST "$basic" grant_type=client_credentials)")
  done
  local b d p q
  b=$(printf '%s\n' "${bearer[@]}" | median) d=$(printf '%s\n' "${dpop[@]}" | median)
  p=$(printf '%s\n' "${plain[@]}" | median) q=$(printf '%s\n' "${bound[@]}" | median)
  echo "$label: GET /me bearer $b, DPoP $d (ratio $(ratio "$d" "$b"), goal >= 0.5); client_credentials plain $p, DPoP $q (ratio $(ratio "$q" "$p"))  (medians of $ROUNDS, $CONC connections, $DURATION)"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

run_case sqlite "sqlite://$work/dpop.db" "$PORT"
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  run_case postgres "$BENCH_POSTGRES_URL" "$PG_PORT"
fi
if [ -n "${BENCH_REDIS_URL:-}" ]; then
  (
    export GATEHOUSE_REDIS_URL=$BENCH_REDIS_URL GATEHOUSE_DPOP_REPLAY_STORE=redis \
           GATEHOUSE_RATE_LIMIT_REDIS_PREFIX="gatehouse_bench_$$"
    run_case "sqlite, proofs in redis" "sqlite://$work/dpop-redis.db" "$REDIS_PORT"
  )
fi
