# shellcheck shell=bash
# Shared settings for the testenv scripts. Sourced, never run.
#
# Everything the test servers write lives under $DRC_TESTENV_DIR (default
# testenv/.run inside the checkout), so a checkout can be wiped with one rm.

TESTENV_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TESTENV_HOME/.." && pwd)"
RUN_DIR="${DRC_TESTENV_DIR:-$TESTENV_HOME/.run}"
ZONES="a b"

# zone -> port / server_id / gtid_domain_id / auto_increment_offset
# (zones d, e and f are the benchmarks' private servers: d holds the parse benchmark's
# binlog, f is the origin and e the target of the apply and lag benchmarks)
# zone -> Redis port (issue 14's testenv contract: zone a 6381, zone b 6382)
redis_port()  { case "$1" in a) echo 6381 ;; b) echo 6382 ;; *) echo "no redis for zone $1" >&2; return 1 ;; esac; }
redis_dir()   { echo "$RUN_DIR/redis-$1"; }
# zone -> ZooKeeper client port (issue 15's testenv contract: zone a 21811, zone b 21812)
zk_port()     { case "$1" in a) echo 21811 ;; b) echo 21812 ;; *) echo "no zookeeper for zone $1" >&2; return 1 ;; esac; }
zk_dir()      { echo "$RUN_DIR/zk-$1"; }
ZK_BIN=/usr/share/zookeeper/bin   # Debian's zookeeper package (3.8)
zone_port()   { case "$1" in a) echo 33061 ;; b) echo 33062 ;; c) echo 33063 ;; d) echo 33064 ;; e) echo 33065 ;; f) echo 33066 ;; *) echo "unknown zone $1" >&2; return 1 ;; esac; }
zone_sid()    { case "$1" in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; d) echo 4 ;; e) echo 5 ;; f) echo 6 ;; esac; }
zone_domain() { case "$1" in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; d) echo 4 ;; e) echo 5 ;; f) echo 6 ;; esac; }
zone_offset() { case "$1" in a) echo 1 ;; b) echo 2 ;; c) echo 3 ;; d) echo 4 ;; e) echo 5 ;; f) echo 6 ;; esac; }

log() { printf '[testenv] %s\n' "$*" >&2; }

# apt-get install the named packages when the given command is missing.
ensure_pkg() {
  local cmd="$1"; shift
  if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
  log "installing $* (for $cmd)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || true
    apt-get install -y --no-install-recommends "$@" >/dev/null
  fi
  command -v "$cmd" >/dev/null 2>&1 || { log "could not install $*"; return 1; }
}

# What building drc needs from Debian: OpenSSL's headers for librdkafka's TLS and SASL
# (rdkafka's "ssl" feature), found with pkg-config.
ensure_build_deps() {
  if pkg-config --exists openssl 2>/dev/null; then return 0; fi
  log "installing libssl-dev pkg-config (librdkafka's TLS and SASL)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends libssl-dev pkg-config >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || true
    apt-get install -y --no-install-recommends libssl-dev pkg-config >/dev/null
  fi
}

# Free space under the build and test directories, in GiB; a warning when low (a debug
# build of drc and its tests takes about 5 GiB, the test servers' data ~3 GiB).
check_disk() {
  local free
  free=$(df -Pk "${CARGO_TARGET_DIR:-$PWD/target}" "$RUN_DIR" 2>/dev/null | awk 'NR>1 {print int($4/1048576)}' | sort -n | head -1)
  if [ -n "$free" ] && [ "$free" -lt 12 ]; then
    log "warning: only ${free} GiB free; the build and the test servers need about 12 GiB (free some, or set CARGO_TARGET_DIR elsewhere)"
  fi
}

mariadb_bin() {
  for b in mariadbd mysqld; do
    for d in /usr/sbin /usr/libexec /usr/bin; do
      [ -x "$d/$b" ] && { echo "$d/$b"; return 0; }
    done
  done
  return 1
}

