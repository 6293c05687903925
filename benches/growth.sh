#!/usr/bin/env bash
# Does the server stay flat as the data grows? The token endpoint, introspection and
# GET /api/v1/me (which consults the revocation list), on an empty database and again
# after SQL has generated 1M audit events, 100k clients, 1M refresh families and 100k
# live revocations (which every process holds in memory), p50 and p99 side by side, with
# idle RSS. SQLite, and PostgreSQL too with BENCH_POSTGRES_URL (a schema of its own).
# Usage: benches/growth.sh   (env: DURATION=10s CONC=32 AUDIT=1000000 CLIENTS=100000
#   FAMILIES=1000000 REVOCATIONS=100000)
source "$(dirname "$0")/lib.sh"
AUDIT=${AUDIT:-1000000} CLIENTS=${CLIENTS:-100000} FAMILIES=${FAMILIES:-1000000}
REVOCATIONS=${REVOCATIONS:-100000} PG_PORT=${PG_PORT:-18082}
now=$(date +%s)

sql() { # CASE URL SQL
  if [ "$1" = sqlite ]; then sqlite3 "${2#sqlite://}" "$3"; else psql "$pg_url" -qtAc "$3"; fi
}
# SQL generating N rows numbered i: SQLite has no generate_series.
numbered() { # CASE N
  if [ "$1" = sqlite ]; then
    echo "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $2) SELECT i FROM g"
  else
    echo "SELECT i FROM generate_series(1, $2) AS i"
  fi
}
seed() { # CASE URL USER_ID
  local n
  n=$(numbered "$1" "$AUDIT")
  sql "$1" "$2" "INSERT INTO audit_events (at, event, outcome, actor, client_id, detail)
    SELECT $now - i / 100, 'token.issued', 'success', 'client:seed', 'seed', '{}' FROM ($n) AS s"
  n=$(numbered "$1" "$CLIENTS")
  sql "$1" "$2" "INSERT INTO clients (id, name, client_type, auth_method, created_at, updated_at)
    SELECT 'seed-client-' || i, 'seeded ' || i, 'public', 'none', $now, $now FROM ($n) AS s"
  n=$(numbered "$1" "$FAMILIES")
  sql "$1" "$2" "INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at)
    SELECT 'seed-family-' || i, 'seed-client-' || (1 + i % $CLIENTS), '$3', 'openid', $now, $now FROM ($n) AS s"
  n=$(numbered "$1" "$REVOCATIONS")
  sql "$1" "$2" "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at)
    SELECT 'seed-jti-' || i, 'seed-client-1', $now + 3600, $now FROM ($n) AS s"
}
# measure LABEL URL [wrk args]: "p50 p99 req/s" to stdout
measure() {
  local out
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency "${@:2}")
  if echo "$out" | grep -q 'Non-2xx'; then echo "$1: non-2xx answers" >&2; exit 1; fi
  echo "$out" | awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} /Requests\/sec/ {rps = $2}
    END {print p50, p99, rps}'
}
cases() { # CASE URL PORT ID SECRET: one line per endpoint, and idle RSS
  local base="http://127.0.0.1:$3" basic token
  basic="Authorization: Basic $(printf '%s:%s' "$4" "$5" | base64 -w0)"
  sleep 1
  echo "idle_rss_mb $(rss_mb "$gh_pid")"
  token=$(curl -sf -H "$basic" -d grant_type=client_credentials "$base/oauth2/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' \
    "grant_type=client_credentials" > "$work/token.lua"
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' \
    "token=$token" > "$work/introspect.lua"
  echo "token $(measure token "$base/oauth2/token" -s "$work/token.lua" -H "$basic")"
  echo "introspection $(measure introspection "$base/oauth2/introspect" -s "$work/introspect.lua" -H "$basic")"
  echo "me $(measure me "$base/api/v1/me" -H "Authorization: Bearer $token")"
}
run_case() { # CASE URL PORT
  local id secret user
  GATEHOUSE_DATABASE_URL=$2 "$gh" migrate >/dev/null
  read -r id secret < <(service_client "$2")
  printf 'growth-bench-password' | GATEHOUSE_DATABASE_URL=$2 "$gh" user create --username seed \
    --email seed@example.com --password-stdin >/dev/null
  user=$(sql "$1" "$2" "SELECT id FROM users WHERE username = 'seed'")
  serve_db "$2" "$3"
  cases "$@" "$id" "$secret" > "$work/$1.empty"
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
  echo "$1: seeding" >&2
  seed "$1" "$2" "$user"
  serve_db "$2" "$3"
  cases "$@" "$id" "$secret" > "$work/$1.seeded"
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
  python3 - "$1" "$work/$1.empty" "$work/$1.seeded" <<'PY'
import sys
def us(v):
    for unit, f in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)
backend, empty, seeded = sys.argv[1], open(sys.argv[2]).read().split("\n"), open(sys.argv[3]).read().split("\n")
print(f"{'backend':<10} {'case':<14} {'empty p50 / p99 / req/s':<30} {'seeded p50 / p99 / req/s':<30} p50 seeded/empty")
for a, b in zip(empty, seeded):
    if not a:
        continue
    a, b = a.split(), b.split()
    if a[0] == "idle_rss_mb":
        print(f"{backend:<10} {'idle RSS MB':<14} {a[1]:<30} {b[1]:<30}")
    else:
        print(f"{backend:<10} {a[0]:<14} {' / '.join(a[1:]):<30} {' / '.join(b[1:]):<30} {us(b[1]) / us(a[1]):.2f}")
PY
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$PG_PORT"
fi
