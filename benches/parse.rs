//! Parse-drain benchmark (issue 6, scenario 1): a pre-generated binlog of more than
//! 1,000,000 row events (inserts and updates on three tables, mixed types) on testenv
//! zone d, read from the live server and decoded with nothing downstream by:
//! * drc: `drc binlog drain` (release build);
//! * python-mysql-replication (PyPI `mysql-replication`, in a venv under testenv/.run)
//!   iterating every row (`benches/peers/pyrepl_drain.py`); it reads a few thousand
//!   rows/s, so its runs are time-boxed (`PY_SECONDS`, default 60) and its rate is
//!   taken over the part it read;
//! * `mariadb-binlog --read-from-remote-server --base64-output=decode-rows -v` to /dev/null.
//!
//! For each: rows/s, binlog MB/s and CPU-seconds per million rows (user+sys of the
//! process, from wait4), median of `RUNS` runs (python-mysql-replication: `PY_RUNS`,
//! default 1 — it takes minutes per run), and drc's ratios to each peer.
//! Run: `cargo bench --bench parse`. Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use mysql_async::prelude::Queryable;
use std::process::{Command, Stdio};
use std::time::Instant;

const ZONE_D: u16 = 33064;
const RUNS: usize = 3;
/// Rows per generated transaction.
const CHUNK: u64 = 1000;

const TABLES: &[&str] = &[
    "CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, \
     status ENUM('new','paid','shipped') NOT NULL, note TEXT, qty INT NOT NULL, created DATETIME(6) NOT NULL, \
     updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
    "CREATE TABLE events (id BIGINT PRIMARY KEY AUTO_INCREMENT, kind VARCHAR(32) NOT NULL, payload JSON, \
     ts TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), score DOUBLE, flags BIT(8))",
    "CREATE TABLE users (id BIGINT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL, \
     email VARCHAR(128), birthday DATE, balance BIGINT, active TINYINT, tag CHAR(8))",
];

