#!/usr/bin/env bash
# Change events under load, on SQLite:
#  1. throughput: composite creates (benches/cases.lua, or BODY=PATH: benches/cases-nomail.lua
#     leaves out the notification email, whose one file per email in the mail folder is the
#     noisiest part of a run) next to EVENTS_OFF_BIN, a build of the commit before change
#     events (skipped without it), with events on twice: the log alone (written in each
#     create's transaction, ready for SSE and webhooks) and the log published to NATS (whose
#     server shares the machine); ROUNDS alternating runs each;
#  2. latency: commit-to-delivery p50/p99 for SSE, a webhook and NATS while wrk paces
#     composite creates at RATE per second (benches/cases-paced.lua), for DURATION;
#  3. backlog: BACKLOG creates written while NATS is unreachable and the webhook disabled,
#     then the time until an SSE subscriber (from=earliest), the webhook and NATS have
#     every one of their events.
# Needs a NATS server with JetStream on NATS (default 127.0.0.1:4222).
# Usage: benches/events.sh   (env: DURATION=10s CONC=32 ROUNDS=3 RATE=1000 BACKLOG=20000
#   EVENTS_OFF_BIN=PATH NATS=127.0.0.1:4222 BODY=benches/cases.lua)
source "$(dirname "$0")/lib.sh"
RATE=${RATE:-1000} BACKLOG=${BACKLOG:-20000} NATS=${NATS:-127.0.0.1:4222}
BODY=${BODY:-benches/cases.lua}
secs=${DURATION%s}
unset GATEHOUSE_DATABASE_URL
tag=$$
hook_port=$((PORT + 7))
export GATEHOUSE_MAIL_DAILY_LIMIT=0 GATEHOUSE_MAIL_DIR="$work/mail"
# Settings only this build knows (the one before change events refuses unknown keys).
events_env=(GATEHOUSE_EVENTS_POLL_MS=100 GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=true
  GATEHOUSE_NATS_STREAM="BENCH_$tag" GATEHOUSE_NATS_SUBJECT_PREFIX="bench$tag.events")
ev() { env "${events_env[@]}" "$@"; }  # runs a command of this build with them

fresh_db() { # NAME BIN: a migrated database; prints its URL
  local url="sqlite://$work/$1.db"
  GATEHOUSE_DATABASE_URL=$url "$2" migrate >/dev/null
  echo "$url"
}

serve_with() { # BIN URL [ENV=VALUE...]: sets gh_pid
  local bin=$1 url=$2
  shift 2
  env GATEHOUSE_DATABASE_URL="$url" "$@" "$bin" serve >/dev/null 2>&1 &
  gh_pid=$!; pids+=("$gh_pid")
  wait_ready "http://127.0.0.1:$PORT/readyz" 30
}

stop_server() { kill -TERM "$gh_pid"; wait "$gh_pid" 2>/dev/null || true; }

client_for() { # BIN URL: a client that writes cases and reads every case's events
  GATEHOUSE_DATABASE_URL=$2 ev "$1" client create --name "events-bench" --type confidential \
    --grant client_credentials --scope cases.write --scope events.read --may-read-all-events --json |
    python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}

creates() { # BIN LABEL: creates/s of one wrk run against a fresh database
  local bin=$1 label=$2 url id secret token rps extra=()
  url=$(fresh_db "tp-$label-$RANDOM" "$bin")
  if [ "$label" != off ]; then
    read -r id secret < <(client_for "$bin" "$url")
    extra=("${events_env[@]}")
    [ "$label" = nats ] && extra+=(GATEHOUSE_NATS_URL="nats://$NATS")
  else
    read -r id secret < <(GATEHOUSE_DATABASE_URL=$url "$bin" client create --name off --type confidential \
      --grant client_credentials --scope cases.write --json |
      python3 -c 'import json, sys; c = json.load(sys.stdin); print(c["client_id"], c["client_secret"])')
  fi
  serve_with "$bin" "$url" "${extra[@]}"
  token=$(curl -sf -u "$id:$secret" -d grant_type=client_credentials -d scope=cases.write \
    "http://127.0.0.1:$PORT/oauth2/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  rps=$(load "creates, events $label" "http://127.0.0.1:$PORT/api/v1/cases" -s "$BODY" \
    -H "Authorization: Bearer $token")
  stop_server
  echo "$rps"
}

