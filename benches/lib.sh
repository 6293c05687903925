#!/usr/bin/env bash
# Shared helpers of the load scripts in this folder. Source it; do not run it.
# Everything binds 127.0.0.1; every process started is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${DURATION:-10s} CONC=${CONC:-32} ROUNDS=${ROUNDS:-3} LOG=${LOG:-info}
PORT=${PORT:-18080} FLOOR_PORT=${FLOOR_PORT:-18081}

pids=()
work=$(mktemp -d)
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
fi

# BENCH_BIN=PATH runs that binary instead of building this checkout (a build of an
# earlier commit, for a before-and-after comparison).
if [ -n "${BENCH_BIN:-}" ]; then
  gh=$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")
  [ -x "$gh" ] || { echo "BENCH_BIN=$BENCH_BIN is not an executable" >&2; exit 2; }
else
  echo "building (release)" >&2
  cargo build --release --quiet
  gh="$PWD/target/release/gatehouse"
fi
(cd benches/http-floor && CARGO_TARGET_DIR="$PWD/../../target/http-floor" cargo build --release --quiet)
floor="$PWD/target/http-floor/release/http-floor"

export GATEHOUSE_DATABASE_URL="sqlite://$work/bench.db" GATEHOUSE_LISTEN="127.0.0.1:$PORT" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 \
       GATEHOUSE_LOG=$LOG GATEHOUSE_DEMO=false
# Load from one address and one client is what a rate limit exists to stop: the benchmarks
# measure the server without them (benches/ratelimit.sh measures the limiter itself).
for limit in TOKEN_PER_CLIENT TOKEN_PER_ADDRESS DEVICE_PER_CLIENT DEVICE_PER_ADDRESS \
             LOGIN_PER_ADDRESS ACTIVATE_PER_ADDRESS API; do
  export "GATEHOUSE_RATE_LIMIT_$limit=${RATE_LIMIT:-0}"
done
"$gh" migrate >/dev/null

now_ms() { date +%s%3N; }
wait_ready() { # URL TIMEOUT_S
  local end=$(( $(now_ms) + $2 * 1000 ))
  until curl -sf -o /dev/null "$1"; do
    [ "$(now_ms)" -lt "$end" ] || { echo "timed out waiting for $1" >&2; return 1; }
    sleep 0.002
  done
}

start_gatehouse() { # sets gh_pid
  "$gh" serve >/dev/null 2>&1 &
  gh_pid=$!; pids+=("$gh_pid")
  wait_ready "http://127.0.0.1:$PORT/readyz" 10
}

# service_client URL [SCOPE...]: registers a confidential client_credentials client (scope
# api unless others are named) in the database at URL; prints its id and secret.
service_client() {
  local url=$1 scopes=() s
  shift
  for s in "${@:-api}"; do scopes+=(--scope "$s"); done
  GATEHOUSE_DATABASE_URL=$url "$gh" client create --name bench --type confidential \
    --grant client_credentials "${scopes[@]}" --json |
    python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}

