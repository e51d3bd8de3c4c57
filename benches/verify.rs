//! Verify and seed benchmark (issue 16), on the testenv zones a (33061) and b (33062):
//!
//! 1. **Verify**: a table of `VERIFY_ROWS` (1,000,000) rows, the same in both zones
//!    (loaded without binary logging). `drc verify` three times: rows/s (median), and
//!    the CPU seconds of each server and of drc; beside it, in the same run, each
//!    server's own `CHECKSUM TABLE` of the same table (run in both zones at once: the
//!    time of the slower), the lower bound of any comparison that reads every row.
//! 2. **Seed**: zone b's copy emptied, zone b's daemon started (replicating from zone
//!    a), `drc seed --from a`: rows/s; beside it `mariadb-dump --single-transaction
//!    | mariadb` (binary logging off in b) of the same table into the emptied table.
//!
//! Run: `cargo bench --bench verify` (starts the testenv). Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const DB: &str = "drc_bench_verify";

async fn load(port: u16, rows: u64) {
    let mut c = conn(port).await;
    for q in [
        "SET SESSION sql_log_bin = 0".to_string(),
        format!("DROP DATABASE IF EXISTS `{DB}`"),
        format!("CREATE DATABASE `{DB}`"),
        format!(
            "CREATE TABLE `{DB}`.t (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, n INT NOT NULL, \
             amount DECIMAL(12,2) NOT NULL, note VARCHAR(255) NULL, \
             updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
        ),
        format!(
            "INSERT INTO `{DB}`.t SELECT seq, CONCAT('customer ', seq), seq % 100, seq / 7, \
             IF(seq % 10 = 0, NULL, REPEAT('x', seq % 50)), TIMESTAMP('2026-01-01') + INTERVAL seq SECOND \
             FROM `{DB}`.seq_1_to_{rows}"
        ),
    ] {
        c.query_drop(&q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

async fn empty_b() {
    let mut c = conn(ZONE_B).await;
    c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
    c.query_drop(format!("TRUNCATE TABLE `{DB}`.t")).await.unwrap();
    c.query_drop(format!("DELETE FROM drc.seed_progress WHERE db = '{DB}'"))
        .await
        .ok();
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("zone-b.toml");
    let text = config_head("b", "", ZONE_B, 6401, "now")
        + &format!("[replication]\ndatabases = [\"{DB}\"]\nversion_column = \"updated_at\"\n")
        + &peer_section("a", Some(ZONE_A));
    std::fs::write(&path, text).unwrap();
    path
}

/// CPU seconds of zone a's server, zone b's, and `f`'s own child process time.
fn servers_cpu() -> (f64, f64) {
    (cpu_secs(server_pid("a")), cpu_secs(server_pid("b")))
}

fn main() {
    let rows: u64 = std::env::var("VERIFY_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let up = Command::new(repo().join("testenv/up.sh")).status().unwrap();
    assert!(up.success(), "testenv/up.sh");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let rt = runtime();
    rt.block_on(async {
        let t = Instant::now();
        tokio::join!(load(ZONE_A, rows), load(ZONE_B, rows));
        println!(
            "loaded {rows} rows into each zone in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    });
    init(&cfg);

    // 1. verify against CHECKSUM TABLE
    let mut drc_rates = Vec::new();
    let mut drc_cpu = Vec::new();
    let mut native_rates = Vec::new();
    let mut native_cpu = Vec::new();
    for round in 0..3 {
        let (a0, b0) = servers_cpu();
        let t = Instant::now();
        let out = drc_cmd(&["verify", "--zones", "a,b", "--format", "json"], &cfg)
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        let (a1, b1) = servers_cpu();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        assert!(
            out.status.success() && json["rows"] == rows,
            "drc verify: {json} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        drc_rates.push(rows as f64 / secs);
        drc_cpu.push((a1 - a0, b1 - b0));
        let (a0, b0) = servers_cpu();
        let t = Instant::now();
        rt.block_on(async {
            let sum = |port: u16| async move {
                let mut c = conn(port).await;
                let r: Option<(String, Option<u64>)> = c.query_first(format!("CHECKSUM TABLE `{DB}`.t")).await.unwrap();
                r.and_then(|r| r.1).unwrap()
            };
            let (x, y) = tokio::join!(sum(ZONE_A), sum(ZONE_B));
            assert_eq!(x, y, "the zones' tables are equal");
        });
        let secs = t.elapsed().as_secs_f64();
        let (a1, b1) = servers_cpu();
        native_rates.push(rows as f64 / secs);
        native_cpu.push((a1 - a0, b1 - b0));
        println!(
            "round {round}: drc verify {:.0} rows/s (servers' CPU a {:.1} s, b {:.1} s), CHECKSUM TABLE {:.0} rows/s (a {:.1} s, b {:.1} s)",
            drc_rates[round], drc_cpu[round].0, drc_cpu[round].1, native_rates[round], native_cpu[round].0, native_cpu[round].1
        );
    }

    // 2. seed against mariadb-dump | mariadb
    rt.block_on(empty_b());
    let log = dir.path().join("b.log");
    let mut daemon = spawn(&cfg, &log);
    let started = rt.block_on(async {
        let mut c = conn(ZONE_B).await;
        for _ in 0..300 {
            let n: Option<u64> = c
                .query_first("SELECT COUNT(*) FROM drc.applied WHERE origin_zone = 'a'")
                .await
                .unwrap();
            if n.unwrap_or(0) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(
        started && daemon.exited().is_none(),
        "zone b's daemon: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let t = Instant::now();
    let out = drc_cmd(
        &["seed", "--from", "a", "--format", "json", "--chunk-rows", "5000"],
        &cfg,
    )
    .output()
    .unwrap();
    let seed_secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "drc seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(daemon);
    rt.block_on(empty_b());
    let t = Instant::now();
    let mut dump = Command::new("mariadb-dump")
        .args([
            "-h127.0.0.1",
            &format!("-P{ZONE_A}"),
            "-udrc_test",
            "-pdrc_test",
            "--single-transaction",
            "--no-create-info",
            DB,
            "t",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mariadb-dump");
    let status = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{ZONE_B}"),
            "-udrc_test",
            "-pdrc_test",
            "--init-command=SET sql_log_bin=0",
            DB,
        ])
        .stdin(dump.stdout.take().unwrap())
        .status()
        .expect("mariadb");
    let dumped = dump.wait().unwrap();
    let dump_secs = t.elapsed().as_secs_f64();
    assert!(status.success() && dumped.success(), "mariadb-dump | mariadb");

    let (d, n) = (median(drc_rates), median(native_rates));
    println!("\nVerify and seed, {rows} rows, same run (medians of 3 for verify):");
    println!("  {:<34} {:>12}", "", "rows/s");
    println!("  {:<34} {:>12.0}", "drc verify (2 zones)", d);
    println!("  {:<34} {:>12.0}", "CHECKSUM TABLE (both at once)", n);
    println!("  drc verify / CHECKSUM TABLE: {:.2}x", d / n);
    println!(
        "  {:<34} {:>12.0}",
        "drc seed (daemon b replicating)",
        rows as f64 / seed_secs
    );
    println!("  {:<34} {:>12.0}", "mariadb-dump | mariadb", rows as f64 / dump_secs);
    println!("  drc seed / dump|load: {:.2}x", dump_secs / seed_secs);
    rt.block_on(async {
        for port in [ZONE_A, ZONE_B] {
            let mut c = conn(port).await;
            c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
            c.query_drop(format!("DROP DATABASE IF EXISTS `{DB}`")).await.unwrap();
        }
    });
}
