#!/usr/bin/env bash
# testenv/down.sh [ZONE...] [--kafka] [--kafka-secured] [--redis] [--zk] — stop the local test servers
# started by up.sh (no argument: every zone, the Kafka broker, the Redis and the
# ZooKeeper servers).
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

stop_kafka() {
  local pidf="$RUN_DIR/kafka/tansu.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    log "stopping kafka broker (pid $(cat "$pidf"))"; kill "$(cat "$pidf")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$(cat "$pidf")" 2>/dev/null; then
      log "kafka broker did not stop in 10 s, killing"; kill -9 "$(cat "$pidf")" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidf"
}

# The secured broker (tansu requiring SASL, and socat's TLS in front): stopped only by a
# full down.sh or --kafka-secured, so that tests restarting the plain broker (--kafka)
# leave it to the tests using it meanwhile.
stop_kafka_secured() {
  local f
  for f in "$RUN_DIR/kafka-secured/socat.pid" "$RUN_DIR/kafka-secured/tansu.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

stop_redis() {
  local z port
  for z in a b; do
    port="$(redis_port "$z")"
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
      log "stopping redis of zone $z"; redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    fi
  done
}

# A paused server (a test's kill -STOP) is resumed first, or it would not see the TERM.
stop_zk() {
  local z pidf pid
  for z in a b; do
    pidf="$(zk_dir "$z")/zk.pid"
    pid="$(cat "$pidf" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidf"; continue; fi
    log "stopping zookeeper of zone $z (pid $pid)"
    kill -CONT "$pid" 2>/dev/null || true
    zk_ctl "$z" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then log "zookeeper of zone $z did not stop in 10 s, killing"; kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$pidf"
  done
}

zones=()
for a in "$@"; do case "$a" in --kafka) stop_kafka ;; --kafka-secured) stop_kafka_secured ;; --redis) stop_redis ;; --zk) stop_zk ;; *) zones+=("$a") ;; esac; done
if [ "$#" = 0 ]; then stop_kafka; stop_kafka_secured; stop_redis; stop_zk; zones=($ZONES c d e f); fi
for z in "${zones[@]}"; do stop_zone "$z"; done
