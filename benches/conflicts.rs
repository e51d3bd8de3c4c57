//! Conflict benchmark (issue 6, scenario 5), on testenv zones a and b with one
//! `drc run` daemon each (direct transport):
//! * **one zone writing**: zone a commits `TXNS` transactions, each updating 5 random
//!   keys of 2,000 shared rows, while the daemons are stopped; then the daemons start
//!   and the clock runs until zone b has applied them all;
//! * **both zones writing the same keys**: zones a and b each commit `TXNS / 2` such
//!   transactions on the same 2,000 keys (so most incoming rows meet a different local
//!   row: last-writer-wins decides and logs a conflict), then both daemons catch up at
//!   once; the clock runs until both have applied the other's; the zones must end
//!   identical;
//! * **LWW overhead**: the one-zone case again with the table replicated as
//!   `unversioned` (origin wins: a plain upsert, no read of the local row), against
//!   the same case with last-writer-wins.
//!
//! Rows/s = rows applied (both directions) / seconds; medians of `RUNS`.
//! Run: `cargo bench --bench conflicts` (starts testenv zones a and b).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use support::{median, runtime};

const RUNS: usize = 3;
const KEYS: u64 = 2_000;
const ROWS_PER_TXN: u64 = 5;

const TABLE: &str =
    "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL, note VARCHAR(64) NOT NULL, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Case {
    OneZone,
    BothZones,
    OneZoneUnversioned,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::OneZone => "one zone writing (LWW)",
            Case::BothZones => "both zones, same keys (LWW)",
            Case::OneZoneUnversioned => "one zone writing (plain upsert)",
        }
    }
}

/// `n` transactions of 5 random-key updates in the zone on `port`.
async fn write(port: u16, db: &str, n: u64, seed: u64) {
    let mut c = conn(port).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..n {
        let ids: Vec<String> = (0..ROWS_PER_TXN)
            .map(|_| (rng.gen_range(0..KEYS) * 2 + 1).to_string())
            .collect();
        c.query_drop(format!(
            "UPDATE `{db}`.accounts SET balance = balance + 1, note = 'w{port}/{i}' WHERE id IN ({})",
            ids.join(", ")
        ))
        .await
        .unwrap();
    }
}

/// Rows the updates changed (ids may repeat within a transaction).
async fn changed_rows(port: u16, db: &str) -> u64 {
    let mut c = conn(port).await;
    let n: Option<u64> = c
        .query_first(format!("SELECT CAST(SUM(balance) AS UNSIGNED) FROM `{db}`.accounts"))
        .await
        .unwrap();
    n.unwrap_or(0)
}

/// One run: (rows applied, seconds, conflicts logged).
async fn run(case: Case, txns: u64, run: usize) -> (u64, f64, u64) {
    let base = 5401 + 10 * run as u32 + 100 * case as u32;
    let mut p = Pair::new(&format!("conflicts{run}{}", case as u32), &[TABLE], base).await;
    let db = p.db.clone();
    for cfg in &p.cfg {
        let mut text = std::fs::read_to_string(cfg)
            .unwrap()
            .replace("max_fragment_rows = 50\n", "");
        if case == Case::OneZoneUnversioned {
            text = text
                .replace("version_column = \"updated_at\"", "version_column = \"no_version\"")
                .replace(
                    &format!("channel = \"{db}\""),
                    &format!("channel = \"{db}\"\nunversioned = [\"{db}.accounts\"]"),
                );
        }
        std::fs::write(cfg, text).unwrap();
    }
    p.start_both().await;
    let seed: Vec<String> = (0..KEYS).map(|k| format!("({}, 0, 'seed')", k * 2 + 1)).collect();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.accounts (id, balance, note) VALUES {}",
            seed.join(", ")
        )],
    )
    .await;
    let seeded = wait_until(Duration::from_secs(60), || async {
        p.rows(1, "accounts").await.len() as u64 == KEYS
    })
    .await;
    assert!(seeded, "seed rows did not reach zone b\n{}", p.logs());
    p.kill9(0);
    p.kill9(1);
    let (from_a, from_b) = match case {
        Case::BothZones => (txns / 2, txns / 2),
        _ => (txns, 0),
    };
    let (applied_b0, applied_a0) = (p.applied_from(1, 0).await, p.applied_from(0, 1).await);
    let wa = tokio::spawn({
        let db = db.clone();
        async move { write(ZONE_A, &db, from_a, run as u64).await }
    });
    let wb = tokio::spawn({
        let db = db.clone();
        async move { write(ZONE_B, &db, from_b, 1000 + run as u64).await }
    });
    wa.await.unwrap();
    wb.await.unwrap();
    // the rows each zone changed itself (its balance sum grew by one per changed row)
    let rows = changed_rows(ZONE_A, &db).await + changed_rows(ZONE_B, &db).await;
    let t = Instant::now();
    p.start(0);
    p.start(1);
    let done = wait_until(Duration::from_secs(600), || async {
        p.applied_from(1, 0).await >= applied_b0 + from_a && p.applied_from(0, 1).await >= applied_a0 + from_b
    })
    .await;
    let secs = t.elapsed().as_secs_f64();
    assert!(done, "not applied in 10 minutes\n{}", p.logs());
    if case == Case::BothZones {
        assert!(
            wait_converged(&p, "accounts", 60).await,
            "zones differ after the conflicts"
        );
    }
    let mut conflicts = 0;
    for z in [0, 1] {
        let mut c = conn(PORTS[z]).await;
        let n: Option<u64> = c
            .exec_first("SELECT COUNT(*) FROM `drc`.`conflicts` WHERE db = ?", (&db,))
            .await
            .unwrap();
        conflicts += n.unwrap_or(0);
    }
    (rows, secs, conflicts)
}

fn main() {
    testenv_up_with(&[]);
    let txns: u64 = std::env::var("CONFLICT_TXNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = runtime();
    let cases = [Case::OneZone, Case::BothZones, Case::OneZoneUnversioned];
    let mut rates = vec![Vec::new(); cases.len()];
    let mut conflicts = vec![0u64; cases.len()];
    for r in 0..RUNS {
        for (i, &case) in cases.iter().enumerate() {
            let (rows, secs, c) = rt.block_on(run(case, txns, r));
            eprintln!(
                "{} run {r}: {rows} rows applied in {secs:.2} s = {:.0} rows/s, {c} conflicts logged",
                case.label(),
                rows as f64 / secs
            );
            rates[i].push(rows as f64 / secs);
            conflicts[i] = c;
        }
    }
    let m: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\nconflicts, {txns} transactions of {ROWS_PER_TXN} updates on {KEYS} keys, median of {RUNS}:");
    for (i, case) in cases.iter().enumerate() {
        println!(
            "  {:<34} {:>10.0} rows/s   {:>6} conflicts logged (last run)",
            case.label(),
            m[i],
            conflicts[i]
        );
    }
    println!(
        "  both zones / one zone (throughput under conflicts): {:.2}",
        m[1] / m[0]
    );
    println!(
        "  LWW / plain upsert (cost of the conditional apply):  {:.2}",
        m[0] / m[2]
    );
}
