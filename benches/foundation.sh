#!/usr/bin/env bash
# Foundation benchmarks (release build, loopback only, bounded in time):
#   1. start-up: process start -> first 200 on /readyz, on an existing SQLite database
#   2. idle RSS after start-up
#   3. /healthz throughput and p99 next to an axum hello-world floor, same tool, same run
# Usage: benches/foundation.sh  (env: DURATION=10s CONC=32 RUNS=15 ROUNDS=3 PORT=18080 LOG=info)
# Throughput runs ours and the floor alternately, ROUNDS times, and reports the median of
# the per-round ratios: this 2-core machine is shared with the load generator and noisy.
# Installs wrk (Debian package) if no load tool is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s} CONC=${CONC:-32} RUNS=${RUNS:-15} ROUNDS=${ROUNDS:-3} LOG=${LOG:-info}
PORT=${PORT:-18080} FLOOR_PORT=${FLOOR_PORT:-18081}

pids=()
work=$(mktemp -d)
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null
fi

echo "building (release)" >&2
cargo build --release --quiet
(cd benches/http-floor && CARGO_TARGET_DIR="$PWD/../../target/http-floor" cargo build --release --quiet)
gh="$PWD/target/release/gatehouse"
floor="$PWD/target/http-floor/release/http-floor"

export GATEHOUSE_DATABASE_URL="sqlite://$work/bench.db" GATEHOUSE_LISTEN="127.0.0.1:$PORT" \
       GATEHOUSE_LOG=$LOG GATEHOUSE_DEMO=false
"$gh" migrate >/dev/null

now_ms() { date +%s%3N; }
wait_ready() { # URL TIMEOUT_S
  local end=$(( $(now_ms) + $2 * 1000 ))
  until curl -sf -o /dev/null "$1"; do
    [ "$(now_ms)" -lt "$end" ] || { echo "timed out waiting for $1" >&2; return 1; }
    sleep 0.002
  done
}

# 1. start-up time
samples=()
for _ in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  "$gh" serve >/dev/null 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$PORT/readyz" 10
  samples+=($(( ($(date +%s%N) - t0) / 1000000 )))
  kill -TERM "$pid"; wait "$pid" || true
done
sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
median=$(echo "$sorted" | awk -v n="$RUNS" 'NR == int((n + 1) / 2)')
echo "startup_to_ready_ms   median=$median min=$(echo "$sorted" | head -1) max=$(echo "$sorted" | tail -1) runs=$RUNS"

# 2. idle RSS
"$gh" serve >/dev/null 2>&1 &
gh_pid=$!; pids+=("$gh_pid")
wait_ready "http://127.0.0.1:$PORT/readyz" 10
sleep 1
echo "idle_rss_mb           $(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$gh_pid/status")"

# 3. throughput: ours, floor, ours, floor (interleaved to share the noise)
"$floor" "$FLOOR_PORT" &
pids+=("$!")
wait_ready "http://127.0.0.1:$FLOOR_PORT/" 10
load() { # LABEL URL
  local out rps p99
  out=$(wrk -t2 -c"$CONC" -d"$DURATION" --latency "$2")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  printf '%-22s req/s=%-10s p99=%s\n' "$1" "$rps" "$p99" >&2
  echo "$rps"
}
ratios=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    ours=$(load "healthz gatehouse" "http://127.0.0.1:$PORT/healthz")
    floor_rps=$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/")
  else
    floor_rps=$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/")
    ours=$(load "healthz gatehouse" "http://127.0.0.1:$PORT/healthz")
  fi
  ratios+=("$(awk -v a="$ours" -v b="$floor_rps" 'BEGIN { printf "%.3f", a / b }')")
done
sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
echo "healthz_vs_floor      median=$(echo "$sorted" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)') rounds: ${ratios[*]} (wrk, $CONC connections, log=$LOG)"
echo "idle_rss_after_load_mb $(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$gh_pid/status")"
