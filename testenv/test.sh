#!/usr/bin/env bash
# testenv/test.sh — the test command (README, CI): installs and starts every server the
# tests need, then runs the whole suite against them. Extra arguments go to nextest,
# e.g. testenv/test.sh --test fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/lib.sh

testenv/up.sh --kafka    # MariaDB zones a and b, the Kafka broker (zone c is started by the tests that use it)
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
exec cargo nextest run --no-fail-fast "$@"
