//! What drc costs the application (issue: "cost to the application, benchmarked"):
//! the application's own write throughput on testenv zone f, with drc against
//! without, in the same run, rounds alternating, medians of `RUNS`.
//!
//! * (a) **drc installed, daemons stopped** against the same zone without drc: what
//!   drc puts in the application's statement path. "With" is `drc init` run against
//!   the zone (drc schema present, database `sbtest` in the config, no trigger of
//!   drc's in the application's tables: checked); "without" is the same zone with the
//!   drc schema dropped. Rounds: with, without, with, without, with, without.
//!   - sysbench `oltp_write_only` (4 threads, 4 tables x 20,000 rows, `SECS` per
//!     round), transactions/s; target >= 0.97x;
//!   - 1,000-row statements on one connection, autocommit: `BULK` INSERTs (explicit
//!     keys), then UPDATEs and DELETEs of the same key ranges, rows/s each; target
//!     >= 0.95x each.
//! * (b) **the zone replicated to its peer**: the same sysbench load on zone f while
//!   zone e replicates it, by drc (one `drc run` daemon per zone, direct transport:
//!   zone e's daemon reads zone f's binlog and applies; zone f's daemon runs zone f's
//!   journal and heartbeats) against MariaDB's own replication (zone e a replica of
//!   zone f, one SQL thread, `replicate_do_db = sbtest`). Rounds: drc, native, drc,
//!   native, drc, native. On this machine the replica (server and daemons) shares the
//!   cores with zone f and sysbench, so what the replica costs counts; target >=
//!   0.97x. Before every round zone e is made a copy of zone f (tables copied without
//!   binlogging); after it, the bench waits until zone e has applied zone f's binlog
//!   to its end and both zones hold the same rows (fingerprint of every sbtest
//!   table), and reports how long that took and the CPU it cost.
//!
//! Every round (and each bulk operation) starts from a quiet server: the previous
//! round's undo log purged and its dirty pages written. Per round, the CPU seconds
//! of each server, sysbench, the daemons and the machine's other processes are
//! printed (the machine is shared: "other processes" shows the interference); a
//! pair of rounds in which other processes took more than 10% of the machine is
//! measured again (at most 3 attempts; the report says if a disturbed pair was kept).
//!
//! sysbench's tables get drc's version column after `prepare`, in every zone:
//! `updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE
//! CURRENT_TIMESTAMP(6)` (sysbench names its insert columns, so the default
//! applies). They are prepared with `--auto_inc=off` (keys 1..20,000): the
//! DELETE + INSERT of each transaction then always meets an existing key and the
//! tables keep their size from round to round (with server-generated keys and the
//! zones' `auto_increment_increment = 2`, half of sysbench's keys would be missing
//! and the tables would grow during the run).
//!
//! Run: `cargo bench --bench app_cost` (starts testenv zones e and f; installs
//! sysbench with apt-get if missing, as testenv does). `APP_COST_SECS` (default 20)
//! sets the seconds per sysbench round, `APP_COST_BULK` (default 300) the 1,000-row
//! statements per operation, `APP_COST_PARTS` (default `sysbench,bulk,replicated`)
//! the parts to run. The daemons' logs of (b) are kept in
//! `testenv/.run/app-cost-*.log`. Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const RUNS: usize = 3;
const DB: &str = "sbtest";
const TABLES: u32 = 4;
const TABLE_SIZE: u32 = 20_000;
const THREADS: u32 = 4;
const BULK_ROWS: u64 = 1_000;
const VERSION_COLUMN: &str = "ADD COLUMN updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
    ON UPDATE CURRENT_TIMESTAMP(6)";
const BULK_TABLE: &str = "CREATE TABLE bulk (id BIGINT PRIMARY KEY, k INT NOT NULL, c VARCHAR(120) NOT NULL, \
    pad CHAR(60) NOT NULL, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";
const BULK_OPS: [&str; 3] = ["INSERT", "UPDATE", "DELETE"];
/// A pair of rounds (with and without) is measured again, up to `ATTEMPTS` times,
/// when the machine's other processes took more than this share of it during
/// either round (the machine is shared with other builds and tests).
const DISTURBED: f64 = 0.10;
const ATTEMPTS: usize = 3;
/// Seconds zone e may take to hold zone f's rows after a round of (b).
const CONVERGE_LIMIT: Duration = Duration::from_secs(300);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------- sysbench

