#!/usr/bin/env bash
# testenv/quickstart.sh — the README's first command.
# Starts the two local MariaDB zones, a Redis per zone and one drc daemon per zone
# (direct transport), writes sample orders in both zones, shows them replicated both
# ways, provokes a conflict and shows how it was resolved, then shows Redis keys and a
# counter synced both ways. Leaves everything running; says how to stop.
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/lib.sh

testenv/up.sh --redis --zk
log "building drc (cargo build)"
cargo build --quiet
DRC="$REPO_ROOT/target/debug/drc"
SQL_A() { mariadb --no-defaults -h127.0.0.1 -P33061 -udrc_test -pdrc_test -N -B -e "$*"; }
SQL_B() { mariadb --no-defaults -h127.0.0.1 -P33062 -udrc_test -pdrc_test -N -B -e "$*"; }

for z in a b; do
  zone_sql "$z" "CREATE TABLE IF NOT EXISTS shop.orders (
    id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL,
    status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
done
log "drc check, zone a:"; $DRC check --config testenv/zone-a.toml | tail -4
log "drc check, zone b:"; $DRC check --config testenv/zone-b.toml | tail -4

log "starting the drc daemons: drc run --config testenv/zone-a.toml / zone-b.toml"
start_daemon a "$DRC"
start_daemon b "$DRC"

log "writing orders in both zones"
SQL_A "INSERT INTO shop.orders (customer, amount) VALUES ('alice (written in a)', 42.50)"
SQL_B "INSERT INTO shop.orders (customer, amount) VALUES ('bob (written in b)', 17.00)"
for _ in $(seq 1 50); do
  [ "$(SQL_A "SELECT COUNT(*) FROM shop.orders")" = "$(SQL_B "SELECT COUNT(*) FROM shop.orders")" ] && break
  sleep 0.2
done
echo "--- zone a";  SQL_A "SELECT id, customer, amount, status FROM shop.orders ORDER BY id"
echo "--- zone b";  SQL_B "SELECT id, customer, amount, status FROM shop.orders ORDER BY id"

log "a conflict: the same order changed in both zones while zone a's daemon is down"
kill "$(cat "$RUN_DIR/drc-a.pid")"; sleep 0.5
# (this run's order from zone a: still 'new', so both updates below change it)
ID=$(SQL_A "SELECT MAX(id) FROM shop.orders WHERE customer LIKE 'alice%'")
SQL_B "UPDATE shop.orders SET status = 'paid' WHERE id = $ID"
sleep 0.05
SQL_A "UPDATE shop.orders SET status = 'shipped' WHERE id = $ID"
start_daemon a "$DRC"
sleep 1.5
echo "--- order $ID in zone a: $(SQL_A "SELECT status, updated_at FROM shop.orders WHERE id = $ID")"
echo "--- order $ID in zone b: $(SQL_B "SELECT status, updated_at FROM shop.orders WHERE id = $ID")"
echo "--- conflict log of zone b (drc.conflicts):"
SQL_B "SELECT kind, resolution, origin_zone, incoming_version, local_version FROM drc.conflicts ORDER BY id DESC LIMIT 1"
log "Redis: a key set in zone a, a counter incremented in both zones (database 0 is synced both ways)"
RA() { redis-cli -p 6381 "$@"; }
RB() { redis-cli -p 6382 "$@"; }
RA DEL visits >/dev/null   # a fresh counter (the delete reaches zone b first)
for _ in $(seq 1 50); do [ "$(RB EXISTS visits)" = "0" ] && break; sleep 0.1; done
RA SET greeting "hello from zone a" >/dev/null
for _ in 1 2 3; do RA INCR visits >/dev/null; RB INCR visits >/dev/null; done
for _ in $(seq 1 50); do
  [ "$(RB GET greeting)" = "hello from zone a" ] && [ "$(RA GET visits)" = "$(RB GET visits)" ] && [ "$(RB GET visits)" -ge 6 ] && break
  sleep 0.2
done
echo "--- zone b's Redis: greeting = $(RB GET greeting)"
echo "--- visits: zone a $(RA GET visits), zone b $(RB GET visits) (3 increments in each zone)"

echo "--- ZooKeeper: a node created in zone a's /drc-test/from-a (mirrored one way to zone b)"
ZKA() { "$ZK_BIN/zkCli.sh" -server 127.0.0.1:21811 "$@" 2>/dev/null | grep -v '^$\|WATCHER\|WatchedEvent\|Connecting'; }
ZKB() { "$ZK_BIN/zkCli.sh" -server 127.0.0.1:21812 "$@" 2>/dev/null | grep -v '^$\|WATCHER\|WatchedEvent\|Connecting'; }
ZKA create /drc-test/from-a/quickstart "routed to zone a" >/dev/null || ZKA set /drc-test/from-a/quickstart "routed to zone a" >/dev/null
for _ in $(seq 1 50); do ZKB get /drc-test/from-a/quickstart 2>/dev/null | grep -q "routed to zone a" && break; sleep 0.2; done
echo "--- zone b's ZooKeeper: /drc-test/from-a/quickstart = $(ZKB get /drc-test/from-a/quickstart | tail -1)"
cat <<MSG

Both zones agree: the later write ('shipped', zone a) won everywhere, and the Redis
counter holds every increment of both zones.

Running:
  zone a MariaDB 127.0.0.1:33061, zone b MariaDB 127.0.0.1:33062 (user drc_test / drc_test)
  zone a Redis 127.0.0.1:6381, zone b Redis 127.0.0.1:6382
  zone a ZooKeeper 127.0.0.1:21811, zone b ZooKeeper 127.0.0.1:21812
  drc daemons: pids $(cat "$RUN_DIR/drc-a.pid") (zone a) and $(cat "$RUN_DIR/drc-b.pid") (zone b), logs in $RUN_DIR/drc-*.log
Try:   mariadb -h127.0.0.1 -P33062 -udrc_test -pdrc_test -e "INSERT INTO shop.orders (customer, amount) VALUES ('you', 1)"
       mariadb -h127.0.0.1 -P33061 -udrc_test -pdrc_test -e "SELECT * FROM shop.orders"
Stop:  kill \$(cat $RUN_DIR/drc-a.pid) \$(cat $RUN_DIR/drc-b.pid); testenv/down.sh
MSG
