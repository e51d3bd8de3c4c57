//! Crash safety of `drc binlog tail --output FILE` against a real MariaDB (testenv zone
//! c, private to this test because it restarts the server):
//! * 20 `kill -9`s of the tail at random moments and one MariaDB restart under it
//!   while transactions of 1 to 40 rows are written (fragments of 7 rows, so large
//!   transactions are cut mid-way): the output holds every transaction exactly once,
//!   in commit order, each ending with its commit line;
//! * a purged binlog stops the reader with a clear error instead of skipping ahead.
//!
//! Zone c is shared only by the `zone_c_` tests, which .config/nextest.toml runs one at
//! a time. Run: `testenv/up.sh && cargo nextest run --test tail_restart`.

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DB: &str = "drc_restart";

fn spawn_tail(cfg: &Path, out: &Path, reset: bool) -> Child {
    spawn_tail_logged(cfg, out, reset, None)
}

fn spawn_tail_logged(cfg: &Path, out: &Path, reset: bool, log: Option<&Path>) -> Child {
    let mut c = Command::new(drc_bin());
    c.args(["binlog", "tail", "--config"]).arg(cfg).arg("--output").arg(out);
    if reset {
        c.arg("--reset");
    }
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::inherit(),
    };
    c.env("DRC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn drc")
}

/// Inserts that survive a server restart: retried until they commit; a duplicate key
/// on retry means the earlier attempt committed.
async fn insert_tx(first: u64, rows: u64) {
    let values: Vec<String> = (first..first + rows).map(|s| format!("({s}, 'row {s}')")).collect();
    let sql = format!("INSERT INTO {DB}.t (seq, note) VALUES {}", values.join(","));
    loop {
        if let Ok(mut c) = mysql_async::Conn::new(opts(ZONE_C)).await {
            match c.query_drop(&sql).await {
                Ok(()) => return,
                Err(mysql_async::Error::Server(e)) if e.code == 1062 => return,
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// seq values of inserted rows in output order, and per-GTID checks.
fn parse_output(path: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seqs = Vec::new();
    let mut seen_gtids: HashMap<String, usize> = HashMap::new();
    let mut open: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {i} is not JSON ({e}): {line}"));
        if v["db"] != DB {
            continue;
        }
        let gtid = v["gtid"].as_str().unwrap().to_string();
        match &open {
            Some(g) => assert_eq!(g, &gtid, "line {i}: transaction {g} interleaved with {gtid}"),
            None => {
                let n = seen_gtids.entry(gtid.clone()).or_default();
                *n += 1;
                assert_eq!(*n, 1, "line {i}: transaction {gtid} appears twice");
                open = Some(gtid.clone());
            }
        }
        if v["commit"] == true {
            open = None;
        }
        seqs.push(v["after"]["seq"].as_u64().unwrap());
    }
    assert!(open.is_none(), "output ends inside transaction {open:?}");
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_c_kill_and_restart_never_skips_or_repeats() {
    testenv_up("c");
    let start = fresh_db_at(ZONE_C, DB, "t (seq BIGINT PRIMARY KEY, note VARCHAR(40))").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "c", ZONE_C, 3001, &format!("gtid:{start}"));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("heartbeat_secs = 1", "heartbeat_secs = 1\nmax_fragment_rows = 7");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.path().join("out.jsonl");

    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sizes: Vec<u64> = (0..400)
        .map(|_| {
            if rng.gen_ratio(1, 10) {
                rng.gen_range(8..40)
            } else {
                rng.gen_range(1..4)
            }
        })
        .collect();
    let total: u64 = sizes.iter().sum();

    let done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let load = {
        let (done, written) = (done.clone(), written.clone());
        tokio::spawn(async move {
            let mut next = 1;
            for (i, n) in sizes.into_iter().enumerate() {
                insert_tx(next, n).await;
                next += n;
                written.store(next - 1, Ordering::SeqCst);
                if i == 200 {
                    // restart MariaDB under the running tail
                    tokio::task::spawn_blocking(|| {
                        testenv_down("c");
                        testenv_up("c");
                    })
                    .await
                    .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut tail = spawn_tail(&cfg, &out, true);
    let mut kills = 0;
    while kills < 20 || !done.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
        tail.kill().unwrap();
        tail.wait().unwrap();
        kills += 1;
        tail = spawn_tail(&cfg, &out, false);
    }
    load.await.unwrap();
    assert!(done.load(Ordering::SeqCst));
    // One last kill, then a run that is watched until it has started (and so has
    // truncated the output to its checkpoint) before its catch-up is judged.
    tail.kill().unwrap();
    tail.wait().unwrap();
    kills += 1;
    let log = dir.path().join("final.log");
    let mut tail = spawn_tail_logged(&cfg, &out, false, Some(&log));
    let started = wait_until(Duration::from_secs(60), || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("binlog reader starting")
        }
    })
    .await;
    assert!(
        started,
        "final tail did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let caught_up = wait_until(Duration::from_secs(60), || {
        let out = out.clone();
        async move { parse_output(&out).last().copied() == Some(total) }
    })
    .await;
    // Stop cleanly (SIGTERM) and read the final output.
    unsafe_sigterm(&tail);
    tail.wait().unwrap();
    let seqs = parse_output(&out);
    {
        let store = drc::mysql::reader::checkpoint::CheckpointStore::open(&dir.path().join("state-c")).unwrap();
        let saved = store.load().unwrap().expect("a saved checkpoint");
        assert_eq!(
            saved.output_len,
            Some(std::fs::metadata(&out).unwrap().len()),
            "saved output length after a clean stop"
        );
    }
    assert!(
        caught_up,
        "tail did not catch up: last seq {:?} of {total}",
        seqs.last()
    );
    let want: Vec<u64> = (1..=total).collect();
    eprintln!(
        "{total} rows in {} transactions, {kills} kills of the tail, 1 MariaDB restart",
        400
    );
    assert_eq!(
        seqs.len(),
        want.len(),
        "rows in output (after {kills} kills and a server restart)"
    );
    assert_eq!(seqs, want, "every row exactly once, in commit order");

    // --- A purged binlog is a definite error, never a silent skip. ---
    let mut c = conn(ZONE_C).await;
    c.query_drop(format!("INSERT INTO {DB}.t VALUES ({}, 'lost')", total + 1))
        .await
        .unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let cur: (String, u64) = {
        let row: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    // MariaDB keeps a file a dump thread still reads; retry until the old ones are gone.
    let purged = wait_until(Duration::from_secs(20), || {
        let file = cur.0.clone();
        async move {
            let mut c = conn(ZONE_C).await;
            c.query_drop(format!("PURGE BINARY LOGS TO '{file}'")).await.unwrap();
            let logs: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
            logs.len() == 1
        }
    })
    .await;
    assert!(purged, "binlogs were not purged");
    let mut child = Command::new(drc_bin())
        .args(["binlog", "tail", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if status.is_none() {
        child.kill().unwrap();
    }
    let out2 = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out2.stderr);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "tail must stop on a purged binlog: {err}"
    );
    assert!(
        err.contains("no longer on the server") && err.contains("will not skip ahead"),
        "{err}"
    );
    assert_eq!(
        parse_output(&out).len() as u64,
        total,
        "nothing written after the purge error"
    );
}

fn unsafe_sigterm(child: &Child) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}
