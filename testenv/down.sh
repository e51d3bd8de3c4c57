#!/usr/bin/env bash
# testenv/down.sh [ZONE...] — stop the local test servers started by up.sh.
# Safe to run twice; data stays in $DRC_TESTENV_DIR (rm -rf it for a clean slate).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stop_zone() {
  local z="$1" pidf pid
  pidf="$(zone_pidfile "$z")"
  if ! zone_alive "$z"; then log "zone $z not running"; return 0; fi
  pid="$(cat "$pidf")"
  log "stopping zone $z (pid $pid)"
  mariadb-admin --no-defaults -uroot --socket="$(zone_sock "$z")" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  log "zone $z did not stop in 60 s, killing"; kill -9 "$pid" 2>/dev/null || true
}

for z in ${*:-$ZONES}; do stop_zone "$z"; done
