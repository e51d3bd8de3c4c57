//! Apply catch-up benchmark (issue 6, scenarios 2 and 4): one change set, committed in
//! testenv zone f, applied into the empty zone e by
//! * MariaDB's own replication: zone e as a replica of zone f (`START SLAVE` from the
//!   GTID before the change set, `replicate_do_db`), with `slave_parallel_threads=0`,
//!   and again with 4 threads in `optimistic` mode;
//! * drc, direct: zone e's daemon reads zone f's binlog and applies;
//! * drc, Kafka: zone f's daemon publishes to tansu, zone e's daemon consumes and
//!   applies (both start together; the clock includes publishing), through the
//!   benchmark's own tansu broker on 127.0.0.1:9093 with in-memory storage.
//!
//! The clock runs from the start (START SLAVE, or the daemons' start) until zone e has
//! applied the change set's last transaction (`@@gtid_slave_pos`, or drc.applied);
//! the rows in zone e are then counted against zone f. Reported: rows/s and seconds
//! to catch up (medians of `RUNS`; the modes alternate within each run), the daemons'
//! peak RSS (VmHWM), and drc's ratios to both native modes.
//!
//! Change sets:
//! * `oltp` (`APPLY_TXNS`, default 30,000 transactions from two clients): each inserts
//!   an order, inserts 3 of its items and updates an earlier order: 5 row events;
//! * `big`: one transaction inserting 1,000,000 rows (`APPLY_BIG=0` skips it), for
//!   drc's peak memory on a huge transaction (target: <= 150 MB).
//!
//! Tables carry the `updated_at` version column, so drc applies them with
//! last-writer-wins, as in production.
//!
//! Run: `cargo bench --bench apply` (starts testenv zones d and e and the broker).
//! Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use support::*;

const RUNS: usize = 3;
const DB: &str = "applybench";
const TABLES: &[&str] = &[
    "CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, \
     status ENUM('new','paid','shipped') NOT NULL, note TEXT, qty INT NOT NULL, created DATETIME(6) NOT NULL, \
     updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
    "CREATE TABLE items (id BIGINT PRIMARY KEY AUTO_INCREMENT, order_id BIGINT NOT NULL, sku VARCHAR(32) NOT NULL, \
     qty INT NOT NULL, price DECIMAL(10,2) NOT NULL, \
     updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), KEY (order_id))",
    "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(32) NOT NULL, n INT NOT NULL, \
     updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
];

/// A change set in zone f: the GTID position before and after it, and its rows.
struct ChangeSet {
    name: &'static str,
    start: String,
    end_seq: u64,
    txns: u64,
    rows: u64,
}

async fn create_tables(port: u16) {
    let mut c = conn(port).await;
    c.query_drop(format!("DROP DATABASE IF EXISTS {DB}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {DB}")).await.unwrap();
    for t in TABLES {
        c.query_drop(format!("USE {DB}")).await.unwrap();
        c.query_drop(*t).await.unwrap();
    }
}

