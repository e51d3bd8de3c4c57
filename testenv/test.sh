#!/usr/bin/env bash
# testenv/test.sh — the test command (README, CI): installs and starts every server the
# tests need, then runs the whole suite against them. Extra arguments go to nextest,
# e.g. testenv/test.sh --test fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/lib.sh
mkdir -p "$RUN_DIR"
check_disk
ensure_build_deps

# The test broker starts from empty storage: tansu's SQLite store slows down as it
# grows (docs/KAFKA.md), and every test uses its own topics anyway.
testenv/down.sh --kafka
rm -f "$RUN_DIR/kafka/tansu.db" "$RUN_DIR/kafka/tansu.db-wal" "$RUN_DIR/kafka/tansu.db-shm"
testenv/up.sh --kafka --redis --zk   # MariaDB zones a and b, the Kafka broker, Redis a and b, ZooKeeper a and b (zone c is started by the tests that use it)
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
exec cargo nextest run --no-fail-fast "$@"