zone_dir()    { echo "$RUN_DIR/mariadb-$1"; }
zone_sock()   { echo "$(zone_dir "$1")/mysqld.sock"; }
zone_pidfile(){ echo "$(zone_dir "$1")/mysqld.pid"; }

zone_alive() {
  local pidf; pidf="$(zone_pidfile "$1")"
  [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

zone_sql() { # zone_sql ZONE SQL... (as root over the socket)
  local z="$1"; shift
  mariadb --no-defaults -uroot --socket="$(zone_sock "$z")" -N -B -e "$*"
}

# start_daemon ZONE DRC_BINARY [CONFIG] — (re)start `drc run --config CONFIG` (default
# testenv/zone-ZONE.toml) in the background (pid in $RUN_DIR/drc-ZONE.pid, log in
# $RUN_DIR/drc-ZONE.log) and wait until it replicates (at most 2 minutes).
start_daemon() {
  local z="$1" drc="$2" cfg="${3:-testenv/zone-$1.toml}" pidf="$RUN_DIR/drc-$1.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    kill "$(cat "$pidf")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
  fi
  : > "$RUN_DIR/drc-$z.log"
  (cd "$REPO_ROOT" && exec setsid "$drc" run --config "$cfg") >/dev/null 2>>"$RUN_DIR/drc-$z.log" < /dev/null &
  echo $! > "$pidf"
  # (up to 2 minutes: a daemon that was down while its zone wrote a lot first lets its
  # journal read the local binlog to its end; a daemon that exits fails at once)
  for _ in $(seq 1 1200); do
    grep -q replicating "$RUN_DIR/drc-$z.log" && return 0
    kill -0 "$(cat "$pidf")" 2>/dev/null || break
    sleep 0.1
  done
  log "daemon of zone $z did not start:"; cat "$RUN_DIR/drc-$z.log" >&2; return 1
}

# stop_daemon ZONE — stop a daemon started by start_daemon.
stop_daemon() {
  local pidf="$RUN_DIR/drc-$1.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    kill "$(cat "$pidf")"
    for _ in $(seq 1 50); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidf"
}

# zk_4lw ZONE CMD — a ZooKeeper four-letter command (ruok, srvr, mntr, ...) to the zone's
# server; prints the reply, fails when nothing answers within 2 s.
zk_4lw() {
  local port; port="$(zk_port "$1")" || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf '%s' "$2" >&3 && timeout 2 cat <&3) 2>/dev/null
}

# zk_serving ZONE — the zone's ZooKeeper answers and serves requests (`srvr` reports a
# mode; a server still loading its data answers "not currently serving requests").
zk_serving() { zk_4lw "$1" srvr | grep -q '^Mode: '; }

# zk_ctl ZONE start|stop — Debian's zkServer.sh for the zone's server (its zoo.cfg and
# pid file), in a session of its own like the other servers. Debian's zkEnv.sh resets
# ZOO_LOG_DIR to /var/log/zookeeper and leaves slf4j without a binding (the server
# logs nothing), so the log directory, log4j and the heap are set through
# SERVER_JVMFLAGS (the last -cp / -D on the java line wins): the server's log is
# $(zk_dir ZONE)/zookeeper.log.
zk_ctl() {
  local dir cp=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar j
  dir="$(zk_dir "$1")"
  # (netty-codec and netty-resolver: the TLS port's Netty handlers need them, and
  # Debian's zookeeper.jar manifest does not list them)
  for j in slf4j-log4j12 log4j-1.2 netty-codec netty-resolver; do
    [ -f "/usr/share/java/$j.jar" ] && cp="$cp:/usr/share/java/$j.jar"
  done
  ZOO_LOG_DIR="$dir" ZOOPIDFILE="$dir/zk.pid" JMXDISABLE=true \
    SERVER_JVMFLAGS="-Xmx256m -cp $cp -Dzookeeper.log.dir=$dir -Dzookeeper.root.logger=INFO,ROLLINGFILE" \
    setsid -w "$ZK_BIN/zkServer.sh" "$2" "$dir/zoo.cfg"
}
