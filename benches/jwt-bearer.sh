#!/usr/bin/env bash
# The JWT bearer grant (RFC 7523) under wrk: every request verifies a fresh assertion
# (signature, claims), marks its jti used, looks the user up and signs an ES256 access
# token. On SQLite and — with BENCH_POSTGRES_URL — on PostgreSQL, ES256 assertions for
# ROUNDS rounds and RS256 assertions for one, plus the crypto's cost per call measured
# with the same JOSE crate and backend, and the server's CPU time per request.
# Usage: benches/jwt-bearer.sh   (env: DURATION=10s CONC=32 ROUNDS=3 ASSERTIONS=150000)
source "$(dirname "$0")/lib.sh"
ASSERTIONS=${ASSERTIONS:-150000} RS_DURATION=${RS_DURATION:-5s} RS_ASSERTIONS=${RS_ASSERTIONS:-80000}
PG_PORT=${PG_PORT:-18082}
signer_and_keys

setup_db() { # URL: user `bench`, a partner client pre-authorized for it with both keys; prints its id
  GATEHOUSE_DATABASE_URL=$1 "$gh" migrate >/dev/null
  printf 'bench-password-%s' "$RANDOM" | GATEHOUSE_DATABASE_URL=$1 "$gh" user create --username bench \
    --email bench@example.com --password-stdin >/dev/null
  local id
  id=$(GATEHOUSE_DATABASE_URL=$1 "$gh" client create --name partner-bench --type confidential \
    --auth-method private_key_jwt --grant urn:ietf:params:oauth:grant-type:jwt-bearer \
    --scope api --scope cases.read --pre-authorize bench --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
  GATEHOUSE_DATABASE_URL=$1 "$gh" client add-key "$id" --pem "$work/ec.pub" >/dev/null
  GATEHOUSE_DATABASE_URL=$1 "$gh" client add-key "$id" --pem "$work/rsa.pub" >/dev/null
  echo "$id"
}
serve_on() { # URL PORT: starts a gatehouse, sets served_pid
  GATEHOUSE_DATABASE_URL=$1 GATEHOUSE_LISTEN="127.0.0.1:$2" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 "$gh" serve >/dev/null 2>&1 &
  served_pid=$!; pids+=("$served_pid")
  wait_ready "http://127.0.0.1:$2/readyz" 10
}

run_case() { # LABEL URL PORT
  local label=$1 url=$2 port=$3 id aud rates=() line before after rps
  id=$(setup_db "$url")
  serve_on "$url" "$port"
  local pid=$served_pid
  aud=$(curl -sf "http://127.0.0.1:$port/.well-known/openid-configuration" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token_endpoint"])')
  for round in $(seq "$ROUNDS"); do
    "$signer" sign ES256 "$work/ec.pem" "$id" bench "$aud" "$ASSERTIONS" > "$work/es.txt"
    before=$(cpu_ticks "$pid")
    rps=$(load "jwt-bearer ES256 ($label)" "http://127.0.0.1:$port/oauth2/token" -s benches/jwt-bearer.lua -- "$work/es.txt" 2)
    after=$(cpu_ticks "$pid")
    rates+=("$rps")
    awk -v t=$((after - before)) -v r="$rps" -v d="${DURATION%s}" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "  server CPU %.0f%%, %.0f µs per request\n", 100 * t / hz / d, 1e6 * t / hz / (r * d) }' >&2
  done
  echo "jwt-bearer ES256 ($label)  median req/s=$(printf '%s\n' "${rates[@]}" | median)  (wrk, $CONC connections, $ROUNDS rounds)"
  # RS256 signing is slow (~2k/s per core): two signers, one per core.
  "$signer" sign RS256 "$work/rsa.pem" "$id" bench "$aud" $((RS_ASSERTIONS / 2)) > "$work/rs1.txt" &
  "$signer" sign RS256 "$work/rsa.pem" "$id" bench "$aud" $((RS_ASSERTIONS / 2)) > "$work/rs2.txt"
  wait $!
  cat "$work/rs1.txt" "$work/rs2.txt" > "$work/rs.txt"
  rps=$(DURATION=$RS_DURATION load "jwt-bearer RS256 ($label)" "http://127.0.0.1:$port/oauth2/token" -s benches/jwt-bearer.lua -- "$work/rs.txt" 2)
  echo "jwt-bearer RS256 ($label)  req/s=$rps  (wrk, $CONC connections, one round of $RS_DURATION)"
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$PG_PORT"
fi
