//! ZooKeeper sync benchmark (issue 15): zone a's ensemble (21811) mirrored into zone
//! b's (21812) by zone b's daemon (direct), one-way root `/drc-bench/tree`.
//!
//! 1. **Initial copy of a 10,000-node tree** (100 directories x 100 leaves of 100
//!    bytes, written in zone a before the daemon starts): from the daemon's start
//!    until zone b holds every node: nodes/s.
//! 2. **Full read of the unchanged tree**: the daemon restarted; from its start until
//!    its first full read is done (`/status`: `reconciles`), nothing to write.
//! 3. **Burst**: every leaf changed in zone a as fast as ZooKeeper takes it (multis of
//!    100), then a marker node; until the marker is in zone b (events are applied in
//!    order): nodes/s.
//! 4. **Lag** under a steady load: `ZK_LAG_SECONDS` (10) of 200 writes/s in zone a,
//!    each stamped with its time; a watcher on zone b's ensemble takes (seen) -
//!    (stamped) for each: p50, p99, max.
//! 5. The daemon's peak RSS.
//!
//! There is no native peer to compare with: ZooKeeper's own replication (followers,
//! observers) spans one ensemble, which is what zones avoid (docs/ZOOKEEPER.md).
//! Run: `cargo bench --bench zk` (starts the testenv with `--zk`). Results:
//! docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use zookeeper_client as zk;

const ROOT: &str = "/drc-bench/tree";
const ADMIN: u16 = 9699;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

async fn client(port: u16) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .expect("testenv ZooKeeper (testenv/up.sh --zk)")
}

fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn delete_tree(c: &zk::Client, path: &str) {
    if let Ok(kids) = c.list_children(path).await {
        for k in kids {
            Box::pin(delete_tree(c, &format!("{path}/{k}"))).await;
        }
        let _ = c.delete(path, None).await;
    }
}

/// Persistent nodes under `root`.
async fn count(c: &zk::Client, root: &str) -> usize {
    let mut n = 0;
    let mut queue = std::collections::VecDeque::from([root.to_string()]);
    while let Some(p) = queue.pop_front() {
        if let Ok(kids) = c.list_children(&p).await {
            n += 1;
            queue.extend(kids.into_iter().map(|k| format!("{p}/{k}")));
        }
    }
    n
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("zone-b.toml");
    let text = config_head("b", "", ZONE_B, 6301, "now")
        + "[replication]\ndatabases = [\"zk_bench_unused\"]\n"
        + &format!("[admin]\nlisten = \"127.0.0.1:{ADMIN}\"\n")
        + "[zookeeper]\nconnect = \"127.0.0.1:21812\"\nsession_timeout_ms = 10000\nreconcile_interval_secs = 3600\nmax_deletes_per_pass = 20000\n"
        + &format!("[[zookeeper.roots]]\npath = \"{ROOT}\"\nmode = \"one_way\"\nhome = \"a\"\n")
        + &peer_section("a", Some(ZONE_A))
        + "[peers.zookeeper]\nconnect = \"127.0.0.1:21811\"\n";
    std::fs::write(&path, text).unwrap();
    path
}

