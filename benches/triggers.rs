//! What drc's triggers cost the application's own writes (docs/CONFLICTS.md, "Local
//! writes never go back in version"): the same statements on the same server (testenv
//! zone e), once into a table of a replicated database with drc's three triggers
//! (tombstone AFTER DELETE, version guards BEFORE UPDATE / BEFORE INSERT) and once
//! into an identical table without any trigger (the peer).
//! * single-row autocommit statements (the application's usual write): `ROWS`
//!   inserts with server-generated (AUTO_INCREMENT) keys, `ROWS` inserts with
//!   explicit keys, `ROWS` updates by key, `ROWS` deletes by key;
//! * multi-row statements: the same counts in statements of 1,000 rows.
//!
//! Rows/s for each, median of `RUNS`, and the ratio with / without triggers.
//! Run: `cargo bench --bench triggers` (starts testenv zone e). `TRIGGER_ROWS`
//! overrides `ROWS`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use mysql_async::prelude::Queryable;
use std::time::Instant;
use support::{config, init, median, runtime, ZONE_E};

const RUNS: usize = 3;
const WITH: &str = "trigbench_drc";
const WITHOUT: &str = "trigbench_plain";
const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, note VARCHAR(64) NOT NULL, n INT NOT NULL DEFAULT 0, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const AUTO: &str = "CREATE TABLE a (id BIGINT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(64) NOT NULL, \
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CASES: [&str; 7] = [
    "insert, AUTO_INCREMENT key, 1 row",
    "insert, 1 row per statement",
    "update, 1 row per statement",
    "delete, 1 row per statement",
    "insert, 1,000 rows per statement",
    "update, 1,000 rows per statement",
    "delete, 1,000 rows per statement",
];

/// Runs the seven cases against `db`.t (fresh) and returns rows/s for each.
async fn run(db: &str, rows: u64, cfg: Option<&std::path::Path>) -> Vec<f64> {
    let mut c = conn(ZONE_E).await;
    for q in [
        format!("DROP DATABASE IF EXISTS `{db}`"),
        format!("CREATE DATABASE `{db}`"),
        format!("USE `{db}`"),
        TABLE.to_string(),
        AUTO.to_string(),
    ] {
        c.query_drop(&q).await.unwrap();
    }
    if let Some(cfg) = cfg {
        init(cfg);
        let n: u64 = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME LIKE 'drc\\_%'",
                (db,),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 6, "drc init installs three triggers per table");
    }
    // each case: its statements, with their key parameters (none: text protocol)
    let one = |sql: &'static str| {
        (1..=rows)
            .map(move |id| (sql.to_string(), vec![id]))
            .collect::<Vec<_>>()
    };
    let bulk = |sql: &'static str| {
        (1..=rows)
            .step_by(1000)
            .map(move |from| (sql.to_string(), vec![from, from + 999]))
            .collect::<Vec<_>>()
    };
    let cases: Vec<Vec<(String, Vec<u64>)>> = vec![
        (1..=rows)
            .map(|_| ("INSERT INTO a (note) VALUES ('new')".to_string(), vec![]))
            .collect(),
        one("INSERT INTO t (id, note) VALUES (?, 'new')"),
        one("UPDATE t SET note = 'changed', n = n + 1 WHERE id = ?"),
        one("DELETE FROM t WHERE id = ?"),
        // the keys deleted above: these inserts meet their tombstones
        (1..=rows)
            .step_by(1000)
            .map(|from| {
                let values: Vec<String> = (from..=(from + 999).min(rows))
                    .map(|id| format!("({id}, 'bulk')"))
                    .collect();
                (format!("INSERT INTO t (id, note) VALUES {}", values.join(", ")), vec![])
            })
            .collect(),
        bulk("UPDATE t SET note = 'bulk changed', n = n + 1 WHERE id BETWEEN ? AND ?"),
        bulk("DELETE FROM t WHERE id BETWEEN ? AND ?"),
    ];
    let mut out = Vec::new();
    for statements in cases {
        let t = Instant::now();
        for (sql, keys) in statements {
            if keys.is_empty() {
                c.query_drop(sql).await.unwrap();
            } else {
                c.exec_drop(sql, keys).await.unwrap();
            }
        }
        out.push(rows as f64 / t.elapsed().as_secs_f64());
    }
    let left: u64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
    assert_eq!(left, 0, "every row deleted");
    out
}

fn main() {
    testenv_up_with(&["e"]);
    let rows: u64 = std::env::var("TRIGGER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "e", ZONE_E, 7501, "beginning", WITH, None);
    let rt = runtime();
    let (mut with, mut without) = (vec![Vec::new(); CASES.len()], vec![Vec::new(); CASES.len()]);
    for r in 0..RUNS {
        // alternate which goes first, so a warming server favours neither
        let order = if r % 2 == 0 { [true, false] } else { [false, true] };
        for triggers in order {
            let rates = if triggers {
                rt.block_on(run(WITH, rows, Some(&cfg)))
            } else {
                rt.block_on(run(WITHOUT, rows, None))
            };
            let into = if triggers { &mut with } else { &mut without };
            for (i, v) in rates.into_iter().enumerate() {
                into[i].push(v);
            }
        }
        eprintln!("run {r} done");
    }
    println!(
        "\ntriggers: the application's writes with drc's triggers vs without, {rows} rows per case, median of {RUNS}:"
    );
    println!(
        "  {:<34} {:>14} {:>14} {:>8}",
        "case", "with rows/s", "without rows/s", "ratio"
    );
    for (i, case) in CASES.iter().enumerate() {
        let (w, wo) = (median(with[i].clone()), median(without[i].clone()));
        println!("  {case:<34} {w:>14.0} {wo:>14.0} {:>7.2}x", w / wo);
    }
    rt.block_on(async {
        let mut c = conn(ZONE_E).await;
        for db in [WITH, WITHOUT] {
            c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`")).await.unwrap();
        }
    });
}
