#!/usr/bin/env bash
# testenv/up.sh [ZONE...] — install (apt-get) and start the local test servers.
#
# Starts one MariaDB per zone as a plain local process on 127.0.0.1:
#   zone a: 127.0.0.1:33061  server_id=1  gtid_domain_id=1  auto_increment_offset=1
#   zone b: 127.0.0.1:33062  server_id=2  gtid_domain_id=2  auto_increment_offset=2
# with ROW binlogs, FULL row image, FULL row metadata, auto_increment_increment=2.
# Users: drc/drc (replication + apply, least privilege), drc_test/drc_test (ALL, tests),
# app/app (DML on shop only: an application, for the failover drill).
# --kafka also starts the Kafka-protocol broker (tansu) on 127.0.0.1:9092; --redis one
# redis-server per zone on 127.0.0.1:6381 (a) and 127.0.0.1:6382 (b); --zk one standalone
# ZooKeeper 3.8 per zone on 127.0.0.1:21811 (a) and 127.0.0.1:21812 (b), TLS on 22811 and
# 22812; --no-mariadb
# starts only the servers named by the other flags (e.g. `up.sh --zk --no-mariadb`).
# Idempotent: a zone already running is left alone. Data in $DRC_TESTENV_DIR
# (default testenv/.run). Stop with testenv/down.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kafka=0
redis=0
zk=0
mariadb=1
args=()
for a in "$@"; do
  case "$a" in --kafka) kafka=1 ;; --redis) redis=1 ;; --zk) zk=1 ;; --no-mariadb) mariadb=0 ;; *) args+=("$a") ;; esac
done
zones="${args[*]:-$ZONES}"
if [ "$mariadb" = 1 ]; then
  ensure_pkg mariadb mariadb-server mariadb-client
  MARIADBD="$(mariadb_bin)" || { log "mariadbd not found after install"; exit 1; }
fi
mkdir -p "$RUN_DIR/secrets"
printf 'drc' > "$RUN_DIR/secrets/drc.password"
chmod 600 "$RUN_DIR/secrets/drc.password"
[ -s "$RUN_DIR/secrets/admin.token" ] || printf 'testenv-%s' "$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')" > "$RUN_DIR/secrets/admin.token"
chmod 600 "$RUN_DIR/secrets/admin.token"

# A Kafka-protocol broker (tansu, from crates.io) on 127.0.0.1:9092 with durable
# SQLite storage, and the topics of the testenv zones (one partition each).
start_kafka() {
  if ! command -v tansu >/dev/null 2>&1; then
    log "installing tansu (cargo install tansu --locked --features dynostore,libsql; about 15 minutes)"
    cargo install tansu --locked --features dynostore,libsql >"$RUN_DIR/tansu-install.log" 2>&1 \
      || { tail -20 "$RUN_DIR/tansu-install.log" >&2; exit 1; }
  fi
  local dir="$RUN_DIR/kafka"
  mkdir -p "$dir"
  if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
    log "kafka broker already running on 127.0.0.1:9092"
  else
    log "starting kafka broker (tansu) on 127.0.0.1:9092"
    (cd "$dir" && exec setsid tansu broker --listener-url tcp://127.0.0.1:9092 \
       --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine "sqlite://tansu.db") \
       >"$dir/tansu.log" 2>&1 < /dev/null &
    echo $! > "$dir/tansu.pid"
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null && break; sleep 0.2; done
    (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null || { log "tansu did not start:"; tail -20 "$dir/tansu.log" >&2; exit 1; }
  fi
  for t in drc.a drc.b drc.c; do
    (cd "$dir" && tansu topic create "$t" --partitions 1 >/dev/null 2>&1) || true
  done
}

# The secured broker, for the TLS and SASL tests: a second tansu on 127.0.0.1:9094 that
# requires SASL (SCRAM; user drc, password in secrets/kafka.password, created while it
# first runs without authentication), behind TLS on 127.0.0.1:9095 (socat with the test
# CA's server certificate, make_tls) - tansu 0.6 takes --cert/--key but does not serve
# TLS itself. It advertises 127.0.0.1:9095, so clients reach it only through TLS.
start_kafka_secured() {
  local dir="$RUN_DIR/kafka-secured" pass
  mkdir -p "$dir"
  [ -s "$RUN_DIR/secrets/kafka.password" ] || printf 'drc-kafka-%s' "$(od -An -N6 -tx8 /dev/urandom | tr -d ' ')" > "$RUN_DIR/secrets/kafka.password"
  chmod 600 "$RUN_DIR/secrets/kafka.password"
  pass="$(cat "$RUN_DIR/secrets/kafka.password")"
  ensure_pkg socat socat
  if [ -f "$dir/tansu.pid" ] && kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null; then
    log "secured kafka broker already running on 127.0.0.1:9094 (TLS on 9095)"
  else
    secured_broker() {
      (cd "$dir" && exec setsid tansu broker --listener-url tcp://127.0.0.1:9094 \
         --advertised-listener-url tcp://127.0.0.1:9095 --storage-engine "sqlite://tansu.db" "$@") \
         >>"$dir/tansu.log" 2>&1 < /dev/null &
      echo $! > "$dir/tansu.pid"
      for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/9094) 2>/dev/null && return 0; sleep 0.2; done
      log "secured tansu did not start:"; tail -20 "$dir/tansu.log" >&2; exit 1
    }
    if [ ! -f "$dir/user.created" ]; then
      secured_broker
      tansu user create --broker tcp://127.0.0.1:9094 --mechanism scram512 drc "$pass" >/dev/null
      tansu user create --broker tcp://127.0.0.1:9094 --mechanism scram256 drc "$pass" >/dev/null
      kill "$(cat "$dir/tansu.pid")"
      for _ in $(seq 1 50); do kill -0 "$(cat "$dir/tansu.pid")" 2>/dev/null || break; sleep 0.2; done
      touch "$dir/user.created"
    fi
    log "starting secured kafka broker (tansu, SASL) on 127.0.0.1:9094, TLS on 127.0.0.1:9095"
    secured_broker --authentication
  fi
  if ! { [ -f "$dir/socat.pid" ] && kill -0 "$(cat "$dir/socat.pid")" 2>/dev/null; }; then
    setsid socat "openssl-listen:9095,bind=127.0.0.1,reuseaddr,fork,cert=$RUN_DIR/tls/server.pem,key=$RUN_DIR/tls/server.key,verify=0" \
      tcp:127.0.0.1:9094 >"$dir/socat.log" 2>&1 < /dev/null &
    echo $! > "$dir/socat.pid"
    for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/9095) 2>/dev/null && break; sleep 0.1; done
  fi
}

