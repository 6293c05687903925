#!/usr/bin/env bash
# Device polling at scale (RFC 8628): DEVICES pending device codes, each polled every
# `interval` (5 s) as the RFC asks, spread evenly, for SECONDS; the server's CPU share
# while it answers authorization_pending, on SQLite and — with BENCH_POSTGRES_URL — on
# PostgreSQL (the database server's own CPU is not counted).
# Usage: benches/device-poll.sh   (env: DEVICES=1000 POLL_SECONDS=30)
source "$(dirname "$0")/lib.sh"
DEVICES=${DEVICES:-1000} SECONDS_=${POLL_SECONDS:-30} PG_PORT=${PG_PORT:-18082}

run_case() { # LABEL URL PORT
  local label=$1 url=$2 port=$3 client pid before after result
  GATEHOUSE_DATABASE_URL=$url "$gh" migrate >/dev/null
  client=$(GATEHOUSE_DATABASE_URL=$url "$gh" client create --name tv-bench --type public \
    --grant urn:ietf:params:oauth:grant-type:device_code --scope api --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])')
  GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LISTEN="127.0.0.1:$port" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 "$gh" serve >/dev/null 2>&1 &
  pid=$!; pids+=("$pid")
  wait_ready "http://127.0.0.1:$port/readyz" 10
  coproc POLLER { python3 benches/device_poll.py "http://127.0.0.1:$port" "$client" "$DEVICES" "$SECONDS_"; }
  read -r _ <&"${POLLER[0]}"   # "ready": every device has its codes
  before=$(cpu_ticks "$pid")
  echo go >&"${POLLER[1]}"
  read -r result <&"${POLLER[0]}"
  after=$(cpu_ticks "$pid")
  awk -v t=$((after - before)) -v s="$SECONDS_" -v hz="$(getconf CLK_TCK)" -v l="$label" -v r="$result" -v d="$DEVICES" \
    'BEGIN { printf "device polling (%s): %d devices, server CPU %.2f%% of one core over %d s; %s\n", l, d, 100 * t / hz / s, s, r }'
}

run_case sqlite "$GATEHOUSE_DATABASE_URL" "$PORT"
if postgres_schema; then
  run_case postgres "$pg_url" "$PG_PORT"
fi