echo "== 1. composite create throughput, events on vs off" >&2
if [ -n "${EVENTS_OFF_BIN:-}" ]; then
  off_bin=$(cd "$(dirname "$EVENTS_OFF_BIN")" && pwd)/$(basename "$EVENTS_OFF_BIN")
  on=() nats=() off=()
  for _ in $(seq "$ROUNDS"); do
    off+=("$(creates "$off_bin" off)")
    on+=("$(creates "$gh" on)")
    nats+=("$(creates "$gh" nats)")
  done
  m_on=$(printf '%s\n' "${on[@]}" | median) m_off=$(printf '%s\n' "${off[@]}" | median)
  m_nats=$(printf '%s\n' "${nats[@]}" | median)
  echo "creates/s ($BODY): events off $m_off; the log $m_on ($(ratio "$m_on" "$m_off") of off); the log published to NATS $m_nats ($(ratio "$m_nats" "$m_off")) (median of $ROUNDS, wrk $CONC connections, $DURATION)"
else
  echo "skipped: set EVENTS_OFF_BIN to a build of the commit before change events" >&2
fi

echo "== 2. commit-to-delivery latency at $RATE creates/s" >&2
url=$(fresh_db latency "$gh")
read -r id secret < <(client_for "$gh" "$url")
GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LOG=warn ev "$gh" webhook create --url "http://127.0.0.1:$hook_port/hook" --json >/dev/null
serve_with "$gh" "$url" "${events_env[@]}" GATEHOUSE_NATS_URL="nats://$NATS"
token=$(curl -sf -u "$id:$secret" -d grant_type=client_credentials -d 'scope=cases.write events.read' \
  "http://127.0.0.1:$PORT/oauth2/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
python3 benches/events_latency.py "http://127.0.0.1:$PORT" "$token" "$hook_port" "$NATS" \
  "bench$tag.events" "$((secs + 5))" >"$work/latency.txt" &
sub=$!
sleep 1
conns=25
out=$(wrk -t2 -c"$conns" -d"$DURATION" -s benches/cases-paced.lua -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$PORT/api/v1/cases" -- "$((1000 * conns / RATE))")
echo "$out" | grep -E 'Requests/sec|Non-2xx' >&2
wait "$sub"
cat "$work/latency.txt"
stop_server

echo "== 3. a backlog of $BACKLOG creates drained" >&2
url=$(fresh_db backlog "$gh")
read -r id secret < <(client_for "$gh" "$url")
hook=$(GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LOG=warn ev "$gh" webhook create \
  --url "http://127.0.0.1:$hook_port/hook" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LOG=warn ev "$gh" webhook disable "$hook" >/dev/null
# NATS unreachable while the backlog is written (a port nothing listens on).
serve_with "$gh" "$url" "${events_env[@]}" GATEHOUSE_NATS_URL="nats://127.0.0.1:$((PORT + 9))"
token=$(curl -sf -u "$id:$secret" -d grant_type=client_credentials -d 'scope=cases.write events.read' \
  "http://127.0.0.1:$PORT/oauth2/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
start=$(now_ms)
python3 - "$PORT" "$token" "$BACKLOG" <<'PY'
import http.client, json, sys, threading
port, token, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"case": {"subject": "backlog"}})
def worker(n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(n):
        conn.request("POST", "/api/v1/cases", body, {"Authorization": f"Bearer {token}",
                     "Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        assert r.status == 201, r.status
threads = [threading.Thread(target=worker, args=(total // 16,)) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
PY
echo "backlog of $BACKLOG written in $(( $(now_ms) - start )) ms" >&2
stop_server
GATEHOUSE_DATABASE_URL=$url GATEHOUSE_LOG=warn ev "$gh" webhook enable "$hook" >/dev/null
# The subscribers first (timed from their start), then the server with NATS reachable.
python3 benches/events_latency.py "http://127.0.0.1:$PORT" "$token" "$hook_port" "$NATS" \
  "bench$tag.events" 600 "$(( BACKLOG / 16 * 16 ))" &
sub=$!
sleep 0.5
serve_with "$gh" "$url" "${events_env[@]}" GATEHOUSE_NATS_URL="nats://$NATS"
wait "$sub"
stop_server