/// Generates the data once (zone d keeps it); returns (first binlog, row events, binlog bytes).
async fn generate() -> (String, u64, u64) {
    let mut c = conn(ZONE_D).await;
    // The binlog must be exactly the generated one: anything written to zone d since
    // (or an older generation) means generating again.
    let done: Option<(u64, u64)> = c
        .query_first("SELECT rows_total, binlog_bytes FROM bench.done")
        .await
        .unwrap_or(None);
    let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
    let bytes_now: u64 = logs.iter().map(|r| r.get::<u64, _>(1).unwrap()).sum();
    let rows = match done {
        Some((n, bytes)) if bytes == bytes_now => n,
        _ => {
            eprintln!("generating the benchmark binlog on zone d (once)…");
            // contiguous ids (the testenv servers interleave them for active-active)
            c.query_drop("SET SESSION auto_increment_increment = 1, auto_increment_offset = 1")
                .await
                .unwrap();
            c.query_drop("RESET MASTER").await.unwrap();
            c.query_drop("DROP DATABASE IF EXISTS bench").await.unwrap();
            c.query_drop("CREATE DATABASE bench").await.unwrap();
            c.query_drop("USE bench").await.unwrap();
            for t in TABLES {
                c.query_drop(*t).await.unwrap();
            }
            let mut n = 0;
            for i in 0..300 {
                c.query_drop(format!(
                    "INSERT INTO orders (customer, amount, status, note, qty, created) SELECT CONCAT('customer ', seq + {i} * {CHUNK}), \
                     seq * 1.25, ELT(1 + seq % 3, 'new', 'paid', 'shipped'), REPEAT('note ', 1 + seq % 8), seq % 100, NOW(6) FROM seq_1_to_{CHUNK}"
                ))
                .await
                .unwrap();
                c.query_drop(format!(
                    "INSERT INTO events (kind, payload, score, flags) SELECT ELT(1 + seq % 4, 'click', 'view', 'buy', 'leave'), \
                     JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', 'b'), 'i', {i}), seq / 7, seq % 256 FROM seq_1_to_{CHUNK}"
                ))
                .await
                .unwrap();
                n += 2 * CHUNK;
            }
            for i in 0..200 {
                c.query_drop(format!(
                    "INSERT INTO users (name, email, birthday, balance, active, tag) SELECT CONCAT('名前 ', seq, ' ', {i}), \
                     CONCAT('u', seq, '@example.com'), DATE('1970-01-01') + INTERVAL seq DAY, seq * 1000000007, seq % 2, LEFT(MD5(seq), 8) FROM seq_1_to_{CHUNK}"
                ))
                .await
                .unwrap();
                n += c.affected_rows();
            }
            for i in 0..300u64 {
                c.query_drop(format!(
                    "UPDATE orders SET status = 'paid', qty = qty + 1 WHERE id BETWEEN {} AND {}",
                    i * CHUNK + 1,
                    (i + 1) * CHUNK
                ))
                .await
                .unwrap();
                n += c.affected_rows(); // ids have gaps: fewer than CHUNK
            }
            c.query_drop("FLUSH BINARY LOGS").await.unwrap();
            // bench.done itself is not binlogged, so the binlog stays as generated
            c.query_drop("SET SESSION sql_log_bin = 0").await.unwrap();
            c.query_drop("CREATE TABLE bench.done (rows_total BIGINT, binlog_bytes BIGINT)")
                .await
                .unwrap();
            let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
            let bytes: u64 = logs.iter().map(|r| r.get::<u64, _>(1).unwrap()).sum();
            c.exec_drop("INSERT INTO bench.done VALUES (?, ?)", (n, bytes))
                .await
                .unwrap();
            c.query_drop("SET SESSION sql_log_bin = 1").await.unwrap();
            n
        }
    };
    let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
    let first: String = logs[0].get(0).unwrap();
    let bytes: u64 = logs.iter().map(|r| r.get::<u64, _>(1).unwrap()).sum();
    (first, rows, bytes)
}

struct Run {
    wall: f64,
    cpu: f64,
    /// Peak resident set of the process, MB (wait4's ru_maxrss).
    rss_mb: f64,
    out: String,
}

/// Runs a command to the end: wall time, the child's user+sys CPU (wait4), stdout.
/// The child is reaped by `wait4` (not `Child::wait`), to get its resource usage.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> Run {
    use std::io::Read;
    let t = Instant::now();
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut se = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut e = String::new();
        se.read_to_string(&mut e).ok();
        e
    });
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).ok();
    let (mut status, pid) = (0, child.id() as i32);
    // SAFETY: plain syscalls on our own child with a zeroed out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "command failed: {}\n{out}",
        errs.join().unwrap()
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        wall,
        cpu: secs(ru.ru_utime) + secs(ru.ru_stime),
        rss_mb: ru.ru_maxrss as f64 / 1024.0,
        out,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn python_venv() -> std::path::PathBuf {
    let venv = run_dir().join("pyvenv");
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import pymysqlreplication"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("installing python-mysql-replication into {}", venv.display());
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        if !st.success() {
            let _ = Command::new("apt-get").args(["install", "-y", "python3-venv"]).status();
            assert!(Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success());
        }
        let st = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "mysql-replication"])
            .status()
            .unwrap();
        assert!(st.success(), "pip install mysql-replication failed");
    }
    py
}

