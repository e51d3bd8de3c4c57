//! A 1,000,000-row transaction streams through `drc binlog tail` with bounded memory:
//! the rows are handed on in fragments, never held whole. Peak RSS of the tail process
//! (getrusage of the waited child) must stay under 200 MB; the figure is printed.
//!
//! Uses testenv zone c (private to the `zone_c_` tests, run one at a time, so no other
//! write lands in the stream; MariaDB's SEQUENCE engine makes the rows). Run:
//! `testenv/up.sh && cargo nextest run --test big_transaction --no-capture`.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::io::BufRead;
use std::process::{Command, Stdio};

const ROWS: u64 = 1_000_000;

fn children_max_rss_kb() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) }, 0);
    ru.ru_maxrss
}

#[tokio::test]
async fn zone_c_million_row_transaction_streams_in_bounded_memory() {
    testenv_up("c");
    let db = format!("drc_big_{}", std::process::id());
    let start = fresh_db_at(
        ZONE_C,
        &db,
        "t (id INT PRIMARY KEY, a BIGINT, b CHAR(32), c DATETIME(6))",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "c", ZONE_C, 2201, &format!("gtid:{start}"));
    let out = dir.path().join("out.jsonl");
    let before = children_max_rss_kb();

    let mut c = conn(ZONE_C).await;
    let t0 = std::time::Instant::now();
    c.query_drop(format!(
        "INSERT INTO {db}.t SELECT seq, seq * 1000, md5(seq), '2026-01-01 00:00:00.123456' FROM {db}.seq_1_to_{ROWS}"
    ))
    .await
    .unwrap();
    eprintln!(
        "inserted {ROWS} rows in one transaction in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let t1 = std::time::Instant::now();
    let mut child = Command::new(drc_bin())
        .args(["binlog", "tail", "--max-transactions", "1", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let st = child.wait().unwrap();
    let secs = t1.elapsed().as_secs_f64();
    assert!(st.success());
    let rss_kb = children_max_rss_kb();
    c.query_drop(format!("DROP DATABASE {db}")).await.unwrap();

    let f = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let (mut rows, mut commits, mut last_id) = (0u64, 0u64, 0u64);
    for line in f.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        rows += 1;
        let id = v["after"]["id"].as_u64().unwrap();
        assert_eq!(id, last_id + 1, "rows in order");
        last_id = id;
        if v["commit"] == true {
            commits += 1;
        }
    }
    assert_eq!(rows, ROWS);
    assert_eq!(commits, 1, "one transaction, one commit line");
    eprintln!(
        "drc binlog tail: {ROWS} rows in {secs:.1} s ({:.0} rows/s), peak RSS {:.1} MB",
        ROWS as f64 / secs,
        rss_kb as f64 / 1024.0
    );
    assert!(rss_kb > before || before < 200 * 1024, "rusage did not see the child");
    assert!(rss_kb < 200 * 1024, "peak RSS {} kB is over 200 MB", rss_kb);
}
