#!/usr/bin/env bash
# Fuzzes the parsers that take untrusted bytes, each target for FUZZ_SECS (default 300 s):
# token-endpoint forms and Basic credentials, client assertions, key uploads (PEM, X.509,
# JWKS), bearer tokens at the guard, the case JSON. Every target drives a real Gatehouse
# (router, SQLite, key ring) in memory; an answer of 500 counts as a crash, like a panic.
# Not part of CI. Needs a nightly toolchain (rustup) and cargo-fuzz (installed here from
# crates.io if missing). Prints one line per target and exits 1 if any target crashed;
# crashing inputs are kept under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECS:-300}
targets=${FUZZ_TARGETS:-"token_form client_assertion key_upload bearer case_json"}
rustup run nightly rustc --version >/dev/null 2>&1 || {
  echo "fuzz: a nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 2; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O --debug-assertions >/dev/null
failed=0
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" fuzz/logs
  log="fuzz/logs/$t.log"
  if cargo +nightly fuzz run -O --debug-assertions "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=4096 -max_len=8192 >"$log" 2>&1; then
    outcome=ok
  else
    outcome=CRASHED failed=1
  fi
  runs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
  echo "fuzz $t: $outcome, ${runs:-0} runs in ${secs} s, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs (log: $log)"
done
exit $failed
