//! Transport benchmark: rows/s from zone a to zone b through the **direct** transport
//! and through **Kafka** (tansu), in the same run, on the same data.
//!
//! Each run: a fresh database in zones a and b, both daemons started once (they pin
//! their start position) and stopped; then zone a commits `TXNS` transactions of
//! `ROWS_PER_TXN` inserted rows (mixed types); then the daemons start and the clock
//! runs until zone b's `drc.applied` counts every transaction. That is catch-up
//! throughput of the whole path: read zone a's binlog, (publish, consume,) apply in b.
//! Medians of `RUNS` runs per transport, and their ratio.
//!
//! Run: `cargo bench --bench transport` (starts the testenv servers it needs).
//! Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use common::pair::{Pair, Transport};
use common::*;
use std::time::{Duration, Instant};

const TXNS: u64 = 100;
const ROWS_PER_TXN: u64 = 500;
const RUNS: usize = 3;

const TABLE: &str = "CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, \
    amount DECIMAL(12,2) NOT NULL, status ENUM('new','paid','shipped') NOT NULL, note TEXT, qty INT NOT NULL, \
    created DATETIME(6) NOT NULL, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

async fn one_run(transport: Transport, run: usize) -> f64 {
    let name = format!(
        "bench_{}_{run}",
        if transport == Transport::Kafka {
            "kafka"
        } else {
            "direct"
        }
    );
    let mut p = Pair::with(
        &name,
        &[TABLE],
        5101 + 10 * run as u32 + 100 * (transport as u32),
        transport,
    )
    .await;
    for cfg in &p.cfg {
        // production-like fragments and quiet logs
        let text = std::fs::read_to_string(cfg)
            .unwrap()
            .replace("max_fragment_rows = 50\n", "");
        std::fs::write(cfg, text).unwrap();
    }
    p.start_both().await;
    p.kill9(0);
    p.kill9(1);
    let db = p.db.clone();
    let mut c = conn(ZONE_A).await;
    for t in 0..TXNS {
        let values: Vec<String> = (0..ROWS_PER_TXN)
            .map(|i| {
                format!(
                    "('customer {t}/{i}', {}.{:02}, '{}', 'a note of some length for row {i} of transaction {t}', {i}, NOW(6))",
                    i * 7 % 10_000,
                    i % 100,
                    ["new", "paid", "shipped"][(i % 3) as usize]
                )
            })
            .collect();
        mysql_async::prelude::Queryable::query_drop(
            &mut c,
            format!(
                "INSERT INTO `{db}`.orders (customer, amount, status, note, qty, created) VALUES {}",
                values.join(",")
            ),
        )
        .await
        .unwrap();
    }
    let start = Instant::now();
    p.start(0);
    p.start(1);
    let done = wait_until(Duration::from_secs(600), || async { p.applied_txns(1).await >= TXNS }).await;
    let secs = start.elapsed().as_secs_f64();
    assert!(done, "not applied in 10 minutes:\n{}", p.logs());
    assert_eq!(p.rows(1, "orders").await.len() as u64, TXNS * ROWS_PER_TXN);
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    testenv_up_with(&["--kafka"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = (TXNS * ROWS_PER_TXN) as f64;
    let mut results = Vec::new();
    for transport in [Transport::Direct, Transport::Kafka] {
        let mut secs = Vec::new();
        for run in 0..RUNS {
            let s = rt.block_on(one_run(transport, run));
            println!(
                "{transport:?} run {run}: {rows} rows in {TXNS} transactions applied in {s:.2} s = {:.0} rows/s",
                rows / s
            );
            secs.push(s);
        }
        results.push(rows / median(secs));
    }
    println!("\ntransport catch-up a -> b, {TXNS} x {ROWS_PER_TXN} rows, median of {RUNS}:");
    println!("  direct: {:>9.0} rows/s", results[0]);
    println!("  kafka:  {:>9.0} rows/s", results[1]);
    println!("  ratio kafka / direct: {:.2}", results[1] / results[0]);
}
