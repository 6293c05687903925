#!/usr/bin/env bash
# Soak: the mixed load of benches/soak.lua (tokens, API reads, composite creates and a
# few sign-ins) at half of its measured maximum for MINUTES one-minute rounds, with the
# email dispatcher writing the queued mail as in production. Each round prints its
# rate, p50, p99, errors and the server's RSS; the run fails on any answer of 400 or
# more or any socket error. The maximum is the same load with no pause (and no sign-ins)
# for MAX_DURATION. RSS is shown whole and as its anonymous part (heap): SQLite's file is
# memory-mapped, so its pages read count as resident and grow with the database.
# PostgreSQL with autovacuum off (as on some test machines) gets the ANALYZE autovacuum
# would have run after each round: the server warns about that setting at start-up.
# SQLite, and PostgreSQL too with BENCH_POSTGRES_URL (a schema of its own).
# Usage: benches/soak.sh   (env: MINUTES=10 CONC=32 MAX_DURATION=20s LOGINS_PER_S=2)
source "$(dirname "$0")/lib.sh"
MINUTES=${MINUTES:-10} MAX_DURATION=${MAX_DURATION:-20s} LOGINS_PER_S=${LOGINS_PER_S:-2}
PG_PORT=${PG_PORT:-18082}
password=soak-bench-password-$RANDOM$RANDOM

# mixed DURATION DELAY_MS LOGIN_EVERY: one wrk run; prints "req/s p50 p99 errors"
mixed() {
  local out errors
  out=$(wrk -t2 -c"$CONC" -d"$1" --latency -s benches/soak.lua "$base" -- \
    "$basic" "$token" "$case_id" "$(case_body)" "$login_cookie" "$login_body" "$2" "$3")
  errors=$(echo "$out" | awk '/^unexpected/ {n += $2} /Socket errors/ {
      gsub(",", ""); n += $4 + $6 + $8 + $10 } END {print n + 0}')
  echo "$out" | awk -v e="$errors" '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2}
    /Requests\/sec/ {rps = $2} END {print rps, p50, p99, e}'
}

analyze_for_autovacuum() { # CASE URL
  if [ "$1" = postgres ] && [ "$(psql "$2" -Atc 'SHOW autovacuum')" = off ]; then psql "$2" -qc ANALYZE; fi
}

run_case() { # CASE URL PORT
  local id secret jar csrf rps rate delay login_every line errors=0
  base="http://127.0.0.1:$3"
  GATEHOUSE_DATABASE_URL=$2 "$gh" migrate >/dev/null
  read -r id secret < <(service_client "$2" api cases.read cases.write)
  printf '%s' "$password" | GATEHOUSE_DATABASE_URL=$2 "$gh" user create --username soak \
    --email soak@example.com --password-stdin >/dev/null
  GATEHOUSE_MAIL_DAILY_LIMIT=0 GATEHOUSE_MAIL_DIR="$work/mail-$1" serve_db "$2" "$3"
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  token=$(access_token "$base" "$id" "$secret")
  case_id=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary "$(case_body)" "$base/api/v1/cases" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  # One sign-in form (its CSRF cookie and token), posted again for every sign-in.
  jar="$work/jar-$1"
  csrf=$(curl -sf -c "$jar" "$base/login" | python3 -c \
    'import html, re, sys; print(html.unescape(re.search(r"name=\"csrf_token\" value=\"([^\"]+)\"", sys.stdin.read()).group(1)))')
  login_cookie=$(awk -F'\t' 'NF == 7 {printf "%s%s=%s", sep, $6, $7; sep = "; "}' "$jar")
  login_body=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlencode({"username": "soak",
    "password": sys.argv[1], "csrf_token": sys.argv[2], "return_to": ""}))' "$password" "$csrf")

  line=$(mixed "$MAX_DURATION" 0 1000000000)
  read -r rps _ _ e <<<"$line"
  if [ "$e" != 0 ]; then echo "$1: $e errors at the maximum" >&2; exit 1; fi
  analyze_for_autovacuum "$1" "$2"
  rate=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r / 2 }')
  # A connection's pause plus its request's latency (under a millisecond) sets its rate.
  delay=$(awk -v r="$rate" -v c="$CONC" 'BEGIN { d = int(c * 1000 / r - 0.5); print (d < 1 ? 1 : d) }')
  # Counted per thread: each of wrk's 2 threads makes half the requests and so half the
  # sign-ins.
  login_every=$(awk -v r="$rate" -v l="$LOGINS_PER_S" 'BEGIN { printf "%.0f", r / l }')
  echo "$1: maximum $rps req/s; soaking at about $rate req/s ($CONC connections, ${delay} ms apart, $LOGINS_PER_S sign-ins/s)"
  printf '%-10s %-7s %-10s %-10s %-10s %-7s %-8s %s\n' backend minute req/s p50 p99 errors rss_mb anon_mb
  for minute in $(seq "$MINUTES"); do
    line=$(mixed 60s "$delay" "$login_every")
    read -r rps p50 p99 e <<<"$line"
    errors=$((errors + e))
    printf '%-10s %-7s %-10s %-10s %-10s %-7s %-8s %s\n' "$1" "$minute" "$rps" "$p50" "$p99" "$e" \
      "$(rss_mb "$gh_pid")" "$(anon_mb "$gh_pid")"
    analyze_for_autovacuum "$1" "$2"
  done
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
  if [ "$errors" != 0 ]; then echo "$1: $errors errors" >&2; exit 1; fi
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$PG_PORT"
fi
