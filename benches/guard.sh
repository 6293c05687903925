#!/usr/bin/env bash
# The performance regression guard: builds release, runs the side-by-side kit (our token,
# GET /api/v1/me and introspection cases next to node oidc-provider and an axum
# hello-world floor, one round, about two minutes) and prints each ratio next to its goal.
# Gatehouse runs as users run it: audit log (log=info), usage counting and the in-memory
# rate limiter on, the limits raised above what one load client sends (RATE_LIMIT).
# Run it before and after any change to a request path, and quote both in the note.
# Usage: BENCH_KIT=DIR benches/guard.sh   (DIR holds the kit's compare.sh;
#   env: DURATION=10s CONC=32 ROUNDS=1 RATE_LIMIT=1000000000 STRICT=1 to exit 1 below a goal,
#   BENCH_BIN=PATH to measure that binary, such as a build of the commit before a change)
RATE_LIMIT=${RATE_LIMIT:-1000000000} ROUNDS=${ROUNDS:-1}
kit=${BENCH_KIT:-}
if [ -z "$kit" ] || [ ! -x "$kit/compare.sh" ]; then
  echo "set BENCH_KIT to the directory of the side-by-side kit (its compare.sh)" >&2
  exit 2
fi
kit=$(cd "$kit" && pwd)
source "$(dirname "$0")/lib.sh"


read -r id secret < <(service_client "$GATEHOUSE_DATABASE_URL")
start_gatehouse
base="http://127.0.0.1:$PORT"
out="$work/kit.txt"
ROUNDS=$ROUNDS DURATION=$DURATION CONC=$CONC OUR_EXTRA_FORM="scope=api" \
  "$kit/compare.sh" "$base/oauth2/token" "$id" "$secret" "$base/api/v1/me" "$base/oauth2/introspect" "$gh_pid" |
  tee "$out" >&2
summary=$(grep '^SUMMARY' "$out") || { echo "the kit printed no SUMMARY line" >&2; exit 1; }
# "ours/peer-jwt-ES256: token 5.35x, protected-get 8.31x; ours/peer-opaque: … introspection 8.55x; ours/floor: …"
pick() { # SECTION CASE: the ratio of CASE in SECTION of the summary
  printf '%s\n' "$summary" | sed -n "s/.*$1: \([^;]*\).*/\1/p" | tr ',' '\n' |
    sed -n "s/^ *$2 \([0-9.]*\)x.*/\1/p"
}
below=0
row() { # LABEL RATIO GOAL
  local verdict
  if awk -v r="$2" -v g="$3" 'BEGIN { exit !(r != "" && r + 0 >= g + 0) }'; then verdict=met
  else verdict=below; below=1; fi
  printf '%-42s %7sx   goal >= %-6s %s\n' "$1" "${2:-?}" "$3x" "$verdict"
}
echo
echo "guard: ${ROUNDS} round(s) of $DURATION, $CONC connections; rate limits on at $RATE_LIMIT, log=$LOG"
row "token (client_credentials) vs peer jwt" "$(pick 'ours\/peer-jwt-ES256' token)" 10
row "protected GET /api/v1/me vs axum floor" "$(pick 'ours\/floor' protected-get)" 0.8
row "introspection vs peer opaque" "$(pick 'ours\/peer-opaque' introspection)" 10
if [ "${STRICT:-0}" = 1 ] && [ "$below" = 1 ]; then exit 1; fi
