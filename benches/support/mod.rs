//! Helpers shared by the benchmarks that use testenv zones f (origin) and e (target):
//! configs and processes of `drc run`, native MariaDB replication, the benchmark's
//! own in-memory Kafka broker, peak RSS, medians.
#![allow(dead_code)]

use super::common::*;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ZONE_F: u16 = 33066;
pub const ZONE_E: u16 = 33065;
/// The benchmark's own broker: tansu with in-memory storage (the testenv broker on
/// 9092 stores in SQLite, which slows down as it grows: docs/KAFKA.md).
pub const BENCH_BROKER: &str = "127.0.0.1:9093";

/// Kills the benchmark's broker when dropped.
pub struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

pub fn start_broker() -> Broker {
    let log = std::fs::File::create(run_dir().join("tansu-bench.log")).unwrap();
    let child = Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://{BENCH_BROKER}"),
            "--advertised-listener-url",
            &format!("tcp://{BENCH_BROKER}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tansu (installed by testenv/up.sh --kafka)");
    let broker = Broker(child);
    let t = Instant::now();
    while std::net::TcpStream::connect(BENCH_BROKER).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "tansu did not listen on {BENCH_BROKER}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    broker
}

pub async fn gtid_pos(c: &mut mysql_async::Conn) -> String {
    c.query_first::<String, _>("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Sequence number of zone f's domain (6) in a MariaDB GTID position.
pub fn seq_of(pos: &str) -> u64 {
    pos.split(',')
        .filter_map(|g| {
            let mut p = g.trim().split('-');
            (p.next() == Some("6")).then(|| p.nth(1).and_then(|s| s.parse().ok()))?
        })
        .next()
        .unwrap_or(0)
}

/// Makes zone e a replica of zone f from GTID position `start` (zone f's domain only),
/// applying database `db`, with `threads` parallel workers in optimistic mode (0:
/// the single SQL thread), and starts it.
pub async fn start_replica(c: &mut mysql_async::Conn, start: &str, threads: u32, db: &str) {
    for q in [
        "STOP SLAVE".to_string(),
        "RESET SLAVE ALL".to_string(),
        format!("SET GLOBAL slave_parallel_threads = {threads}"),
        "SET GLOBAL slave_parallel_mode = 'optimistic'".to_string(),
        format!("SET GLOBAL replicate_do_db = '{db}'"),
        format!("SET GLOBAL gtid_slave_pos = '{start}'"),
        format!("CHANGE MASTER TO master_host = '127.0.0.1', master_port = {ZONE_F}, master_user = 'drc', master_password = 'drc', master_use_gtid = slave_pos"),
        "START SLAVE".to_string(),
    ] {
        c.query_drop(&q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

pub fn config(
    dir: &Path,
    zone: &str,
    port: u16,
    server_id: u32,
    start: &str,
    db: &str,
    kafka: Option<&str>,
) -> std::path::PathBuf {
    let peer = if zone == "e" { ("f", ZONE_F) } else { ("e", ZONE_E) };
    let (transport, kafka_section) = match kafka {
        Some(prefix) => (
            "transport = \"kafka\"\n",
            format!("[kafka]\nbrokers = \"{BENCH_BROKER}\"\ntopic_prefix = \"{prefix}\"\n"),
        ),
        None => ("", String::new()),
    };
    let path = dir.join(format!("zone-{zone}.toml"));
    let text = config_head(zone, transport, port, server_id, start)
        + &format!("[replication]\ndatabases = [\"{db}\"]\nversion_column = \"updated_at\"\n{kafka_section}")
        + &peer_section(peer.0, Some(peer.1));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn drc_cmd(args: &[&str], cfg: &Path) -> Command {
    let mut c = Command::new(drc_bin());
    c.args(args).arg("--config").arg(cfg).env("DRC_LOG", "warn");
    c
}

pub fn init(cfg: &Path) {
    let out = drc_cmd(&["init"], cfg).output().unwrap();
    assert!(
        out.status.success(),
        "drc init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `drc run` process, killed when dropped (also when a benchmark panics).
pub struct Daemon(pub Child);

impl Daemon {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// True once the process has exited, with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

pub fn spawn(cfg: &Path, log: &Path) -> Daemon {
    Daemon(
        drc_cmd(&["run"], cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Peak resident set (VmHWM) of a running process, MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) a running process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of them, in clock ticks
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// Process id of a testenv zone's MariaDB server.
pub fn server_pid(zone: &str) -> u32 {
    let f = run_dir().join(format!("mariadb-{zone}/mysqld.pid"));
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        .trim()
        .parse()
        .unwrap()
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The benchmarks' runtime: two workers, like the daemon on this machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
