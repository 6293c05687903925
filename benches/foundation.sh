#!/usr/bin/env bash
# Foundation benchmarks (release build, loopback only, bounded in time):
#   1. start-up: process start -> first 200 on /readyz, on an existing SQLite database
#   2. idle RSS after start-up
#   3. /healthz throughput and p99 next to an axum hello-world floor, same tool, same run
# Usage: benches/foundation.sh  (env: DURATION=10s CONC=32 RUNS=15 ROUNDS=3 LOG=info)
# Throughput alternates ours and the floor for ROUNDS rounds and reports the median of the
# per-round ratios: this 2-core machine is shared with the load generator and noisy.
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-15}

samples=()
for _ in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  start_gatehouse
  samples+=($(( ($(date +%s%N) - t0) / 1000000 )))
  kill -TERM "$gh_pid"; wait "$gh_pid" || true
done
echo "startup_to_ready_ms    median=$(printf '%s\n' "${samples[@]}" | median) runs=$RUNS (min $(printf '%s\n' "${samples[@]}" | sort -n | head -1), max $(printf '%s\n' "${samples[@]}" | sort -n | tail -1))"

start_gatehouse
sleep 1
echo "idle_rss_mb            $(rss_mb "$gh_pid")"

start_floor
ratios=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    ours=$(load "healthz gatehouse" "http://127.0.0.1:$PORT/healthz")
    base=$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/")
  else
    base=$(load "hello-world floor" "http://127.0.0.1:$FLOOR_PORT/")
    ours=$(load "healthz gatehouse" "http://127.0.0.1:$PORT/healthz")
  fi
  ratios+=("$(ratio "$ours" "$base")")
done
echo "healthz_vs_floor       median=$(printf '%s\n' "${ratios[@]}" | median) rounds: ${ratios[*]} (wrk, $CONC connections, log=$LOG)"
echo "rss_after_load_mb      $(rss_mb "$gh_pid")"
