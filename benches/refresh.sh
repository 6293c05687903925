#!/usr/bin/env bash
# The refresh grant with rotation (one row retired, one written, one access token and one
# ID token signed per request), gatehouse on SQLite and on PostgreSQL next to node
# oidc-provider 9 (refresh-token rotation, ES256 JWT access tokens, in-memory adapter) in
# the same run. Every request presents a token never presented before: the wrk script
# chains each answer's refresh token into that connection's next request.
# Usage: benches/refresh.sh   (env: DURATION=10s CONC=32 ROUNDS=3;
#   BENCH_POSTGRES_URL=postgres://… adds the PostgreSQL case, in a schema of its own)
source "$(dirname "$0")/lib.sh"
PEER_PORT=${PEER_PORT:-18091} PG_PORT=${PG_PORT:-18082}
# Chains to start from: more than connections, because wrk now and then asks for one more
# request than it reports answers for, and a chain without a spare would run dry.
TOKENS=$((CONC * 3))
command -v node >/dev/null || { echo "node is needed for the peer" >&2; exit 1; }
(cd benches/refresh-peer && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })

password=bench-password-$RANDOM$RANDOM
setup_db() { # URL: a user and a confidential, pre-authorized client; prints "ID SECRET"
  GATEHOUSE_DATABASE_URL=$1 "$gh" migrate >/dev/null
  printf '%s' "$password" | GATEHOUSE_DATABASE_URL=$1 "$gh" user create --username bench \
    --email bench@example.com --password-stdin >/dev/null
  GATEHOUSE_DATABASE_URL=$1 "$gh" client create --name refresh-bench --type confidential \
    --grant authorization_code --grant refresh_token --redirect-uri https://rp.example/cb \
    --scope openid --scope offline_access --scope api --pre-authorize bench --json |
    python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}
serve_on() { # URL PORT: starts a gatehouse, sets served_pid
  GATEHOUSE_DATABASE_URL=$1 GATEHOUSE_LISTEN="127.0.0.1:$2" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 "$gh" serve >/dev/null 2>&1 &
  served_pid=$!; pids+=("$served_pid")
  wait_ready "http://127.0.0.1:$2/readyz" 10
}
# history URL: 100,000 earlier refresh tokens in 10,000 families (90,000 already rotated,
# a tenth of the families revoked), then ANALYZE — the tables of a server that has run for
# a while. Without it PostgreSQL plans the statements against empty tables and keeps
# those plans (sequential scans) for the whole run, until autovacuum analyzes.
history() {
  local families="SELECT 'history-' || g, c.id, u.id, 'api', 0, 0, CASE WHEN g % 10 = 0 THEN 1 END
    FROM numbers g, (SELECT id FROM clients WHERE name = 'refresh-bench') c,
    (SELECT id FROM users WHERE username = 'bench') u WHERE g <= 10000"
  local tokens="SELECT HASH, 'history-' || (g % 10000 + 1), 0,
    CASE WHEN g > 10000 THEN 1 END, 'history-' || g, 0 FROM numbers g"
  local sql="WITH RECURSIVE numbers (g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM numbers WHERE g < 100000)"
  local insert_f="INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at, revoked_at)"
  local insert_t="INSERT INTO refresh_tokens (token_hash, family_id, created_at, rotated_at, access_jti, access_exp)"
  if [[ $1 == sqlite:* ]]; then
    python3 - "${1#sqlite://}" <<PY
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("""$sql $insert_f $families""")
db.execute("""$sql $insert_t ${tokens/HASH/randomblob(32)}""")
db.commit()
db.execute("ANALYZE")
db.close()
PY
  else
    local hash="sha256(('history-' || g)::bytea)"
    psql -q -v ON_ERROR_STOP=1 "$1" -c "$sql $insert_f $families" -c "$sql $insert_t ${tokens/HASH/$hash}" -c ANALYZE
  fi
}
# chain LABEL URL TOKENS_FILE BASIC: the refresh chain (see refresh-chain.lua) under load
chain() { load "$1" "$2" -s benches/refresh-chain.lua -H "$4" -- "$3" 2; }

cases=(sqlite)
read -r sq_id sq_secret <<<"$(setup_db "$GATEHOUSE_DATABASE_URL")"
history "$GATEHOUSE_DATABASE_URL"
serve_on "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  read -r pg_id pg_secret <<<"$(setup_db "$pg_url")"
  history "$pg_url"
  serve_on "$pg_url" "$PG_PORT"
  cases+=(postgres)
fi

basic() { echo "Authorization: Basic $(printf '%s:%s' "$1" "$2" | base64 -w0)"; }
peer_secret=bench-secret-0123456789abcdef0123456789abcdef
declare -A results
for round in $(seq "$ROUNDS"); do
  python3 benches/mint_refresh_tokens.py "http://127.0.0.1:$PORT" "$sq_id" "$sq_secret" bench "$password" "$TOKENS" > "$work/sqlite.txt"
  results[sqlite]+="$(chain "gatehouse refresh (SQLite)" "http://127.0.0.1:$PORT/oauth2/token" "$work/sqlite.txt" "$(basic "$sq_id" "$sq_secret")") "
  if [ -n "${pg_url:-}" ]; then
    python3 benches/mint_refresh_tokens.py "http://127.0.0.1:$PG_PORT" "$pg_id" "$pg_secret" bench "$password" "$TOKENS" > "$work/postgres.txt"
    results[postgres]+="$(chain "gatehouse refresh (PostgreSQL)" "http://127.0.0.1:$PG_PORT/oauth2/token" "$work/postgres.txt" "$(basic "$pg_id" "$pg_secret")") "
  fi
  (cd benches/refresh-peer && NODE_ENV=production exec node peer.mjs "$PEER_PORT" "$work/peer.txt" "$TOKENS") 2>/dev/null &
  peer_pid=$!
  wait_ready "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration" 20
  results[peer]+="$(chain "oidc-provider refresh" "http://127.0.0.1:$PEER_PORT/token" "$work/peer.txt" "$(basic bench-rp "$peer_secret")") "
  kill -TERM "$peer_pid"; wait "$peer_pid" 2>/dev/null || true
done
peer=$(printf '%s\n' ${results[peer]} | median)
echo "oidc-provider refresh  median req/s=$peer"
for case in "${cases[@]}"; do
  m=$(printf '%s\n' ${results[$case]} | median)
  echo "gatehouse refresh ($case)  median req/s=$m  vs oidc-provider=$(ratio "$m" "$peer")x  (wrk, $CONC connections, $ROUNDS rounds)"
done