# access_token BASE ID SECRET: a client_credentials access token from the server at BASE
access_token() {
  curl -sf -u "$2:$3" -d grant_type=client_credentials "$1/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# code_client URL USERNAME [client create args...]: registers a confidential client for
# the authorization-code flow (redirect https://rp.example/cb; scopes openid,
# offline_access and api) that USERNAME has pre-authorized; prints its id and secret.
code_client() {
  local url=$1 user=$2
  shift 2
  GATEHOUSE_DATABASE_URL=$url "$gh" client create --name code-flow --type confidential \
    --grant authorization_code --grant refresh_token --redirect-uri https://rp.example/cb \
    --scope openid --scope offline_access --scope api --pre-authorize "$user" "$@" --json |
    python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}

# code_flow PORT ID SECRET USERNAME PASSWORD: USERNAME signs in, then benches/code-flow.lua
# asks for codes and redeems them for DURATION; prints "redemptions/s p50 p99" (the
# latencies are of both halves, authorization and token requests).
code_flow() {
  local cookie query out unexpected
  cookie=$(python3 benches/session_cookie.py "http://127.0.0.1:$1" "$4" "$5")
  query="response_type=code&client_id=$2&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid%20offline_access%20api"
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency -s benches/code-flow.lua "http://127.0.0.1:$1" -- \
    "/oauth2/authorize?$query" "$cookie" "Basic $(printf '%s:%s' "$2" "$3" | base64 -w0)" https://rp.example/cb)
  unexpected=$(echo "$out" | awk '/^unexpected/ {print $2}')
  if [ "$unexpected" != 0 ]; then echo "code flow: $unexpected unexpected answers" >&2; exit 1; fi
  echo "$out" | awk '/^redeemed/ {rate = $2 / $4} $1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
    END {printf "%.0f %s %s\n", rate, p50, p99}'
}

# case_body: the JSON of benches/cases.lua's composite create (a case, three line items,
# one notification).
case_body() {
  sed -n '/\[\[/,/\]\]/p' benches/cases.lua | sed 's/^wrk.body = \[\[//; s/\]\]$//'
}

# serve_db URL PORT: Gatehouse on the database at URL (other settings from the
# environment); sets gh_pid.
serve_db() {
  GATEHOUSE_DATABASE_URL=$1 GATEHOUSE_LISTEN="127.0.0.1:$2" "$gh" serve >/dev/null 2>&1 &
  gh_pid=$!; pids+=("$gh_pid")
  wait_ready "http://127.0.0.1:$2/readyz" 60
}

start_floor() {
  "$floor" "$FLOOR_PORT" &
  pids+=("$!")
  wait_ready "http://127.0.0.1:$FLOOR_PORT/" 10
}

# With BENCH_POSTGRES_URL set: a schema of this run's own (dropped on exit) and `pg_url`
# pointing into it; without it, returns false.
postgres_schema() {
  [ -n "${BENCH_POSTGRES_URL:-}" ] || return 1
  local schema="gatehouse_bench_$$" sep='?'
  psql "$BENCH_POSTGRES_URL" -qc "CREATE SCHEMA $schema"
  trap 'psql "$BENCH_POSTGRES_URL" -qc "DROP SCHEMA IF EXISTS '"$schema"' CASCADE" >/dev/null 2>&1; cleanup' EXIT
  [[ $BENCH_POSTGRES_URL == *\?* ]] && sep='&'
  pg_url="${BENCH_POSTGRES_URL}${sep}options=-c%20search_path%3D$schema"
}

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
anon_mb() { awk '/RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# load LABEL URL [wrk args...] [-- script args...]: prints a line to stderr, the req/s
# (2xx only) to stdout.
load() {
  local label=$1 url=$2 out rps p99 non2xx opts=() script_args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; script_args=("$@"); }
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency "${opts[@]}" "$url" -- "${script_args[@]}")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  if [ -n "$non2xx" ]; then echo "$label: $non2xx non-2xx answers" >&2; exit 1; fi
  printf '%-24s req/s=%-10s p99=%s\n' "$label" "$rps" "$p99" >&2
  echo "$rps"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# signer_and_keys: builds benches/assertions (sets `signer`), makes an EC P-256 and an RSA
# 2048 key pair in $work (ec.pem/ec.pub, rsa.pem/rsa.pub) and prints the crypto's cost per
# call on one core.
signer_and_keys() {
  (cd benches/assertions && CARGO_TARGET_DIR="$PWD/../../target/assertions" cargo build --release --quiet)
  signer="$PWD/target/assertions/release/assertions"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ec.pem" 2>/dev/null
  openssl pkey -in "$work/ec.pem" -pubout -out "$work/ec.pub"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
  openssl pkey -in "$work/rsa.pem" -pubout -out "$work/rsa.pub"
  echo "crypto per call (one core, jsonwebtoken with aws-lc-rs):"
  "$signer" costs "$work/ec.pem" "$work/rsa.pem"
}

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
