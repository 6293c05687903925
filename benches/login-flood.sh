#!/usr/bin/env bash
# A sign-in flood must not starve the API: GET /api/v1/me throughput alone, then while 50
# connections post wrong passwords to /login.
#   default      one account, default limits: the account locks after 5 failures, later
#                attempts are refused before any hashing
#   worst case   every attempt names another account and the per-address limit is lifted,
#                so every attempt costs a full argon2id verification
# Usage: benches/login-flood.sh  (env: DURATION=10s CONC=32 FLOOD=50)
source "$(dirname "$0")/lib.sh"
FLOOD=${FLOOD:-50}

field() { printf '%s' "$client" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

run() { # LABEL MODE: on a fresh database each time (failure counters start at zero)
  export GATEHOUSE_DATABASE_URL="sqlite://$work/flood-$2.db"
  "$gh" migrate >/dev/null
  client=$("$gh" client create --name bench --type confidential --grant client_credentials --scope api --json)
  id=$(field client_id) secret=$(field client_secret)
  start_gatehouse
  local base="http://127.0.0.1:$PORT" jar="$work/jar" token cookie csrf alone flooded
  token=$(access_token "$base" "$id" "$secret")
  csrf=$(curl -sf -c "$jar" "$base/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p')
  cookie=$(awk '$6 == "gatehouse_csrf" {print "gatehouse_csrf=" $7}' "$jar")
  alone=$(load "me alone ($1)" "$base/api/v1/me" -H "Authorization: Bearer $token")
  wrk -t1 -c"$FLOOD" -d"$(( ${DURATION%s} + 4 ))s" -s benches/login-flood.lua "$base/login" -- "$cookie" "$csrf" "$2" > "$work/flood.out" 2>&1 &
  local flood_pid=$!
  sleep 2
  flooded=$(load "me during flood ($1)" "$base/api/v1/me" -H "Authorization: Bearer $token")
  wait "$flood_pid"
  echo "$1: /api/v1/me $flooded req/s during the flood vs $alone alone = $(ratio "$flooded" "$alone")" \
    "(sign-in attempts answered: $(awk '/Requests\/sec/ {print $2}' "$work/flood.out")/s)"
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
}
run "default limits" same
GATEHOUSE_LOGIN_LOCK_AFTER_PER_ADDRESS=1000000000 run "worst case" random