# One Redis per zone (Debian's redis-server) on 127.0.0.1:6381 (a) and :6382 (b), each
# with its own directory, as a plain local process. Replication is allowed (drc
# captures as a replica); the backlog is 16 MB.
start_redis() {
  local z="$1" dir port
  dir="$(redis_dir "$z")"; port="$(redis_port "$z")"
  if redis-cli -p "$port" ping >/dev/null 2>&1; then log "redis of zone $z already running on 127.0.0.1:$port"; return 0; fi
  mkdir -p "$dir"
  cat > "$dir/redis.conf" <<CNF
port $port
bind 127.0.0.1
dir $dir
pidfile $dir/redis.pid
logfile $dir/redis.log
daemonize no
save ""
appendonly no
repl-backlog-size 16mb
# TLS on port+10 (6391, 6392) with the test CA's server certificate (make_tls), and
# an ACL user drc/drc-redis with exactly the grants docs/REDIS.md lists
tls-port $((port + 10))
tls-cert-file $RUN_DIR/tls/server.pem
tls-key-file $RUN_DIR/tls/server.key
tls-ca-cert-file $RUN_DIR/tls/ca.pem
tls-auth-clients optional
user default on nopass ~* &* +@all
user drc on >drc-redis ~* -@all +psync +replconf +ping +select +get +set +multi +exec +watch +del +info +scan +smismember +sadd +incr +incrby +expire +pexpire +pexpireat +acl|dryrun +config|get
CNF
  log "starting redis of zone $z on 127.0.0.1:$port"
  (exec setsid redis-server "$dir/redis.conf") >/dev/null 2>&1 < /dev/null &
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "redis of zone $z did not start:"; tail -20 "$dir/redis.log" >&2; exit 1
}

