#!/usr/bin/env bash
# testenv/drill.sh — a complete failover drill against the local test environment,
# driven only through drc's CLI, the way a drill script drives production:
#
#   1. an application load writes orders in zone a (user `app`, DML only);
#   2. `drc fence --zone a`: zone a's server refuses application writes (read_only),
#      drc's applier keeps working; the application notices and stops writing in a;
#   3. `drc wait --drained --from a --to b`: everything committed in a is applied in b;
#   4. the load moves to zone b;
#   5. verification: every write the application saw committed is in both zones
#      (none lost), and no conflict on the drill's rows is left unexplained;
#   6. `drc unfence --zone a`;
#   7. a global-zone table changes its home zone from a to b (shop.drill_regions): the
#      daemons run with `[replication.global_tables] "shop.drill_regions" = "a"`; the
#      application writes it in a, and once in b by mistake (undone in b); then
#      `drc fence --zone a`, `drc wait --drained --from a --to b`, the config of both
#      zones switched to home b and the daemons restarted, `drc unfence --zone a`; the
#      application writes it in b, and once in a by mistake (undone in a). Every write
#      made in the home zone of its time is in both zones, no misrouted one is; then
#      the daemons go back to the standard configs.
#
# Prints a short report ending in "RESULT: PASS" (exit 0) or "RESULT: FAIL" (exit 1).
# Starts the servers and the two daemons (testenv/zone-a.toml, zone-b.toml) if needed
# and leaves them running. Options: DRILL_SECONDS (load duration per zone, default 3),
# DRC_BIN (a drc binary to use instead of building target/debug/drc).
set -euo pipefail
cd "$(dirname "$0")/.."
. testenv/lib.sh

secs="${DRILL_SECONDS:-3}"
testenv/up.sh --redis --zk >/dev/null
if [ -n "${DRC_BIN:-}" ]; then DRC="$DRC_BIN"; else cargo build --quiet; DRC="$REPO_ROOT/target/debug/drc"; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
app() { # zone port, SQL -> output
  mariadb --no-defaults -h127.0.0.1 -P"$(zone_port "$1")" -uapp -papp -N -B -e "$2"
}
admin_sql() { mariadb --no-defaults -h127.0.0.1 -P"$(zone_port "$1")" -udrc_test -pdrc_test -N -B -e "$2"; }

for z in a b; do
  zone_sql "$z" "CREATE TABLE IF NOT EXISTS shop.drill_regions (
    id BIGINT PRIMARY KEY AUTO_INCREMENT, drill VARCHAR(32) NOT NULL, zone CHAR(1) NOT NULL, n INT NOT NULL,
    KEY (drill))"
  zone_sql "$z" "CREATE TABLE IF NOT EXISTS shop.drill_orders (
    id BIGINT PRIMARY KEY AUTO_INCREMENT, drill VARCHAR(32) NOT NULL, zone CHAR(1) NOT NULL, n INT NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY (drill))"
  "$DRC" init --config "testenv/zone-$z.toml" >/dev/null
done
for z in a b; do
  if ! "$DRC" status --config "testenv/zone-$z.toml" >/dev/null 2>&1; then
    start_daemon "$z" "$DRC"
  fi
done
"$DRC" unfence --config testenv/zone-a.toml --zone a >/dev/null   # a previous drill may have stopped half-way
drill="drill-$(date +%s%N | cut -c1-13)"
since="$(admin_sql b "SELECT NOW(6)")"

# The application: writes one order per statement until told to stop or refused;
# records every id it saw committed (a.ok) and every refusal (a.err).
load() { # zone
  local z="$1" n=0 out
  while [ ! -f "$work/stop-$z" ] && [ "$n" -lt 5000 ]; do
    n=$((n + 1))
    if out="$(app "$z" "INSERT INTO shop.drill_orders (drill, zone, n) VALUES ('$drill', '$z', $n); SELECT LAST_INSERT_ID();" 2>&1)"; then
      echo "$out" >> "$work/$z.ok"
    else
      echo "$out" >> "$work/$z.err"
      break   # the application sees the fence and stops writing here
    fi
  done
}
touch "$work/a.ok" "$work/a.err" "$work/b.ok" "$work/b.err"

