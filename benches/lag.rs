//! Steady-state lag benchmark (issue 6, scenario 3): fixed-rate writes in testenv
//! zone f, carried to zone e at the same time by drc (database `lagdrc`, direct
//! transport, zone e's daemon) and by MariaDB's own replication (database
//! `lagnative`, zone e a replica of zone f with one SQL thread, `replicate_do_db`).
//!
//! Two writers (one per database) insert rows at `rate` rows/s each, 5 rows per
//! transaction, every row stamped with the writer's clock (µs) just before its
//! statement; one poller per database reads zone e every millisecond and takes, for
//! each new row, (seen in e) − (stamped in f). Both sides pay the same stamping and
//! polling, so the difference is the replication's. Reported per rate: p50, p99 and
//! p99.9 for each, drc's p99 − native p99 (target at 5,000 rows/s: <= 10 ms), and
//! the daemon's peak RSS.
//!
//! Run: `cargo bench --bench lag` (starts testenv zones d and e). `LAG_SECONDS`
//! (default 20) sets the length of each rate's phase. Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use support::*;

const RATES: [u64; 2] = [1_000, 5_000];
const ROWS_PER_TXN: u64 = 5;
const DRC_DB: &str = "lagdrc";
const NATIVE_DB: &str = "lagnative";

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn table(rate: u64) -> String {
    format!(
        "CREATE TABLE t{rate} (id BIGINT PRIMARY KEY AUTO_INCREMENT, payload VARCHAR(64) NOT NULL, stamped_us BIGINT NOT NULL, \
         updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
    )
}

async fn create_databases(port: u16) {
    let mut c = conn(port).await;
    for db in [DRC_DB, NATIVE_DB] {
        c.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
        c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
        c.query_drop(format!("USE {db}")).await.unwrap();
        for rate in RATES {
            c.query_drop(table(rate)).await.unwrap();
        }
    }
}

/// Writes `rate` rows/s into `db`.`t<rate>` for `secs`; returns the rows written.
async fn writer(db: &'static str, rate: u64, secs: u64) -> u64 {
    let mut c = conn(ZONE_F).await;
    c.query_drop("SET SESSION auto_increment_increment = 1, auto_increment_offset = 1")
        .await
        .unwrap();
    let txns_per_sec = rate / ROWS_PER_TXN;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * txns_per_sec as f64) as u64;
        while sent < due {
            let ts = now_us();
            let values: Vec<String> = (0..ROWS_PER_TXN).map(|i| format!("('row {sent}/{i}', {ts})")).collect();
            c.query_drop(format!(
                "INSERT INTO {db}.t{rate} (payload, stamped_us) VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
            sent += 1;
        }
    }
    sent * ROWS_PER_TXN
}

/// Polls zone e's `db`.`t<rate>` every millisecond until `stop` and then until it
/// has seen `expect` rows (which the writer reports at the end); returns the lags, ms.
async fn poller(db: &'static str, rate: u64, mut expect: tokio::sync::watch::Receiver<Option<u64>>) -> Vec<f64> {
    let mut c = conn(ZONE_E).await;
    let mut lags = Vec::new();
    let mut last = 0u64;
    let mut done_at: Option<Instant> = None;
    loop {
        let rows: Vec<(u64, i64)> = c
            .query(format!(
                "SELECT id, stamped_us FROM {db}.t{rate} WHERE id > {last} ORDER BY id LIMIT 20000"
            ))
            .await
            .unwrap();
        let seen = now_us();
        for (id, stamped) in &rows {
            lags.push((seen - stamped) as f64 / 1000.0);
            last = *id;
        }
        if let Some(n) = *expect.borrow_and_update() {
            if lags.len() as u64 >= n {
                return lags;
            }
            let since = *done_at.get_or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "{db}: {} of {n} rows reached zone e within 60 s of the end of the load",
                lags.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    testenv_up_with(&["e", "f"]);
    let secs: u64 = std::env::var("LAG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = runtime();
    rt.block_on(async {
        let mut e = conn(ZONE_E).await;
        e.query_drop("STOP SLAVE").await.ok();
        e.query_drop("RESET SLAVE ALL").await.ok();
        e.query_drop("DROP DATABASE IF EXISTS drc").await.unwrap();
        create_databases(ZONE_E).await;
        e.query_drop("RESET MASTER").await.unwrap();
        create_databases(ZONE_F).await;
        let start = gtid_pos(&mut conn(ZONE_F).await).await;
        start_replica(&mut e, &start, 0, NATIVE_DB).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "e", ZONE_E, 7301, &format!("gtid:{start}"), DRC_DB, None);
        init(&cfg);
        let log = dir.path().join("e.log");
        let daemon = spawn(&cfg, &log);
        // running once it has recorded where it reads zone f from
        let up = wait_until(Duration::from_secs(30), || async {
            let n: Option<u64> = conn(ZONE_E)
                .await
                .query_first("SELECT COUNT(*) FROM drc.applied WHERE origin_zone = 'f'")
                .await
                .unwrap_or(None);
            n.unwrap_or(0) > 0
        })
        .await;
        assert!(
            up,
            "zone e's daemon did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let mut lines = Vec::new();
        for rate in RATES {
            let mut results = Vec::new();
            let (tx_drc, rx_drc) = tokio::sync::watch::channel(None);
            let (tx_nat, rx_nat) = tokio::sync::watch::channel(None);
            let p_drc = tokio::spawn(poller(DRC_DB, rate, rx_drc));
            let p_nat = tokio::spawn(poller(NATIVE_DB, rate, rx_nat));
            let (w_drc, w_nat) = (
                tokio::spawn(writer(DRC_DB, rate, secs)),
                tokio::spawn(writer(NATIVE_DB, rate, secs)),
            );
            let (n_drc, n_nat) = (w_drc.await.unwrap(), w_nat.await.unwrap());
            tx_drc.send(Some(n_drc)).unwrap();
            tx_nat.send(Some(n_nat)).unwrap();
            for (name, p) in [("drc direct", p_drc), ("MariaDB replication", p_nat)] {
                let mut lags = p.await.unwrap();
                lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let r = (pct(&lags, 0.5), pct(&lags, 0.99), pct(&lags, 0.999));
                eprintln!(
                    "{rate} rows/s, {name}: {} rows, lag p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                    lags.len(),
                    r.0,
                    r.1,
                    r.2,
                    lags.last().copied().unwrap_or(0.0)
                );
                results.push((name, lags.len(), r));
            }
            lines.push((rate, results));
        }
        let rss = peak_rss_mb(daemon.id());
        drop(daemon);
        e.query_drop("STOP SLAVE").await.ok();
        e.query_drop("RESET SLAVE ALL").await.ok();
        println!("\nsteady-state lag f -> e, {secs} s per rate, (seen in e) - (stamped in f):");
        println!(
            "  {:<8} {:<22} {:>8} {:>10} {:>10} {:>10}",
            "rows/s", "replication", "rows", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for (rate, results) in &lines {
            for (name, n, (p50, p99, p999)) in results {
                println!("  {rate:<8} {name:<22} {n:>8} {p50:>10.2} {p99:>10.2} {p999:>10.2}");
            }
            let d = results[0].2 .1 - results[1].2 .1;
            println!("  {rate:<8} drc p99 - native p99: {d:+.2} ms (target at 5000 rows/s: <= +10 ms)");
        }
        println!("  drc daemon peak RSS: {rss:.0} MB");
    });
}