# One standalone ZooKeeper per zone (Debian's zookeeper package, 3.8) on 127.0.0.1:21811
# (a) and :21812 (b), each with its own zoo.cfg, dataDir and log in $(zk_dir ZONE), as a
# plain local process. tickTime 500 ms bounds session timeouts to 1-10 s, so tests can
# expire a session (kill -STOP the server for longer than the client's timeout); the
# four-letter commands are on (readiness, `mntr`), the admin server (port 8080) is off.
start_zk() {
  local z="$1" dir port pid
  dir="$(zk_dir "$z")"; port="$(zk_port "$z")"
  if zk_serving "$z"; then
    if grep -q '^secureClientPort=' "$dir/zoo.cfg" 2>/dev/null; then
      log "zookeeper of zone $z already running on 127.0.0.1:$port"; return 0
    fi
    # started by an older testenv, without the TLS port the tests now use
    log "zookeeper of zone $z runs without TLS: restarting it with the current zoo.cfg"
    zk_ctl "$z" stop >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do zk_serving "$z" || break; sleep 0.25; done
  fi
  mkdir -p "$dir/data"
  cat > "$dir/zoo.cfg" <<CNF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=10000
admin.enableServer=false
4lw.commands.whitelist=*
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
# TLS on port+1000 (22811, 22812) with the test CA's server certificate (make_tls):
# Netty serves both ports; PEM key store = key + certificate, trust store = the CA.
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
secureClientPort=$((port + 1000))
secureClientPortAddress=127.0.0.1
ssl.keyStore.location=$dir/keystore.pem
ssl.keyStore.type=PEM
ssl.trustStore.location=$RUN_DIR/tls/ca.pem
ssl.trustStore.type=PEM
ssl.clientAuth=none
CNF
  cat "$RUN_DIR/tls/server.key" "$RUN_DIR/tls/server.pem" > "$dir/keystore.pem"
  chmod 600 "$dir/keystore.pem"
  pid="$(cat "$dir/zk.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    log "zookeeper of zone $z (pid $pid) is up but not serving yet: waiting"
    kill -CONT "$pid" 2>/dev/null || true   # a test may have left it paused
  else
    log "starting zookeeper of zone $z on 127.0.0.1:$port"
    zk_ctl "$z" start >"$dir/zkServer.out" 2>&1 < /dev/null \
      || { log "zookeeper of zone $z did not start:"; cat "$dir/zkServer.out" >&2; tail -20 "$dir/zookeeper.log" >&2 2>/dev/null; exit 1; }
  fi
  for _ in $(seq 1 120); do zk_serving "$z" && return 0; sleep 0.25; done
  log "zookeeper of zone $z does not answer on 127.0.0.1:$port:"; tail -20 "$dir/zookeeper.log" >&2 2>/dev/null; exit 1
}

start_zone() {
  local z="$1" dir port sid dom off
  dir="$(zone_dir "$z")"; port="$(zone_port "$z")"; sid="$(zone_sid "$z")"
  dom="$(zone_domain "$z")"; off="$(zone_offset "$z")"
  if zone_alive "$z" && mariadb-admin --no-defaults -uroot --socket="$(zone_sock "$z")" ping >/dev/null 2>&1; then
    log "zone $z already running on 127.0.0.1:$port"; setup_sql "$z"; return 0
  fi
  mkdir -p "$dir/data" "$dir/binlog" "$dir/tmp"
  cat > "$dir/my.cnf" <<CNF
[mariadbd]
user = root
datadir = $dir/data
socket = $dir/mysqld.sock
pid-file = $dir/mysqld.pid
# Each zone its own tmpdir: a starting mariadbd deletes every #sql* file in its tmpdir,
# which with a shared /tmp removed the live temporary tables of the other zones'
# queries (a zone crashed in ha_maria::drop_table; another failed "Error on delete").
tmpdir = $dir/tmp
log-error = $dir/error.log
port = $port
bind-address = 127.0.0.1
skip-name-resolve
server_id = $sid
gtid_domain_id = $dom
gtid_strict_mode = ON
log_bin = $dir/binlog/zone-$z-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
log_slave_updates = ON
auto_increment_increment = 2
auto_increment_offset = $off
character_set_server = utf8mb4
collation_server = utf8mb4_general_ci
default_time_zone = '+00:00'
max_allowed_packet = 256M
max_binlog_size = 256M
binlog_cache_size = 1M
innodb_buffer_pool_size = 256M
innodb_log_file_size = 256M
# Test servers trade durability for speed; production needs 1 and 1 (drc check warns).
innodb_flush_log_at_trx_commit = 2
# TLS (testenv/up.sh make_tls): drc connects with verify-full.
ssl_ca = $RUN_DIR/tls/ca.pem
ssl_cert = $RUN_DIR/tls/server.pem
ssl_key = $RUN_DIR/tls/server.key
# drc's tombstone triggers are created by the drc user (no SUPER).
log_bin_trust_function_creators = ON
sync_binlog = 0
CNF
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising zone $z data directory"
    mariadb-install-db --no-defaults --user=root --datadir="$dir/data" \
      --auth-root-authentication-method=socket >"$dir/install.log" 2>&1 \
      || { cat "$dir/install.log" >&2; exit 1; }
  fi
  log "starting zone $z (MariaDB on 127.0.0.1:$port)"
  setsid "$MARIADBD" --defaults-file="$dir/my.cnf" >/dev/null 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    if mariadb-admin --no-defaults -uroot --socket="$dir/mysqld.sock" ping >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  mariadb-admin --no-defaults -uroot --socket="$dir/mysqld.sock" ping >/dev/null 2>&1 \
    || { log "zone $z did not start; tail of $dir/error.log:"; tail -20 "$dir/error.log" >&2; exit 1; }
  setup_sql "$z"
}