/// sysbench from apt-get when missing (testenv/lib.sh's `ensure_pkg`, as testenv's
/// scripts install MariaDB).
fn ensure_sysbench() {
    let st = Command::new("bash")
        .arg("-c")
        .arg(". \"$1/testenv/lib.sh\" && ensure_pkg sysbench sysbench")
        .arg("bash")
        .arg(repo())
        .status()
        .expect("run bash");
    assert!(st.success(), "could not install sysbench (apt-get install sysbench)");
}

fn sysbench(port: u16, extra: &[String], cmd: &str) -> String {
    let mut args: Vec<String> = vec![
        "oltp_write_only".into(),
        "--db-driver=mysql".into(),
        "--mysql-host=127.0.0.1".into(),
        format!("--mysql-port={port}"),
        "--mysql-user=drc_test".into(),
        "--mysql-password=drc_test".into(),
        format!("--mysql-db={DB}"),
        format!("--tables={TABLES}"),
        format!("--table-size={TABLE_SIZE}"),
        "--auto_inc=off".into(),
    ];
    args.extend(extra.iter().cloned());
    args.push(cmd.into());
    let out = Command::new("sysbench").args(&args).output().expect("run sysbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sysbench {cmd} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One sysbench result: transactions/s, queries/s, ignored errors (deadlocks).
struct Load {
    tps: f64,
    qps: f64,
    ignored: u64,
}

/// The rate in "transactions:    12345  (617.12 per sec.)", and the count.
fn sysbench_line(out: &str, key: &str) -> (u64, f64) {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` in sysbench's output:\n{out}"));
    let rest = line.trim_start()[key.len()..].trim();
    let count = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let rate = rest
        .split_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the rate of `{line}`"));
    (count, rate)
}

fn run_load(port: u16, secs: u64) -> Load {
    let out = sysbench(
        port,
        &[
            format!("--threads={THREADS}"),
            format!("--time={secs}"),
            "--report-interval=0".into(),
        ],
        "run",
    );
    let (_, tps) = sysbench_line(&out, "transactions:");
    let (_, qps) = sysbench_line(&out, "queries:");
    let (ignored, _) = sysbench_line(&out, "ignored errors:");
    Load { tps, qps, ignored }
}

/// Zone f's `sbtest`: sysbench's tables, prepared, with drc's version column; no
/// drc schema.
async fn prepare() {
    let mut c = conn(ZONE_F).await;
    for q in [
        "DROP DATABASE IF EXISTS drc".to_string(),
        format!("DROP DATABASE IF EXISTS {DB}"),
        format!("CREATE DATABASE {DB}"),
    ] {
        c.query_drop(&q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    sysbench(ZONE_F, &[format!("--threads={TABLES}")], "prepare");
    for t in 1..=TABLES {
        c.query_drop(format!("ALTER TABLE {DB}.sbtest{t} {VERSION_COLUMN}"))
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------- drc on or off

fn zone_config(dir: &Path, zone: &str, server_id: u32, start: &str) -> PathBuf {
    let port = if zone == "e" { ZONE_E } else { ZONE_F };
    config(dir, zone, port, server_id, start, DB, None)
}

async fn drc_schema_present(port: u16) -> bool {
    let mut c = conn(port).await;
    let n: u64 = c
        .query_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'drc'")
        .await
        .unwrap()
        .unwrap();
    n > 0
}

async fn triggers_in_app_db(port: u16) -> u64 {
    let mut c = conn(port).await;
    c.exec_first(
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        (DB,),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Zone f with drc installed (`drc init`) or without it (drc schema dropped).
async fn set_drc(installed: bool, cfg: &Path) {
    if installed {
        init(cfg);
        assert!(drc_schema_present(ZONE_F).await, "drc init created no drc schema");
    } else {
        conn(ZONE_F)
            .await
            .query_drop("DROP DATABASE IF EXISTS drc")
            .await
            .unwrap();
        assert!(!drc_schema_present(ZONE_F).await);
    }
    assert_eq!(
        triggers_in_app_db(ZONE_F).await,
        0,
        "a trigger in the application's database"
    );
}

fn label(installed: bool) -> &'static str {
    if installed {
        "with drc"
    } else {
        "without drc"
    }
}

/// Every round starts from the same server state: the previous round's undo log
/// purged and its dirty pages written (`innodb_max_dirty_pages_pct = 0` meanwhile),
/// at most 120 s; then a second's pause.
async fn settle(ports: &[u16]) {
    for &port in ports {
        let mut c = conn(port).await;
        let pct: f64 = c
            .query_first("SELECT @@innodb_max_dirty_pages_pct")
            .await
            .unwrap()
            .unwrap();
        c.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0").await.unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(120) {
            let st: Vec<(String, u64)> = c
                .query(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_history_list_length', 'Innodb_buffer_pool_pages_dirty')",
                )
                .await
                .unwrap();
            let get = |n: &str| st.iter().find(|r| r.0 == n).map_or(0, |r| r.1);
            if get("Innodb_history_list_length") < 100 && get("Innodb_buffer_pool_pages_dirty") < 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.query_drop(format!("SET GLOBAL innodb_max_dirty_pages_pct = {pct}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// CPU seconds used so far by: the whole machine (busy time of all cores), zone f's
/// server, zone e's server, sysbench (this process's reaped children) and the
/// given daemons.
#[derive(Clone)]
struct Cpu {
    at: Instant,
    /// Seconds between the two snapshots (in a difference).
    wall: f64,
    machine: f64,
    f: f64,
    e: f64,
    sysbench: f64,
    daemons: Vec<f64>,
}

fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = f.iter().sum::<f64>() - f.get(3).unwrap_or(&0.0) - f.get(4).unwrap_or(&0.0);
    // SAFETY: sysconf has no preconditions.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn children_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

impl Cpu {
    fn now(daemons: &[Daemon]) -> Cpu {
        Cpu {
            at: Instant::now(),
            wall: 0.0,
            machine: machine_busy_secs(),
            f: cpu_secs(server_pid("f")),
            e: cpu_secs(server_pid("e")),
            sysbench: children_secs(),
            daemons: daemons.iter().map(|d| cpu_secs(d.id())).collect(),
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            at: self.at,
            wall: (self.at - before.at).as_secs_f64(),
            machine: self.machine - before.machine,
            f: self.f - before.f,
            e: self.e - before.e,
            sysbench: self.sysbench - before.sysbench,
            daemons: self.daemons.iter().zip(&before.daemons).map(|(a, b)| a - b).collect(),
        }
    }

    /// CPU seconds of the machine's other processes: its busy time less all of ours.
    fn other(&self) -> f64 {
        self.machine - self.f - self.e - self.sysbench - self.daemons.iter().sum::<f64>()
    }

    /// The share of the machine (all cores, over the wall time) that other processes
    /// took.
    fn other_share(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.other() / (cores * self.wall.max(1e-3))
    }

    /// Other processes took more than `DISTURBED` of the machine.
    fn disturbed(&self) -> bool {
        self.other_share() > DISTURBED
    }

    /// "zone f server 9.1, sysbench 3.2, zone e server 0.1, drc e 1.0 / f 0.4, other
    /// processes 1.2 (3% of the machine)".
    fn text(&self) -> String {
        let other = self.other();
        let daemons = match self.daemons.as_slice() {
            [e, f] => format!(", drc daemons e {e:.1} / f {f:.1}"),
            [e] => format!(", drc daemon e {e:.1}"),
            _ => String::new(),
        };
        format!(
            "CPU-s: zone f server {:.1}, sysbench {:.1}, zone e server {:.1}{daemons}, other processes {other:.1} ({:.0}% of the machine)",
            self.f,
            self.sysbench,
            self.e,
            100.0 * self.other_share()
        )
    }
}

// ---------------------------------------------------------------- (a) sysbench

/// Measured pairs: the "with" and "without" figures of each kept pair, and how
/// many kept pairs were disturbed (the last attempt).
struct Pairs<T> {
    with: Vec<T>,
    without: Vec<T>,
    disturbed: usize,
}

impl<T> Pairs<T> {
    fn new() -> Self {
        Pairs {
            with: Vec::new(),
            without: Vec::new(),
            disturbed: 0,
        }
    }

    /// Keeps a pair if undisturbed or at the last attempt; true when kept.
    fn keep(&mut self, run: usize, attempt: usize, with: (T, Cpu), without: (T, Cpu)) -> bool {
        let disturbed = with.1.disturbed() || without.1.disturbed();
        if disturbed && attempt < ATTEMPTS {
            eprintln!(
                "  pair {run}: other processes took {:.0}% / {:.0}% of the machine; measured again",
                100.0 * with.1.other_share(),
                100.0 * without.1.other_share()
            );
            return false;
        }
        self.disturbed += disturbed as usize;
        self.with.push(with.0);
        self.without.push(without.0);
        true
    }

    fn note(&self) -> String {
        if self.disturbed == 0 {
            String::new()
        } else {
            format!(
                "; {} of {RUNS} pairs disturbed by other processes (> {:.0}% of the machine) after {ATTEMPTS} attempts",
                self.disturbed,
                100.0 * DISTURBED
            )
        }
    }
}

async fn part_sysbench(cfg: &Path, secs: u64) -> Pairs<f64> {
    let mut pairs = Pairs::new();
    for run in 0..RUNS {
        for attempt in 1..=ATTEMPTS {
            let with = sysbench_round(cfg, secs, true, run).await;
            let without = sysbench_round(cfg, secs, false, run).await;
            if pairs.keep(run, attempt, with, without) {
                break;
            }
        }
    }
    pairs
}

async fn sysbench_round(cfg: &Path, secs: u64, installed: bool, run: usize) -> (f64, Cpu) {
    set_drc(installed, cfg).await;
    settle(&[ZONE_F]).await;
    let cpu0 = Cpu::now(&[]);
    let l = tokio::task::spawn_blocking(move || run_load(ZONE_F, secs))
        .await
        .unwrap();
    let cpu = Cpu::now(&[]).since(&cpu0);
    eprintln!(
        "(a) sysbench, {} run {run}: {:.1} tps, {:.0} queries/s, {} ignored errors; {}",
        label(installed),
        l.tps,
        l.qps,
        l.ignored,
        cpu.text()
    );
    (l.tps, cpu)
}

// ---------------------------------------------------------------- (a) bulk

/// One round of the bulk statements on a fresh `bulk` table: rows/s of the
/// INSERTs, UPDATEs and DELETEs.
async fn bulk_round(statements: u64) -> [f64; 3] {
    let mut c = conn(ZONE_F).await;
    for q in [
        format!("USE {DB}"),
        "DROP TABLE IF EXISTS bulk".to_string(),
        BULK_TABLE.to_string(),
    ] {
        c.query_drop(&q).await.unwrap();
    }
    let ranges: Vec<(u64, u64)> = (0..statements)
        .map(|s| (s * BULK_ROWS + 1, (s + 1) * BULK_ROWS))
        .collect();
    let inserts: Vec<String> = ranges
        .iter()
        .map(|&(from, to)| {
            let values: Vec<String> = (from..=to)
                .map(|id| {
                    format!(
                        "({id}, {}, '{:011}-{:011}-{:011}-{:011}', 'pad {id:<50}')",
                        id % 10_007,
                        id * 7,
                        id * 11,
                        id * 13,
                        id * 17
                    )
                })
                .collect();
            format!("INSERT INTO bulk (id, k, c, pad) VALUES {}", values.join(", "))
        })
        .collect();
    let updates: Vec<String> = ranges
        .iter()
        .map(|&(from, to)| {
            format!("UPDATE bulk SET k = k + 1, c = CONCAT('updated ', id) WHERE id BETWEEN {from} AND {to}")
        })
        .collect();
    let deletes: Vec<String> = ranges
        .iter()
        .map(|&(from, to)| format!("DELETE FROM bulk WHERE id BETWEEN {from} AND {to}"))
        .collect();
    let rows = (statements * BULK_ROWS) as f64;
    let mut out = [0.0; 3];
    for (i, statements) in [inserts, updates, deletes].into_iter().enumerate() {
        let t = Instant::now();
        for s in statements {
            let r = c.query_iter(s).await.unwrap();
            assert_eq!(r.affected_rows(), BULK_ROWS, "{} of 1,000 rows", BULK_OPS[i]);
            r.drop_result().await.unwrap();
        }
        out[i] = rows / t.elapsed().as_secs_f64();
        if i < 2 {
            drop(c);
            settle(&[ZONE_F]).await;
            c = conn(ZONE_F).await;
            c.query_drop(format!("USE {DB}")).await.unwrap();
        }
    }
    c.query_drop("DROP TABLE bulk").await.unwrap();
    out
}

async fn part_bulk(cfg: &Path, statements: u64) -> Pairs<[f64; 3]> {
    let mut pairs = Pairs::new();
    for run in 0..RUNS {
        for attempt in 1..=ATTEMPTS {
            let with = bulk_measured(cfg, statements, true, run).await;
            let without = bulk_measured(cfg, statements, false, run).await;
            if pairs.keep(run, attempt, with, without) {
                break;
            }
        }
    }
    pairs
}

async fn bulk_measured(cfg: &Path, statements: u64, installed: bool, run: usize) -> ([f64; 3], Cpu) {
    set_drc(installed, cfg).await;
    settle(&[ZONE_F]).await;
    let cpu0 = Cpu::now(&[]);
    let r = bulk_round(statements).await;
    let cpu = Cpu::now(&[]).since(&cpu0);
    eprintln!(
                "(a) 1,000-row statements, {} run {run}: INSERT {:.0}, UPDATE {:.0}, DELETE {:.0} rows/s; during the round (pauses included) {}",
                label(installed),
                r[0],
                r[1],
                r[2],
                cpu.text()
            );
    (r, cpu)
}

// ---------------------------------------------------------------- (b) replicated

/// What a table's rows are, for comparing zones: count and XOR of row CRCs.
async fn fingerprint(port: u16) -> Vec<(u64, u64)> {
    let mut c = conn(port).await;
    let mut out = Vec::new();
    for t in 1..=TABLES {
        let r: Option<(u64, Option<u64>)> = c
            .query_first(format!(
                "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad, updated_at))) FROM {DB}.sbtest{t}"
            ))
            .await
            .unwrap_or(None);
        let (n, x) = r.unwrap_or((0, None));
        out.push((n, x.unwrap_or(0)));
    }
    out
}

/// Zone e becomes a copy of zone f's sbtest tables (written without binlogging),
/// with no replica configured, no drc schema and an empty binlog.
async fn copy_f_to_e() {
    let mut e = conn(ZONE_E).await;
    e.query_drop("STOP SLAVE").await.ok();
    e.query_drop("RESET SLAVE ALL").await.ok();
    let mut f = conn(ZONE_F).await;
    for q in [
        "SET SESSION sql_log_bin = 0".to_string(),
        "DROP DATABASE IF EXISTS drc".to_string(),
        format!("DROP DATABASE IF EXISTS {DB}"),
        format!("CREATE DATABASE {DB}"),
        format!("USE {DB}"),
    ] {
        e.query_drop(&q).await.unwrap_or_else(|err| panic!("{q}: {err}"));
    }
    for t in 1..=TABLES {
        let (_, ddl): (String, String) = f
            .query_first(format!("SHOW CREATE TABLE {DB}.sbtest{t}"))
            .await
            .unwrap()
            .unwrap();
        e.query_drop(ddl).await.unwrap();
        let rows: Vec<mysql_async::Row> = f
            .query(format!("SELECT id, k, c, pad, updated_at FROM {DB}.sbtest{t}"))
            .await
            .unwrap();
        for chunk in rows.chunks(500) {
            let marks = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let params: Vec<mysql_async::Value> = chunk.iter().flat_map(|r| r.clone().unwrap()).collect();
            e.exec_drop(
                format!("INSERT INTO sbtest{t} (id, k, c, pad, updated_at) VALUES {marks}"),
                params,
            )
            .await
            .unwrap();
        }
    }
    e.query_drop("RESET MASTER").await.unwrap();
    assert_eq!(
        fingerprint(ZONE_E).await,
        fingerprint(ZONE_F).await,
        "zone e a copy of zone f"
    );
}

/// Waits until zone e holds zone f's rows (zone f may still change: its daemon's
/// journal raises rows); the seconds it took, or None.
/// First (cheaply, every 100 ms) until zone e has applied zone f's binlog up to
/// `end` (zone f's binlog file, offset and GTID position when the load ended): by
/// drc, `drc.applied`; by MariaDB, `@@gtid_slave_pos`. Then until the rows agree.
async fn converge(mode: Replica, end: &(String, u64, String)) -> Option<f64> {
    let t = Instant::now();
    let mut e = conn(ZONE_E).await;
    while t.elapsed() < CONVERGE_LIMIT {
        let reached = match mode {
            Replica::Drc => e
                .query_first::<(String, u64), _>("SELECT file, pos FROM drc.applied WHERE origin_zone = 'f'")
                .await
                .ok()
                .flatten()
                .is_some_and(|(file, pos)| (file.as_str(), pos) >= (end.0.as_str(), end.1)),
            Replica::Native => {
                seq_of(
                    &e.query_first::<String, _>("SELECT @@gtid_slave_pos")
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                ) >= seq_of(&end.2)
            }
        };
        if reached {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while t.elapsed() < CONVERGE_LIMIT {
        if fingerprint(ZONE_E).await == fingerprint(ZONE_F).await {
            return Some(t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Zone f's binlog file, offset and GTID position.
async fn binlog_end() -> (String, u64, String) {
    let mut f = conn(ZONE_F).await;
    let row: mysql_async::Row = f.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    let (file, pos): (String, u64) = (row.get(0).unwrap(), row.get(1).unwrap());
    (file, pos, gtid_pos(&mut f).await)
}

async fn first_text(c: &mut mysql_async::Conn, q: String) -> String {
    c.query_first::<String, _>(q)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "-".into())
}

/// The rows that differ between the zones (after a round that did not converge):
/// how many, and up to 5 of them with both zones' rows and tombstones; the whole
/// list goes to `file`.
async fn differences(file: &Path) -> String {
    let (mut e, mut f) = (conn(ZONE_E).await, conn(ZONE_F).await);
    let mut keys = Vec::new();
    for t in 1..=TABLES {
        let q = format!("SELECT id, CRC32(CONCAT_WS('#', id, k, c, pad, updated_at)) FROM {DB}.sbtest{t}");
        let in_e: std::collections::BTreeMap<u64, u64> = e.query(&q).await.unwrap().into_iter().collect();
        let in_f: std::collections::BTreeMap<u64, u64> = f.query(&q).await.unwrap().into_iter().collect();
        for id in in_e
            .keys()
            .chain(in_f.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if in_e.get(id) != in_f.get(id) {
                keys.push((t, *id));
            }
        }
    }
    let mut text = Vec::new();
    for (t, id) in &keys {
        let row = format!("SELECT CONCAT_WS(' | ', id, k, c, updated_at) FROM {DB}.sbtest{t} WHERE id = {id}");
        let tomb = format!(
            "SELECT CAST(version AS CHAR) FROM drc.tombstones WHERE db = '{DB}' AND tbl = 'sbtest{t}' AND pk = JSON_ARRAY({id})"
        );
        let (re, rf) = (first_text(&mut e, row.clone()).await, first_text(&mut f, row).await);
        let (te, tf) = (first_text(&mut e, tomb.clone()).await, first_text(&mut f, tomb).await);
        text.push(format!(
            "sbtest{t} id {id}: zone f [{rf}] tombstone {tf}; zone e [{re}] tombstone {te}"
        ));
    }
    std::fs::write(file, text.join("\n") + "\n").ok();
    format!(
        "{} rows differ (list: {}){}",
        keys.len(),
        file.display(),
        text.iter().take(5).map(|l| format!("\n    {l}")).collect::<String>()
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Replica {
    Drc,
    Native,
}

impl Replica {
    fn label(self) -> &'static str {
        match self {
            Replica::Drc => "replicated by drc",
            Replica::Native => "replicated by MariaDB",
        }
    }
}

/// A log line without its terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines of a daemon's log at WARN or ERROR.
fn problems(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(plain)
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panic"))
        .collect()
}

async fn count(port: u16, sql: &str) -> u64 {
    let mut c = conn(port).await;
    c.query_first::<Option<u64>, _>(sql)
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
}

async fn applied_from_f() -> u64 {
    count(
        ZONE_E,
        "SELECT SUM(applied_txns) FROM drc.applied WHERE origin_zone = 'f'",
    )
    .await
}

/// Conflicts in a zone's `drc.conflicts`, by kind: "0" or "1234 (concurrent_delete 1234)".
async fn conflicts(port: u16) -> String {
    let mut c = conn(port).await;
    let kinds: Vec<(String, u64)> = c
        .query("SELECT kind, COUNT(*) FROM drc.conflicts GROUP BY kind ORDER BY 2 DESC")
        .await
        .unwrap_or_default();
    let n: u64 = kinds.iter().map(|k| k.1).sum();
    if n == 0 {
        return "0".into();
    }
    let by: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{n} ({})", by.join(", "))
}

struct Replicated {
    tps: f64,
    /// Seconds from the load's end until zone e held zone f's rows (None: not in
    /// `CONVERGE_LIMIT`).
    converged: Option<f64>,
    /// WARN/ERROR lines of the daemons' logs.
    problems: Vec<String>,
    /// CPU during the load.
    cpu: Cpu,
}

async fn replicated_round(mode: Replica, run: usize, secs: u64) -> Replicated {
    copy_f_to_e().await;
    conn(ZONE_F)
        .await
        .query_drop("DROP DATABASE IF EXISTS drc")
        .await
        .unwrap();
    let start = gtid_pos(&mut conn(ZONE_F).await).await;
    let dir = tempfile::tempdir().unwrap();
    let logs = [
        run_dir().join(format!("app-cost-r{run}-e.log")),
        run_dir().join(format!("app-cost-r{run}-f.log")),
    ];
    let mut daemons = Vec::new();
    match mode {
        Replica::Native => {
            start_replica(&mut conn(ZONE_E).await, &start, 0, DB).await;
        }
        Replica::Drc => {
            // zone e's daemon applies zone f's binlog from the copy's position; zone
            // f's daemon (its journal, heartbeats, and zone e's binlog) from now
            let sid = 7600 + 10 * run as u32;
            let e = zone_config(dir.path(), "e", sid, &format!("gtid:{start}"));
            let f = zone_config(dir.path(), "f", sid + 5, "now");
            // APP_COST_DRC_DAEMONS=e: zone e's daemon alone (to tell the two apart)
            let both = std::env::var("APP_COST_DRC_DAEMONS").as_deref() != Ok("e");
            let started: Vec<(&PathBuf, &PathBuf)> = if both {
                vec![(&e, &logs[0]), (&f, &logs[1])]
            } else {
                std::fs::remove_file(&logs[1]).ok();
                vec![(&e, &logs[0])]
            };
            for (cfg, _) in &started {
                init(cfg);
            }
            for (cfg, log) in &started {
                daemons.push(Daemon(
                    drc_cmd(&["run"], cfg)
                        // as the other benches (warn), plus the daemon's start lines
                        .env("DRC_LOG", "warn,drc::daemon=info")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::fs::File::create(log).unwrap())
                        .spawn()
                        .unwrap(),
                ));
            }
            // both directions replicating (each after its zone's journal caught up)
            let t = Instant::now();
            loop {
                let ready = started
                    .iter()
                    .all(|(_, l)| std::fs::read_to_string(l).unwrap_or_default().contains("replicating"));
                if ready {
                    break;
                }
                for d in daemons.iter_mut() {
                    if let Some(st) = d.exited() {
                        panic!(
                            "a drc daemon exited ({st}): see {}",
                            logs[0].parent().unwrap().display()
                        );
                    }
                }
                assert!(
                    t.elapsed() < Duration::from_secs(120),
                    "the daemons did not start replicating in 120 s; logs: {:?}",
                    logs
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    settle(&[ZONE_F, ZONE_E]).await;
    let cpu0 = Cpu::now(&daemons);
    let l = tokio::task::spawn_blocking(move || run_load(ZONE_F, secs))
        .await
        .unwrap();
    let cpu = Cpu::now(&daemons).since(&cpu0);
    let cpu1 = Cpu::now(&daemons);
    let end = binlog_end().await;
    let converged = converge(mode, &end).await;
    let catch_up = Cpu::now(&daemons).since(&cpu1);
    if converged.is_none() {
        let file = run_dir().join(format!("app-cost-r{run}-diverged.txt"));
        eprintln!("  zone e did not converge with zone f: {}", differences(&file).await);
    }
    for d in daemons.iter_mut() {
        if let Some(st) = d.exited() {
            eprintln!("  a drc daemon exited during the round ({st})");
        }
    }
    let drc_state = if mode == Replica::Drc {
        format!(
            "; zone e: {} transactions of zone f applied, conflicts logged {}; zone f: {} tombstones in {} transactions of its journal, conflicts logged {}",
            applied_from_f().await,
            conflicts(ZONE_E).await,
            count(ZONE_F, "SELECT COUNT(*) FROM drc.tombstones").await,
            count(ZONE_F, "SELECT SUM(n) FROM drc.journal").await,
            conflicts(ZONE_F).await,
        )
    } else {
        String::new()
    };
    drop(daemons);
    let mut e = conn(ZONE_E).await;
    e.query_drop("STOP SLAVE").await.ok();
    e.query_drop("RESET SLAVE ALL").await.ok();
    let problems: Vec<String> = if mode == Replica::Drc {
        logs.iter().flat_map(|l| problems(l)).collect()
    } else {
        Vec::new()
    };
    eprintln!(
        "(b) sysbench, {} run {run}: {:.1} tps, {:.0} queries/s, {} ignored errors; during the load {}; zone e {}{drc_state}{}",
        mode.label(),
        l.tps,
        l.qps,
        l.ignored,
        cpu.text(),
        match converged {
            Some(s) => format!("held zone f's rows {s:.1} s after the load (catching up: {})", catch_up.text()),
            None => format!("DID NOT converge with zone f in {} s", CONVERGE_LIMIT.as_secs()),
        },
        if problems.is_empty() {
            String::new()
        } else {
            format!("; {} WARN/ERROR lines in the daemons' logs", problems.len())
        }
    );
    for p in problems.iter().take(5) {
        eprintln!("    {p}");
    }
    Replicated {
        tps: l.tps,
        converged,
        problems,
        cpu,
    }
}

async fn part_replicated(secs: u64) -> Pairs<Replicated> {
    let mut pairs = Pairs::new();
    for run in 0..RUNS {
        for attempt in 1..=ATTEMPTS {
            let drc = replicated_round(Replica::Drc, run, secs).await;
            let native = replicated_round(Replica::Native, run, secs).await;
            let (dc, nc) = (drc.cpu.clone(), native.cpu.clone());
            if pairs.keep(run, attempt, (drc, dc), (native, nc)) {
                break;
            }
        }
    }
    // leave zone e without replica or drc schema
    copy_f_to_e().await;
    pairs
}

// ---------------------------------------------------------------- report

struct Line {
    scenario: String,
    with: f64,
    without: f64,
    target: f64,
    note: String,
}

fn report(lines: &[Line]) {
    println!("\napp_cost: the application's write throughput on zone f, with drc vs without (same run, rounds alternating, median of {RUNS}):");
    println!(
        "  {:<52} {:>12} {:>14} {:>7} {:>8}",
        "scenario", "with drc", "without/peer", "ratio", "target"
    );
    for l in lines {
        let ratio = l.with / l.without;
        println!(
            "  {:<52} {:>12.0} {:>14.0} {:>6.3}x {:>7}  {}{}",
            l.scenario,
            l.with,
            l.without,
            ratio,
            format!(">= {:.2}x", l.target),
            if ratio >= l.target { "PASS" } else { "below" },
            l.note
        );
    }
}

fn rounds(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" / ")
}

fn main() {
    testenv_up_with(&["e", "f"]);
    ensure_sysbench();
    let secs = env_u64("APP_COST_SECS", 20);
    let bulk = env_u64("APP_COST_BULK", 300);
    let parts = std::env::var("APP_COST_PARTS").unwrap_or_else(|_| "sysbench,bulk,replicated".into());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    for p in &parts {
        assert!(
            ["sysbench", "bulk", "replicated"].contains(p),
            "APP_COST_PARTS: unknown part {p:?}"
        );
    }
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let cfg = zone_config(dir.path(), "f", 7590, "now");
    let mut lines = Vec::new();
    rt.block_on(async {
        eprintln!(
            "preparing sysbench oltp_write_only in zone f: {TABLES} tables x {TABLE_SIZE} rows, {THREADS} threads, {secs} s per round"
        );
        // nothing replicating into zone e while zone f is prepared and measured alone
        let mut e = conn(ZONE_E).await;
        e.query_drop("STOP SLAVE").await.ok();
        e.query_drop("RESET SLAVE ALL").await.ok();
        drop(e);
        prepare().await;
        if parts.contains(&"sysbench") {
            let p = part_sysbench(&cfg, secs).await;
            let (w, wo) = (p.with.clone(), p.without.clone());
            lines.push(Line {
                scenario: "(a) sysbench oltp_write_only, tps, daemons stopped".into(),
                with: median(w.clone()),
                without: median(wo.clone()),
                target: 0.97,
                note: format!("  (rounds: {} | {}){}", rounds(&w), rounds(&wo), p.note()),
            });
        }
        if parts.contains(&"bulk") {
            let p = part_bulk(&cfg, bulk).await;
            let (w, wo) = (&p.with, &p.without);
            for (i, op) in BULK_OPS.iter().enumerate() {
                let (w, wo): (Vec<f64>, Vec<f64>) = (w.iter().map(|r| r[i]).collect(), wo.iter().map(|r| r[i]).collect());
                lines.push(Line {
                    scenario: format!("(a) 1,000-row {op}, rows/s, daemons stopped"),
                    with: median(w.clone()),
                    without: median(wo.clone()),
                    target: 0.95,
                    note: format!("  (rounds: {} | {}){}", rounds(&w), rounds(&wo), p.note()),
                });
            }
        }
        if parts.contains(&"replicated") {
            let p = part_replicated(secs).await;
            let (d, n) = (&p.with, &p.without);
            let (dt, nt): (Vec<f64>, Vec<f64>) = (d.iter().map(|r| r.tps).collect(), n.iter().map(|r| r.tps).collect());
            let diverged = d.iter().chain(n).filter(|r| r.converged.is_none()).count();
            let problems: usize = d.iter().map(|r| r.problems.len()).sum();
            lines.push(Line {
                scenario: "(b) sysbench, tps, replicated: drc vs MariaDB".into(),
                with: median(dt.clone()),
                without: median(nt.clone()),
                target: 0.97,
                note: format!(
                    "  (rounds: {} | {}){}{}{}",
                    rounds(&dt),
                    rounds(&nt),
                    p.note(),
                    if diverged > 0 {
                        format!("; {diverged} round(s) where zone e did not converge")
                    } else {
                        String::new()
                    },
                    if problems > 0 {
                        format!("; {problems} WARN/ERROR lines in drc's logs")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        conn(ZONE_F)
            .await
            .query_drop("DROP DATABASE IF EXISTS drc")
            .await
            .unwrap();
    });
    report(&lines);
}
