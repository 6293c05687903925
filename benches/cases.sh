#!/usr/bin/env bash
# The composite create (POST /api/v1/cases: a case, three line items and an outbox email
# in one transaction) under wrk, next to a raw-sqlx floor doing the same inserts in the
# same run (benches/cases-floor), on SQLite and — with BENCH_POSTGRES_URL — on PostgreSQL.
# The email dispatcher runs as in production (writing .eml files) during the load. Then
# the drain: 10,000 queued emails, server started, seconds until the outbox is empty.
# Usage: benches/cases.sh   (env: DURATION=10s CONC=32 ROUNDS=3 DRAIN=10000)
source "$(dirname "$0")/lib.sh"
DRAIN=${DRAIN:-10000}
secs=${DURATION%s}
(cd benches/cases-floor && CARGO_TARGET_DIR="$PWD/../../target/cases-floor" cargo build --release --quiet)
floor_bin="$PWD/target/cases-floor/release/cases-floor"

sql() { # URL SQL: one statement, prints the first column of the first row
  if [[ $1 == sqlite:* ]]; then
    python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); r = db.execute(sys.argv[2]).fetchone(); db.commit(); print(r[0] if r else "")' "${1#sqlite://}" "$2"
  else
    psql -Atq "$1" -c "$2"
  fi
}

run_case() { # LABEL URL PORT
  local label=$1 url=$2 port=$3 client id secret token pid
  GATEHOUSE_DATABASE_URL=$url "$gh" migrate >/dev/null
  client=$(GATEHOUSE_DATABASE_URL=$url "$gh" client create --name "cases-$label" --type confidential \
    --grant client_credentials --scope cases.write --json)
  read -r id secret <<<"$(printf '%s' "$client" | python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])')"
  serve() {
    GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 GATEHOUSE_MAIL_DAILY_LIMIT=0 GATEHOUSE_MAIL_DIR="$work/mail-$label" \
      "$gh" serve >/dev/null 2>&1 &
    pid=$!; pids+=("$pid")
    wait_ready "http://127.0.0.1:$port/readyz" 10
  }
  serve
  token=$(access_token "http://127.0.0.1:$port" "$id" "$secret")
  local created=() floor=() line
  for round in $(seq "$ROUNDS"); do
    created+=("$(load "gatehouse cases ($label)" "http://127.0.0.1:$port/api/v1/cases" -s benches/cases.lua -H "Authorization: Bearer $token")")
    # The floor runs on a quiet machine: first the dispatcher sends what the load queued.
    local behind=$(now_ms)
    until [ "$(sql "$url" "SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'")" = 0 ]; do sleep 0.1; done
    echo "  the dispatcher caught up $(( $(now_ms) - behind )) ms after the load" >&2
    line=$("$floor_bin" "$url" "$id" "$secs" "$CONC")
    printf '%-24s req/s=%-10s p99=%sms\n' "raw sqlx floor ($label)" "${line% *}" "${line#* }" >&2
    floor+=("${line% *}")
  done
  local c f
  c=$(printf '%s\n' "${created[@]}" | median) f=$(printf '%s\n' "${floor[@]}" | median)
  echo "cases ($label)  median creates/s=$c  floor=$f  vs floor=$(ratio "$c" "$f")  (wrk, $CONC connections, $ROUNDS rounds)"

  # The drain: stop the server, queue DRAIN emails again, start it, time the empty outbox.
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "left queued by the load ($label): $(sql "$url" "SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'") of $(sql "$url" "SELECT COUNT(*) FROM email_outbox")" >&2
  # Exactly DRAIN due: whatever the load left queued counts as sent, then DRAIN go back.
  sql "$url" "UPDATE email_outbox SET status = 'sent'" >/dev/null
  sql "$url" "UPDATE email_outbox SET status = 'queued', attempts = 0, next_attempt_at = 0, sent_at = NULL
    WHERE id IN (SELECT id FROM email_outbox WHERE case_id IS NOT NULL ORDER BY id LIMIT $DRAIN)" >/dev/null
  local queued start end
  queued=$(sql "$url" "SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'")
  start=$(now_ms)
  serve
  until [ "$(sql "$url" "SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'")" = 0 ]; do sleep 0.05; done
  end=$(now_ms)
  echo "drain ($label)  $queued emails to .eml files in $(awk -v ms=$((end - start)) 'BEGIN { printf "%.2f", ms / 1000 }') s (start-up included)"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$((PORT + 2))"
fi