echo "drill $drill: load in zone a for ${secs}s"
load a & loader=$!
sleep "$secs"
fence_out="$("$DRC" fence --config testenv/zone-a.toml --zone a)"
echo "  $fence_out"
wait "$loader" || true
refused="$(grep -c 'read-only\|read_only\|1290' "$work/a.err" || true)"
t0=$(date +%s%N)
wait_out="$("$DRC" wait --config testenv/zone-b.toml --drained --from a --to b --timeout 60s)" || {
  echo "  $wait_out"; echo "RESULT: FAIL (zone b did not drain zone a's writes)"; exit 1; }
drain_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "  $wait_out"

echo "drill $drill: load moved to zone b for ${secs}s"
load b & loader=$!
sleep "$secs"
touch "$work/stop-b"
wait "$loader" || true
"$DRC" wait --config testenv/zone-a.toml --drained --from b --to a --timeout 60s >/dev/null || {
  echo "RESULT: FAIL (zone a did not drain zone b's writes)"; exit 1; }

# Verification: every committed id is in both zones; nothing else of this drill is.
lost=0
for z in a b; do
  admin_sql "$z" "SELECT id FROM shop.drill_orders WHERE drill = '$drill' ORDER BY id" > "$work/in-$z"
done
sort "$work/a.ok" "$work/b.ok" > "$work/committed"   # comm needs the lexical order
for z in a b; do
  missing="$(comm -23 "$work/committed" <(sort "$work/in-$z") | wc -l)"
  extra="$(comm -13 "$work/committed" <(sort "$work/in-$z") | wc -l)"
  if [ "$missing" != 0 ] || [ "$extra" != 0 ]; then
    echo "  zone $z: $missing committed writes missing, $extra unexpected rows"; lost=$((lost + missing))
  fi
done
conflicts="$(admin_sql b "SELECT COUNT(*) FROM drc.conflicts WHERE db = 'shop' AND tbl = 'drill_orders' AND drc.conflicts.at >= '$since'")"
conflicts_a="$(admin_sql a "SELECT COUNT(*) FROM drc.conflicts WHERE db = 'shop' AND tbl = 'drill_orders' AND drc.conflicts.at >= '$since'")"
"$DRC" unfence --config testenv/zone-a.toml --zone a >/dev/null
ro="$(admin_sql a "SELECT @@global.read_only")"

# 7. the home zone of a global-zone table moves from a to b
global_cfg() { # home zone -> testenv/.drill-zone-{a,b}.toml (relative paths stay valid there)
  for z in a b; do
    { cat "testenv/zone-$z.toml"
      printf '\n[replication.global_tables]\n"shop.drill_regions" = "%s"\n' "$1"; } > "testenv/.drill-zone-$z.toml"
  done
}
restart_daemons() { # config prefix
  for z in a b; do stop_daemon "$z"; done
  for z in a b; do start_daemon "$z" "$DRC" "$1$z.toml"; done
}
regions() { # zone, condition -> count
  admin_sql "$1" "SELECT COUNT(*) FROM shop.drill_regions WHERE drill = '$drill' AND $2"
}
write_regions() { # zone, count -> ids committed, one per line
  local i
  for i in $(seq 1 "$2"); do
    app "$1" "INSERT INTO shop.drill_regions (drill, zone, n) VALUES ('$drill', '$1', $i); SELECT LAST_INSERT_ID();"
  done
}
undone() { # zone: the misrouted row written there is gone there, and never reached the other zone
  local _
  for _ in $(seq 1 100); do
    [ "$(regions a "n = -1")" = 0 ] && [ "$(regions b "n = -1")" = 0 ] && return 0
    sleep 0.2
  done
  return 1
}
global_cfg a
restart_daemons testenv/.drill-zone-
write_regions a 20 > "$work/regions.ok"
app b "INSERT INTO shop.drill_regions (drill, zone, n) VALUES ('$drill', 'b', -1)"   # misrouted
undone b || { echo "RESULT: FAIL (zone b kept a misrouted write of a global-zone table)"; exit 1; }
"$DRC" fence --config testenv/zone-a.toml --zone a >/dev/null
"$DRC" wait --config testenv/.drill-zone-b.toml --drained --from a --to b --timeout 60s >/dev/null || {
  echo "RESULT: FAIL (zone b did not drain zone a's writes before the home move)"; exit 1; }