fn main() {
    testenv_up("d");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (first, rows, bytes) = rt.block_on(generate());
    let binlogs: Vec<String> = rt.block_on(async {
        let mut c = conn(ZONE_D).await;
        let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
        logs.iter().map(|r| r.get::<String, _>(0).unwrap()).collect()
    });
    eprintln!(
        "binlog: {rows} row events generated, {:.1} MB in {} files",
        bytes as f64 / 1e6,
        binlogs.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "d", ZONE_D, 7001, "beginning");
    let py = python_venv();

    let mut results: Vec<(&str, f64, f64, f64, f64)> = Vec::new();
    type MakeCommand<'a> = Box<dyn Fn() -> Command + 'a>;
    let tools: Vec<(&str, MakeCommand)> = vec![
        (
            "drc binlog drain",
            Box::new(|| {
                let mut c = Command::new(drc_bin());
                c.args(["binlog", "drain", "--config"]).arg(&cfg).env("DRC_LOG", "warn");
                c
            }),
        ),
        (
            "python-mysql-replication",
            Box::new(|| {
                let mut c = Command::new(&py);
                c.arg(repo().join("benches/peers/pyrepl_drain.py"))
                    .args(["127.0.0.1", "33064", "drc_test", "drc_test", "7002"])
                    .arg(&first)
                    .arg(std::env::var("PY_SECONDS").unwrap_or_else(|_| "60".into()));
                c
            }),
        ),
        (
            "mariadb-binlog -v",
            Box::new(|| {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!(
                    "mariadb-binlog --no-defaults --read-from-remote-server -h127.0.0.1 -P33064 -udrc_test -pdrc_test \
                     --base64-output=decode-rows -v {} > /dev/null",
                    binlogs.join(" ")
                ));
                c
            }),
        ),
    ];
    for (name, make) in &tools {
        let (mut walls, mut cpus, mut rss) = (Vec::new(), Vec::new(), 0f64);
        // python-mysql-replication needs minutes per run: one run unless asked
        let runs = if name.starts_with("python") {
            std::env::var("PY_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
        } else {
            RUNS
        };
        for run in 0..runs {
            let r = measure(&mut make());
            // (rows iterated, seconds): the whole binlog, or python's time-boxed part
            let (got, secs) = match serde_json::from_str::<serde_json::Value>(r.out.trim()) {
                Ok(v) if v["complete"] == false => (v["rows"].as_u64().unwrap_or(0), v["seconds"].as_f64().unwrap()),
                Ok(v) => {
                    let got = v["rows"].as_u64().unwrap_or(0);
                    assert!(got >= rows, "{name} saw {got} rows, expected at least {rows}");
                    (rows, r.wall)
                }
                Err(_) => (rows, r.wall),
            };
            rss = rss.max(r.rss_mb);
            eprintln!(
                "{name} run {run}: {got} rows in {secs:.2} s wall, {:.2} s CPU, peak RSS {:.0} MB{}",
                r.cpu,
                r.rss_mb,
                if got < rows { " (time-boxed)" } else { "" }
            );
            walls.push(secs / got as f64);
            cpus.push(r.cpu / got as f64);
        }
        // medians of seconds per row
        let (w, c) = (median(walls), median(cpus));
        let mb_per_row = bytes as f64 / 1e6 / rows as f64;
        results.push((name, 1.0 / w, mb_per_row / w, c * 1e6, rss));
    }
    println!(
        "\nparse drain of {rows} row events ({:.1} MB of binlog), median of {RUNS} runs (python-mysql-replication: PY_RUNS, default 1):",
        bytes as f64 / 1e6
    );
    println!(
        "  {:<26} {:>12} {:>9} {:>16} {:>12}",
        "tool", "rows/s", "MB/s", "CPU s / M rows", "peak RSS MB"
    );
    for (name, rps, mbps, cpu, rss) in &results {
        println!("  {name:<26} {rps:>12.0} {mbps:>9.1} {cpu:>16.2} {rss:>12.0}");
    }
    let drc = results[0].1;
    println!(
        "  ratio drc / python-mysql-replication (rows/s): {:.1}x (target >= 30x)",
        drc / results[1].1
    );
    println!(
        "  ratio drc / mariadb-binlog (rows/s):           {:.2}x (target >= 1x)",
        drc / results[2].1
    );
}
