#!/usr/bin/env bash
# testenv/quickstart.sh — the README's first command.
# Starts the two local MariaDB zones, builds drc, checks zone a, starts the binlog
# reader of zone a in the background, writes sample orders and shows them as drc
# reads them. Leaves everything running and says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/lib.sh

testenv/up.sh
log "building drc (cargo build)"
cargo build --quiet
DRC=target/debug/drc

log "drc check on zone a:"
$DRC check --config testenv/zone-a.toml

OUT="$RUN_DIR/quickstart-zone-a.jsonl"
PIDF="$RUN_DIR/quickstart-tail.pid"
if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then kill "$(cat "$PIDF")"; sleep 1; fi
zone_sql a "CREATE TABLE IF NOT EXISTS shop.orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
log "starting the zone-a binlog reader: $DRC binlog tail --config testenv/zone-a.toml --output $OUT"
DRC_LOG=warn setsid $DRC binlog tail --config testenv/zone-a.toml --from now --reset --output "$OUT" \
  >/dev/null 2>"$RUN_DIR/quickstart-tail.log" < /dev/null &
echo $! > "$PIDF"
sleep 1
log "writing sample orders in zone a"
zone_sql a "INSERT INTO shop.orders (customer, amount) VALUES ('alice', 42.50), ('bob', -3.10);
            UPDATE shop.orders SET status = 'paid' WHERE customer = 'alice';
            DELETE FROM shop.orders WHERE customer = 'bob' AND amount < 0;"
for _ in $(seq 1 50); do [ "$(grep -c '"table":"orders"' "$OUT" 2>/dev/null || true)" -ge 4 ] && break; sleep 0.2; done
log "what drc read from zone a's binlog (JSON lines, schemas/change_event.v1.json):"
grep '"table":"orders"' "$OUT" || { log "nothing read; see $RUN_DIR/quickstart-tail.log"; exit 1; }
cat <<MSG

Running:
  zone a MariaDB 127.0.0.1:33061, zone b MariaDB 127.0.0.1:33062 (user drc_test / drc_test)
  drc binlog tail of zone a (pid $(cat "$PIDF")) appending to $OUT
Try:   mariadb -h127.0.0.1 -P33061 -udrc_test -pdrc_test -e "INSERT INTO shop.orders (customer, amount) VALUES ('you', 1)"
       tail -f $OUT
Stop:  kill \$(cat $PIDF); testenv/down.sh
MSG