# Users and grants (idempotent; run on every up.sh so older data dirs catch up).
setup_sql() {
  local z="$1"
  zone_sql "$z" "
    SET GLOBAL log_bin_trust_function_creators = ON;
    CREATE USER IF NOT EXISTS 'drc'@'127.0.0.1' IDENTIFIED BY 'drc';
    CREATE USER IF NOT EXISTS 'drc'@'localhost' IDENTIFIED BY 'drc';
    -- Exactly the grants docs/OPERATIONS.md lists (the whole test suite runs drc as
    -- this user): the tests' application schemas are drc_* (and shop, the benches').
    -- Only added here (tests run up.sh while others run: no window without them); the
    -- broader global grants of older testenvs are revoked below.
    GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    -- (the tests use [replication.ddl_home], whose schema changes drc applies: CREATE,
    -- ALTER, INDEX, DROP; and upgrade from a drc with triggers: TRIGGER)
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, CREATE, ALTER, INDEX, DROP, TRIGGER ON \`drc\\_%\`.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON shop.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON sbtest.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON applybench.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON bench.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE TEMPORARY TABLES ON drc.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    -- drc fence sets read_only; the applier keeps writing under it.
    GRANT READ_ONLY ADMIN ON *.* TO 'drc'@'127.0.0.1', 'drc'@'localhost';
    -- An application user (no admin rights: read_only stops it), for the failover drill.
    CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'app';
    CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY 'app';
    GRANT SELECT, INSERT, UPDATE, DELETE ON shop.* TO 'app'@'127.0.0.1', 'app'@'localhost';
    CREATE USER IF NOT EXISTS 'drc_test'@'127.0.0.1' IDENTIFIED BY 'drc_test';
    CREATE USER IF NOT EXISTS 'drc_test'@'localhost' IDENTIFIED BY 'drc_test';
    GRANT ALL PRIVILEGES ON *.* TO 'drc_test'@'127.0.0.1', 'drc_test'@'localhost' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS shop;"
  zone_sql "$z" "REVOKE SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, TRIGGER, CREATE TEMPORARY TABLES, SLAVE MONITOR ON *.* FROM 'drc'@'127.0.0.1', 'drc'@'localhost'" 2>/dev/null || true
}

# A test CA and certificates (openssl), made once: the zones' MariaDB serve TLS with
# tls/server.pem (issued for 127.0.0.1 and zone.drc.test, by tls/ca.pem) and drc
# connects with [mysql.tls] mode = "verify-full". tls/other-ca.pem is a CA that signed
# nothing (a wrong CA, for the tests); tls/client.pem/.key a client certificate.
make_tls() {
  local d="$RUN_DIR/tls"
  [ -s "$d/server.pem" ] && [ -s "$d/client.key" ] && return 0
  ensure_pkg openssl openssl
  log "making the test CA and certificates in $d"
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=drc testenv CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=drc other CA" \
      -keyout other-ca.key -out other-ca.pem 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:zone.drc.test\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=zone.drc.test" -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=drc" -keyout client.key -out client.csr 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out client.pem 2>/dev/null
    chmod 644 ca.pem other-ca.pem server.pem client.pem
  ) || { log "openssl failed to make the test certificates"; exit 1; }
}

if [ "$mariadb" = 1 ]; then
  make_tls
  for z in $zones; do start_zone "$z"; done
fi
if [ "$kafka" = 1 ]; then start_kafka; make_tls; start_kafka_secured; fi
if [ "$redis" = 1 ]; then
  make_tls
  ensure_pkg redis-server redis-server redis-tools
  for z in a b; do start_redis "$z"; done
fi
if [ "$zk" = 1 ]; then
  make_tls
  ensure_pkg "$ZK_BIN/zkServer.sh" zookeeper
  for z in a b; do start_zk "$z"; done
fi
if [ "$mariadb" = 1 ]; then
  log "ready: $(for z in $zones; do printf 'zone %s=127.0.0.1:%s ' "$z" "$(zone_port "$z")"; done)"
fi
if [ "$zk" = 1 ]; then log "zookeeper ready: zone a=127.0.0.1:21811 zone b=127.0.0.1:21812 (TLS on 22811, 22812)"; fi