global_cfg b
restart_daemons testenv/.drill-zone-
"$DRC" unfence --config testenv/zone-a.toml --zone a >/dev/null
write_regions b 20 >> "$work/regions.ok"
app a "INSERT INTO shop.drill_regions (drill, zone, n) VALUES ('$drill', 'a', -1)"   # misrouted now
"$DRC" wait --config testenv/.drill-zone-a.toml --drained --from b --to a --timeout 60s >/dev/null || {
  echo "RESULT: FAIL (zone a did not drain zone b's writes after the home move)"; exit 1; }
undone a || { echo "RESULT: FAIL (zone a kept a misrouted write of a global-zone table)"; exit 1; }
global_lost=0
for z in a b; do
  admin_sql "$z" "SELECT id FROM shop.drill_regions WHERE drill = '$drill' ORDER BY id" > "$work/regions-$z"
  if ! diff -q <(sort "$work/regions.ok") <(sort "$work/regions-$z") >/dev/null; then
    global_lost=$((global_lost + $(comm -3 <(sort "$work/regions.ok") <(sort "$work/regions-$z") | wc -l)))
  fi
done
misrouted_a="$(admin_sql a "SELECT COUNT(*) FROM drc.conflicts WHERE db = 'shop' AND tbl = 'drill_regions' AND kind = 'misrouted_write' AND resolution = 'undone' AND drc.conflicts.at >= '$since'")"
misrouted_b="$(admin_sql b "SELECT COUNT(*) FROM drc.conflicts WHERE db = 'shop' AND tbl = 'drill_regions' AND kind = 'misrouted_write' AND resolution = 'undone' AND drc.conflicts.at >= '$since'")"
restart_daemons testenv/zone-
rm -f testenv/.drill-zone-a.toml testenv/.drill-zone-b.toml

ok_a=$(wc -l < "$work/a.ok"); ok_b=$(wc -l < "$work/b.ok")
cat <<REPORT
drill report ($drill)
  writes committed in zone a before the fence: $ok_a (refused after the fence: $refused)
  drained a -> b in ${drain_ms} ms
  writes committed in zone b after the move:  $ok_b
  lost writes: $lost
  conflicts on the drill's rows: $((conflicts + conflicts_a)) unexplained
  zone a unfenced: read_only = $ro
  global table home moved a -> b: $(wc -l < "$work/regions.ok") home writes, lost or extra: $global_lost, misrouted writes undone: a $misrouted_a, b $misrouted_b
REPORT
# the fence must have refused the application's next write in zone a (a fence that
# does nothing leaves the loader writing until its bound, with nothing refused)
if [ "$lost" = 0 ] && [ "$conflicts" = 0 ] && [ "$conflicts_a" = 0 ] && [ "$ok_a" -gt 0 ] && [ "$ok_b" -gt 0 ] && [ "$ro" = 0 ] && [ "$refused" -ge 1 ] \
   && [ "$global_lost" = 0 ] && [ "$misrouted_a" = 1 ] && [ "$misrouted_b" = 1 ]; then
  echo "RESULT: PASS"
else
  echo "RESULT: FAIL"; exit 1
fi