fn reconciles() -> u64 {
    let Ok(s) = ureq::get(&format!("http://127.0.0.1:{ADMIN}/status")).call() else {
        return 0;
    };
    let v: serde_json::Value = s.into_json().unwrap_or_default();
    v["zookeeper"][0]["reconciles"].as_u64().unwrap_or(0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn main() {
    let lag_secs: u64 = std::env::var("ZK_LAG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let up = Command::new(repo().join("testenv/up.sh")).arg("--zk").status().unwrap();
    assert!(up.success(), "testenv/up.sh --zk");
    runtime().block_on(async {
        let a = client(21811).await;
        let b = client(21812).await;
        for c in [&a, &b] {
            delete_tree(c, "/drc-bench").await;
            delete_tree(c, "/drc/zk/meta/drc-bench").await;
        }
        let _ = a.create("/drc-bench", b"", &open()).await;
        a.create(ROOT, b"", &open()).await.unwrap();
        let value = vec![b'x'; 100];
        for d in 0..100 {
            let mut m = a.new_multi_writer();
            m.add_create(&format!("{ROOT}/d{d:02}"), b"", &open()).unwrap();
            for l in 0..100 {
                m.add_create(&format!("{ROOT}/d{d:02}/l{l:02}"), &value, &open()).unwrap();
            }
            m.commit().await.unwrap();
        }
        let total = count(&a, ROOT).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let log = dir.path().join("b.log");

        // 1. the initial copy
        let start = Instant::now();
        let mut daemon = spawn(&cfg, &log);
        loop {
            if count(&b, ROOT).await >= total {
                break;
            }
            assert!(daemon.exited().is_none(), "drc exited:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            assert!(start.elapsed() < Duration::from_secs(600), "no copy in 10 minutes");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let copy = start.elapsed().as_secs_f64();
        println!("initial copy: {total} nodes in {copy:.2} s = {:.0} nodes/s", total as f64 / copy);

        // 2. a full read of the unchanged tree
        drop(daemon);
        let start = Instant::now();
        let mut daemon = spawn(&cfg, &log);
        while reconciles() < 1 {
            assert!(daemon.exited().is_none(), "drc exited:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "full read of the unchanged {total}-node tree after a restart: {:.2} s (daemon start included)",
            start.elapsed().as_secs_f64()
        );

        // 3. a burst of changes
        let start = Instant::now();
        for d in 0..100 {
            let mut m = a.new_multi_writer();
            for l in 0..100 {
                m.add_set_data(&format!("{ROOT}/d{d:02}/l{l:02}"), format!("burst {d} {l}").as_bytes(), None)
                    .unwrap();
            }
            m.commit().await.unwrap();
        }
        a.create(&format!("{ROOT}/zz-end"), b"done", &open()).await.unwrap();
        let written = start.elapsed().as_secs_f64();
        loop {
            if b.check_stat(&format!("{ROOT}/zz-end")).await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let burst = start.elapsed().as_secs_f64();
        let (last, _) = b.get_data(&format!("{ROOT}/d99/l99")).await.unwrap();
        assert_eq!(last, b"burst 99 99", "the burst's last change before the marker");
        println!(
            "burst: 10,000 changes written in zone a in {written:.2} s, all in zone b after {burst:.2} s = {:.0} nodes/s",
            10_000.0 / burst
        );

        // 4. lag under a steady load
        let mut watcher = b.watch(ROOT, zk::AddWatchMode::PersistentRecursive).await.unwrap();
        let reader = client(21812).await;
        let seen = tokio::spawn(async move {
            let mut lags = Vec::new();
            loop {
                let e = tokio::time::timeout(Duration::from_secs(5), watcher.changed()).await;
                let Ok(e) = e else { break };
                if e.event_type != zk::EventType::NodeDataChanged {
                    continue;
                }
                if let Ok((d, _)) = reader.get_data(&e.path).await {
                    if let Some(ts) = std::str::from_utf8(&d).ok().and_then(|t| t.strip_prefix("t ")).and_then(|t| t.parse::<i64>().ok()) {
                        lags.push((now_us() - ts) as f64 / 1000.0);
                    }
                }
            }
            lags
        });
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let end = Instant::now() + Duration::from_secs(lag_secs);
        let mut i = 0u64;
        while Instant::now() < end {
            tick.tick().await;
            let path = format!("{ROOT}/d{:02}/l{:02}", (i / 100) % 100, i % 100);
            a.set_data(&path, format!("t {}", now_us()).as_bytes(), None).await.unwrap();
            i += 1;
        }
        let mut lags = seen.await.unwrap();
        lags.sort_by(|x, y| x.partial_cmp(y).unwrap());
        println!(
            "lag at {:.0} writes/s for {lag_secs} s ({} of {i} changes seen by a watcher in zone b): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            i as f64 / lag_secs as f64,
            lags.len(),
            pct(&lags, 0.50),
            pct(&lags, 0.99),
            lags.last().copied().unwrap_or(0.0)
        );
        println!("daemon peak RSS: {:.1} MB", peak_rss_mb(daemon.id()));
        drop(daemon);
        for c in [&a, &b] {
            delete_tree(c, "/drc-bench").await;
        }
    });
}
