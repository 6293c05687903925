#!/usr/bin/env bash
# Pruning a backlog while the token endpoint is under load. ROWS audit events older than
# the 90-day retention are generated in SQL. Then:
#   baseline  token load with the audit table left alone (audit_retention_days=0);
#   pruning   token load while the maintenance loop prunes the backlog (1000 rows per
#             statement), timed from the server's start until the backlog is gone.
# SQLite, and PostgreSQL too with BENCH_POSTGRES_URL (a schema of its own).
# Usage: benches/prune.sh   (env: ROWS=1000000 DURATION=20s CONC=32)
source "$(dirname "$0")/lib.sh"
ROWS=${ROWS:-1000000} PG_PORT=${PG_PORT:-18082}
old=$(( $(date +%s) - 100 * 86400 ))
insert="INSERT INTO audit_events (at, event, outcome, actor, client_id, detail)"

seed() { # CASE URL
  if [ "$1" = sqlite ]; then
    sqlite3 "${2#sqlite://}" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
      $insert SELECT $old + i / 1000, 'token.issued', 'success', 'client:seed', 'seed', '{}' FROM n;"
  else
    psql "$pg_url" -qc "$insert SELECT $old + i / 1000, 'token.issued', 'success', 'client:seed', 'seed', '{}'
      FROM generate_series(1, $ROWS) AS i"
  fi
}
backlog() { # CASE URL: old audit events left
  if [ "$1" = sqlite ]; then
    sqlite3 "${2#sqlite://}" "SELECT COUNT(*) FROM audit_events WHERE client_id = 'seed'"
  else
    psql "$pg_url" -tAc "SELECT COUNT(*) FROM audit_events WHERE client_id = 'seed'"
  fi
}
run_case() { # CASE URL PORT
  local id secret basic started done_at rows
  GATEHOUSE_DATABASE_URL=$2 "$gh" migrate >/dev/null
  read -r id secret < <(service_client "$2")
  basic="Authorization: Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  printf 'wrk.method = "POST"\nwrk.body = "grant_type=client_credentials"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' > "$work/token.lua"
  echo "$1: seeding $ROWS audit events older than the retention" >&2
  seed "$1" "$2"
  GATEHOUSE_AUDIT_RETENTION_DAYS=0 serve_db "$2" "$3"
  load "$1 baseline" "http://127.0.0.1:$3/oauth2/token" -s "$work/token.lua" -H "$basic" >/dev/null
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
  started=$(now_ms)
  GATEHOUSE_AUDIT_RETENTION_DAYS=90 serve_db "$2" "$3"
  ( while [ "$(backlog "$1" "$2")" != 0 ]; do sleep 0.2; done; echo "$(now_ms)" > "$work/$1.done" ) &
  load "$1 while pruning" "http://127.0.0.1:$3/oauth2/token" -s "$work/token.lua" -H "$basic" >/dev/null
  wait $!
  done_at=$(cat "$work/$1.done")
  rows=$(backlog "$1" "$2")
  printf '%-24s %s rows pruned in %.1f s (from the server start), %s left\n' "$1 prune" "$ROWS" \
    "$(awk -v a="$started" -v b="$done_at" 'BEGIN { print (b - a) / 1000 }')" "$rows" >&2
  kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$PG_PORT"
fi
