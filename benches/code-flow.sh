#!/usr/bin/env bash
# Authorization-code redemption under load: a signed-in user's browser session asks the
# authorization endpoint for a code (pre-authorized client, no consent page), the client
# redeems it at the token endpoint (code marked used, refresh family written, an access
# token and an ID token signed). benches/code-flow.lua alternates the two, so no code is
# presented twice, and counts the redemptions: the figure is redemptions per second.
# One client per ID-token algorithm in ALGS ("default" = the client registers none, the
# server's default), next to the axum hello-world floor in the same run.
# Usage: benches/code-flow.sh   (env: DURATION=10s CONC=32 ROUNDS=3 ALGS="default ES256 RS256";
#   BENCH_POSTGRES_URL=postgres://… adds the PostgreSQL cases, in a schema of its own)
source "$(dirname "$0")/lib.sh"
ALGS=${ALGS:-default} PG_PORT=${PG_PORT:-18082}
password=bench-password-$RANDOM$RANDOM

setup_db() { # URL CASE: the user, and one pre-authorized confidential client per algorithm
  GATEHOUSE_DATABASE_URL=$1 "$gh" migrate >/dev/null
  printf '%s' "$password" | GATEHOUSE_DATABASE_URL=$1 "$gh" user create --username bench \
    --email bench@example.com --password-stdin >/dev/null
  for alg in $ALGS; do
    local extra=()
    [ "$alg" = default ] || extra=(--id-token-alg "$alg")
    code_client "$1" bench "${extra[@]}" > "$work/$2-$alg.client"
  done
}
serve_on() { # URL PORT
  GATEHOUSE_DATABASE_URL=$1 GATEHOUSE_LISTEN="127.0.0.1:$2" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 "$gh" serve >/dev/null 2>&1 &
  pids+=("$!")
  wait_ready "http://127.0.0.1:$2/readyz" 10
}
# flow LABEL PORT CASE ALG: prints a line to stderr, the redemptions per second to stdout
flow() {
  local id secret rate
  read -r id secret < "$work/$3-$4.client"
  rate=$(code_flow "$2" "$id" "$secret" bench "$password")
  rate=${rate%% *}
  printf '%-40s redemptions/s=%s\n' "$1" "$rate" >&2
  echo "$rate"
}

cases=(sqlite)
setup_db "$GATEHOUSE_DATABASE_URL" sqlite
serve_on "$GATEHOUSE_DATABASE_URL" "$PORT"
declare -A port=([sqlite]=$PORT [postgres]=$PG_PORT)
if postgres_schema; then
  setup_db "$pg_url" postgres
  serve_on "$pg_url" "$PG_PORT"
  cases+=(postgres)
fi
start_floor

declare -A results
for round in $(seq "$ROUNDS"); do
  for case in "${cases[@]}"; do
    for alg in $ALGS; do
      results[$case-$alg]+="$(flow "code flow ($case, ID token $alg)" "${port[$case]}" "$case" "$alg") "
    done
  done
  results[floor]+="$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/") "
done
floor_median=$(printf '%s\n' ${results[floor]} | median)
for case in "${cases[@]}"; do
  for alg in $ALGS; do
    m=$(printf '%s\n' ${results[$case-$alg]} | median)
    echo "code flow ($case, ID token $alg)  median redemptions/s=$m  vs floor=$(ratio "$m" "$floor_median")  (wrk, $CONC connections, $ROUNDS rounds)"
  done
done
