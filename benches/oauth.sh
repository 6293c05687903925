#!/usr/bin/env bash
# OAuth core benchmarks (release build, loopback only, bounded in time), each next to the
# axum hello-world floor in the same run:
#   token          POST /oauth2/token, client_credentials, client_secret_basic, ES256 JWT
#   me             GET /api/v1/me with one valid token
#   introspection  POST /oauth2/introspect of one fresh token by the same client
# Usage: benches/oauth.sh  (env: DURATION=10s CONC=32 ROUNDS=3 LOG=info)
source "$(dirname "$0")/lib.sh"

client=$("$gh" client create --name bench --type confidential --grant client_credentials --scope api --json)
field() { printf '%s' "$client" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
id=$(field client_id) secret=$(field client_secret)
basic="Authorization: Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
start_gatehouse
token=$(curl -sf -H "$basic" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
post() { # FILE BODY: a wrk script that POSTs a form
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' "$2" > "$1"
}
post "$work/token.lua" "grant_type=client_credentials"
post "$work/introspect.lua" "token=$token"
start_floor

declare -A results
for round in $(seq "$ROUNDS"); do
  results[token]+="$(load "token" "http://127.0.0.1:$PORT/oauth2/token" -s "$work/token.lua" -H "$basic") "
  results[me]+="$(load "me" "http://127.0.0.1:$PORT/api/v1/me" -H "Authorization: Bearer $token") "
  results[introspection]+="$(load "introspection" "http://127.0.0.1:$PORT/oauth2/introspect" -s "$work/introspect.lua" -H "$basic") "
  results[floor]+="$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/") "
done
floor_median=$(printf '%s\n' ${results[floor]} | median)
for case in token me introspection; do
  m=$(printf '%s\n' ${results[$case]} | median)
  echo "$case  median req/s=$m  vs floor=$(ratio "$m" "$floor_median")  (wrk, $CONC connections, $ROUNDS rounds)"
done
echo "rss_after_load_mb $(rss_mb "$gh_pid")"
