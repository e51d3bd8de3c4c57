#!/usr/bin/env bash
# testenv/fuzz.sh [SECONDS] [TARGET...] — runs each fuzz target (fuzz/fuzz_targets/) for
# SECONDS (default 60) on its committed corpus fuzz/corpus/<target>, with libFuzzer's
# coverage guidance on the stable toolchain (`cargo fuzz -s none`: no sanitizer, which
# needs nightly; Rust's own checks catch what a sanitizer would in safe code).
# An input that panics, runs over 30 s, or takes over 1 GiB of memory (8 GiB for binlog
# files: a length taken from the input unchecked) fails the run and is left in
# fuzz/artifacts/<target>/; reproduce with `cargo fuzz run -s none -O <target> <file>`.
# Installs cargo-fuzz (crates.io) when missing. Prints per target: seconds, runs, coverage.
# FUZZ_KNOWN_OPEN="t1 t2": targets with a finding not fixed yet (docs/FUZZING.md): their
# failure is printed as such and does not fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(binlog_file kafka_message rdb config resp_stream)
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "[fuzz] installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked >/dev/null 2>&1
fi
cargo fuzz build -s none -O >/dev/null 2>&1 || cargo fuzz build -s none -O
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" fuzz/logs
  log="fuzz/logs/$t.log"
  # a binlog event may be 1 GiB (MySQL's max_allowed_packet ceiling), and a compressed
  # TRANSACTION_PAYLOAD of a few hundred bytes may hold one: decoding it holds several
  # times that (docs/FUZZING.md). Everything else stays under 1 GiB.
  rss=1024
  [ "$t" = binlog_file ] && rss=8192
  start=$(date +%s)
  if cargo fuzz run -s none -O "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" \
       -rss_limit_mb="$rss" -malloc_limit_mb="$rss" -timeout=30 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  elif [[ " ${FUZZ_KNOWN_OPEN:-} " == *" $t "* ]]; then
    result="found an input again: open finding, docs/FUZZING.md (see $log and fuzz/artifacts/$t/)"
  else
    result="FAILED (see $log and fuzz/artifacts/$t/)"
    failed=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "[fuzz] $t: $(( $(date +%s) - start )) s, $runs runs, coverage $cov edges, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs: $result"
  [ "$result" = ok ] || grep -E "ERROR|panicked|memory allocation" "$log" | head -5 >&2 || true
done
exit $failed