async fn generate_oltp(txns: u64) -> ChangeSet {
    create_tables(ZONE_F).await;
    let mut c = conn(ZONE_F).await;
    let start = gtid_pos(&mut c).await;
    let clients = 2;
    let mut tasks = Vec::new();
    for w in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut c = conn(ZONE_F).await;
            c.query_drop("SET SESSION auto_increment_increment = 1, auto_increment_offset = 1")
                .await
                .unwrap();
            let mut mine: Vec<u64> = Vec::new();
            for i in 0..txns / clients {
                let upd = if mine.is_empty() {
                    "0".to_string()
                } else {
                    mine[(i as usize * 7919) % mine.len()].to_string()
                };
                c.query_drop(format!(
                    "START TRANSACTION; \
                     INSERT INTO {DB}.orders (customer, amount, status, note, qty, created) VALUES ('customer {w}/{i}', {i}.25, 'new', 'a note for order {i}', 1, NOW(6)); \
                     SET @o = LAST_INSERT_ID(); \
                     INSERT INTO {DB}.items (order_id, sku, qty, price) VALUES (@o, 'sku-{i}-1', 1, 9.99), (@o, 'sku-{i}-2', 2, 19.99), (@o, 'sku-{i}-3', 3, 29.99); \
                     UPDATE {DB}.orders SET status = 'paid', qty = qty + 1 WHERE id = IF({upd} = 0, @o, {upd}); \
                     COMMIT"
                ))
                .await
                .unwrap();
                let id: u64 = c.query_first("SELECT @o").await.unwrap().unwrap();
                mine.push(id);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end = gtid_pos(&mut c).await;
    let rows = count_rows(ZONE_F).await;
    let n = (txns / clients) * clients;
    assert_eq!(rows, n * 4, "orders + items in zone f");
    ChangeSet {
        name: "oltp",
        start,
        end_seq: seq_of(&end),
        txns: n,
        rows: n * 5,
    }
}

async fn generate_big() -> ChangeSet {
    create_tables(ZONE_F).await;
    let mut c = conn(ZONE_F).await;
    let start = gtid_pos(&mut c).await;
    c.query_drop(format!(
        "INSERT INTO {DB}.big (id, v, n) SELECT seq, CONCAT('value ', seq), seq % 1000 FROM {DB}.seq_1_to_1000000"
    ))
    .await
    .unwrap();
    let end = gtid_pos(&mut c).await;
    ChangeSet {
        name: "big",
        start,
        end_seq: seq_of(&end),
        txns: 1,
        rows: 1_000_000,
    }
}

/// Rows of the change set's tables in a zone (orders + items + big).
async fn count_rows(port: u16) -> u64 {
    let mut c = conn(port).await;
    let n: Option<u64> = c
        .query_first(format!(
            "SELECT (SELECT COUNT(*) FROM {DB}.orders) + (SELECT COUNT(*) FROM {DB}.items) + (SELECT COUNT(*) FROM {DB}.big)"
        ))
        .await
        .unwrap();
    n.unwrap_or(0)
}

/// Zone e empty: no replica configured, the change set's tables empty, no drc state.
async fn reset_target() {
    let mut c = conn(ZONE_E).await;
    c.query_drop("STOP SLAVE").await.ok();
    c.query_drop("RESET SLAVE ALL").await.ok();
    c.query_drop("DROP DATABASE IF EXISTS drc").await.unwrap();
    drop(c);
    create_tables(ZONE_E).await;
    // an empty binlog: the replica's GTID position then needs only zone f's domain
    conn(ZONE_E).await.query_drop("RESET MASTER").await.unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Native(u32),
    DrcDirect,
    DrcKafka,
}

impl Mode {
    fn label(self) -> String {
        match self {
            Mode::Native(0) => "MariaDB replication, 0 threads".into(),
            Mode::Native(n) => format!("MariaDB replication, {n} optimistic"),
            Mode::DrcDirect => "drc direct".into(),
            Mode::DrcKafka => "drc over Kafka (tansu)".into(),
        }
    }
}

struct Outcome {
    secs: f64,
    /// Seconds until the first transaction of the change set was applied (start-up:
    /// connections, and over Kafka the idempotent producer's first acknowledgement).
    first: f64,
    /// Peak RSS of the daemons (zone e's; Kafka: zone f's publisher too), MB.
    rss_mb: Vec<f64>,
    /// CPU seconds the daemons used.
    drc_cpu: f64,
}

async fn run_native(cs: &ChangeSet, threads: u32) -> Outcome {
    let mut c = conn(ZONE_E).await;
    let t = Instant::now();
    start_replica(&mut c, &cs.start, threads, DB).await;
    let start_seq = seq_of(&cs.start);
    let mut first = None;
    loop {
        let pos: String = c
            .query_first("SELECT @@gtid_slave_pos")
            .await
            .unwrap()
            .unwrap_or_default();
        if first.is_none() && seq_of(&pos) > start_seq {
            first = Some(t.elapsed().as_secs_f64());
        }
        if seq_of(&pos) >= cs.end_seq {
            break;
        }
        if t.elapsed() > Duration::from_secs(900) {
            let st: Vec<mysql_async::Row> = c.query("SHOW SLAVE STATUS").await.unwrap();
            panic!("native replication did not catch up in 15 minutes: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    c.query_drop("STOP SLAVE").await.unwrap();
    c.query_drop("RESET SLAVE ALL").await.unwrap();
    Outcome {
        secs,
        first: first.unwrap_or(secs),
        rss_mb: vec![],
        drc_cpu: 0.0,
    }
}

async fn applied_txns(port: u16) -> u64 {
    let mut c = conn(port).await;
    c.query_first::<Option<u64>, _>("SELECT SUM(applied_txns) FROM drc.applied WHERE origin_zone = 'f'")
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
}

async fn run_drc(cs: &ChangeSet, kafka: bool, run: usize) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let start = format!("gtid:{}", cs.start);
    let prefix = format!("applybench{}{run}{}.", std::process::id(), cs.name);
    let sid = 7100 + 10 * run as u32 + if kafka { 5 } else { 0 };
    // direct: zone e's daemon reads zone f from the change set's start; Kafka: zone f's
    // daemon does, and zone e's reads (and publishes) only its own zone from now on
    let e_start = if kafka { "now" } else { start.as_str() };
    let e = config(
        dir.path(),
        "e",
        ZONE_E,
        sid,
        e_start,
        DB,
        kafka.then_some(prefix.as_str()),
    );
    init(&e);
    let mut daemons = Vec::new();
    let f = kafka.then(|| config(dir.path(), "f", ZONE_F, sid + 1, &start, DB, Some(&prefix)));
    if let Some(f) = &f {
        init(f);
        // Zone f's journal read the change set as it was written (a daemon runs in
        // every zone): it starts after it, as the direct mode, which runs no daemon in
        // zone f, assumes. Read now, its tombstone lookups (3 per transaction here)
        // would compete with the transport on the 2 cores.
        let mut c = conn(ZONE_F).await;
        let (file, pos): (String, u64) = c
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .map(|r: mysql_async::Row| (r.get(0).unwrap(), r.get(1).unwrap()))
            .unwrap();
        c.exec_drop(
            "REPLACE INTO drc.journal (channel, gtid, file, pos) VALUES ('f', NULL, ?, ?)",
            (file, pos),
        )
        .await
        .unwrap();
    }
    let t = Instant::now();
    daemons.push(spawn(&e, &dir.path().join("e.log")));
    if let Some(f) = &f {
        daemons.push(spawn(f, &dir.path().join("f.log")));
    }
    let logs = || {
        ["e.log", "f.log"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let mut first = None;
    loop {
        let n = applied_txns(ZONE_E).await;
        if first.is_none() && n > 0 {
            first = Some(t.elapsed().as_secs_f64());
        }
        if n >= cs.txns {
            break;
        }
        for dm in daemons.iter_mut() {
            if let Some(st) = dm.exited() {
                panic!("a drc daemon exited ({st}):\n{}", logs());
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "drc did not catch up in 15 minutes:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let rss_mb = daemons.iter().map(|c| peak_rss_mb(c.id())).collect();
    let drc_cpu = daemons.iter().map(|c| cpu_secs(c.id())).sum();
    drop(daemons);
    if kafka {
        // zone f's daemon wrote its drc schema there; leave zone f as generated
        conn(ZONE_F).await.query_drop("DROP DATABASE IF EXISTS drc").await.ok();
    }
    Outcome {
        secs,
        first: first.unwrap_or(secs),
        rss_mb,
        drc_cpu,
    }
}

/// Zone e's (client statements, commits) counters; a replica's SQL thread counts
/// neither, so these show what drc sent.
async fn server_counters() -> (u64, u64) {
    let mut c = conn(ZONE_E).await;
    let rows: Vec<(String, u64)> = c
        .query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Handler_commit')")
        .await
        .unwrap();
    let get = |n: &str| rows.iter().find(|r| r.0 == n).map(|r| r.1).unwrap_or(0);
    (get("Questions"), get("Handler_commit"))
}

/// Per mode: (mode, median seconds, peak RSS MB, median CPU seconds of the target
/// server, the origin server and drc, median seconds to the first applied transaction).
type Results = Vec<(Mode, f64, f64, [f64; 3], f64)>;

async fn bench(cs: &ChangeSet, modes: &[Mode], runs: usize) -> Results {
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut firsts: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut cpus: Vec<[Vec<f64>; 3]> = vec![Default::default(); modes.len()];
    let (target, origin) = (server_pid("e"), server_pid("f"));
    let mut rss: Vec<f64> = vec![0.0; modes.len()];
    for run in 0..runs {
        for (i, &mode) in modes.iter().enumerate() {
            reset_target().await;
            let before = server_counters().await;
            let (e0, f0) = (cpu_secs(target), cpu_secs(origin));
            let o = match mode {
                Mode::Native(n) => run_native(cs, n).await,
                Mode::DrcDirect => run_drc(cs, false, run).await,
                Mode::DrcKafka => run_drc(cs, true, run).await,
            };
            let after = server_counters().await;
            let cpu = [cpu_secs(target) - e0, cpu_secs(origin) - f0, o.drc_cpu];
            let got = count_rows(ZONE_E).await;
            let want = match cs.name {
                "oltp" => cs.rows / 5 * 4, // orders + items (updates change rows in place)
                _ => cs.rows,
            };
            assert_eq!(
                got,
                want,
                "{} left {got} rows in zone e, zone f has {want}",
                mode.label()
            );
            let peak = o.rss_mb.iter().cloned().fold(0.0, f64::max);
            rss[i] = rss[i].max(peak);
            eprintln!(
                "{} run {run}: {} rows in {} transactions in {:.2} s = {:.0} rows/s; zone e ran {} statements, {} commits; \
                 CPU s: zone e server {:.2}, zone f server {:.2}, drc {:.2}{}",
                mode.label(),
                cs.rows,
                cs.txns,
                o.secs,
                cs.rows as f64 / o.secs,
                after.0 - before.0,
                after.1 - before.1,
                cpu[0],
                cpu[1],
                cpu[2],
                if o.rss_mb.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", daemon peak RSS {:?} MB",
                        o.rss_mb.iter().map(|m| m.round()).collect::<Vec<_>>()
                    )
                }
            );
            secs[i].push(o.secs);
            firsts[i].push(o.first);
            for k in 0..3 {
                cpus[i][k].push(cpu[k]);
            }
        }
    }
    modes
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            let cpu = [0, 1, 2].map(|k| median(cpus[i][k].clone()));
            (m, median(secs[i].clone()), rss[i], cpu, median(firsts[i].clone()))
        })
        .collect()
}

fn report(cs: &ChangeSet, results: &Results, runs: usize) {
    println!(
        "\napply catch-up, change set `{}`: {} rows in {} transactions, median of {runs}:",
        cs.name, cs.rows, cs.txns
    );
    // steady: from the first applied transaction to the last (what start-up costs
    // is in "first s")
    println!(
        "  {:<34} {:>10} {:>10} {:>8} {:>13} {:>14} {:>28}",
        "mode", "seconds", "rows/s", "first s", "steady rows/s", "peak RSS MB", "CPU s: target/origin/drc"
    );
    let steady = |s: f64, first: f64| cs.rows as f64 / (s - first).max(1e-3);
    for (m, s, rss, cpu, first) in results {
        let rss = if *rss > 0.0 { format!("{rss:.0}") } else { "-".into() };
        let cpu = format!("{:.2} / {:.2} / {:.2}", cpu[0], cpu[1], cpu[2]);
        let st = match cs.txns {
            1 => "-".to_string(),
            _ => format!("{:.0}", steady(*s, *first)),
        };
        println!(
            "  {:<34} {s:>10.2} {:>10.0} {first:>8.2} {st:>13} {rss:>14} {cpu:>28}",
            m.label(),
            cs.rows as f64 / s
        );
    }
    let find = |m: Mode| results.iter().find(|r| r.0 == m);
    let rate = |m: Mode| find(m).map(|r| cs.rows as f64 / r.1);
    // issue 17's targets: 3x native single-threaded on the OLTP set, 1x on one big
    // transaction; 1.5x MariaDB's 4 optimistic threads (issue 6)
    let native0_target = if cs.txns == 1 { 1.0 } else { 3.0 };
    for drc in [Mode::DrcDirect, Mode::DrcKafka] {
        let Some(ours) = rate(drc) else { continue };
        for (native, target) in [(Mode::Native(0), native0_target), (Mode::Native(4), 1.5)] {
            if let Some(theirs) = rate(native) {
                println!(
                    "  ratio {} / {}: {:.2}x (target >= {target}x)",
                    drc.label(),
                    native.label(),
                    ours / theirs
                );
            }
        }
    }
    if let (Some(k), Some(d)) = (find(Mode::DrcKafka), find(Mode::DrcDirect)) {
        println!(
            "  ratio {} / {}: {:.2}x, steady {:.2}x (target >= 0.8x)",
            Mode::DrcKafka.label(),
            Mode::DrcDirect.label(),
            d.1 / k.1,
            steady(k.1, k.4) / steady(d.1, d.4)
        );
    }
}

fn main() {
    testenv_up_with(&["e", "f", "--kafka"]);
    let _broker = start_broker();
    let rt = runtime();
    let txns: u64 = std::env::var("APPLY_TXNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    // APPLY_MODES=native0,native4,direct,kafka (default: all)
    let wanted = std::env::var("APPLY_MODES").unwrap_or_else(|_| "native0,native4,direct,kafka".into());
    let modes: Vec<Mode> = wanted
        .split(',')
        .map(|m| match m.trim() {
            "native0" => Mode::Native(0),
            "native4" => Mode::Native(4),
            "direct" => Mode::DrcDirect,
            "kafka" => Mode::DrcKafka,
            other => panic!("APPLY_MODES: unknown mode {other:?}"),
        })
        .collect();
    rt.block_on(async {
        eprintln!("generating {txns} OLTP transactions in zone f…");
        let cs = generate_oltp(txns).await;
        let r = bench(&cs, &modes, RUNS).await;
        report(&cs, &r, RUNS);
        if std::env::var("APPLY_BIG").as_deref() != Ok("0") {
            eprintln!("generating one 1,000,000-row transaction in zone f…");
            let cs = generate_big().await;
            let r = bench(&cs, &[Mode::Native(0), Mode::DrcDirect], 1).await;
            report(&cs, &r, 1);
        }
        reset_target().await;
    });
}
