//! Redis sync benchmark (issue 14): zone a's Redis (6381) carried to zone b's (6382)
//! by drc (zone b's daemon, direct) and, in the same run from the same origin, to a
//! native replica (`replicaof 127.0.0.1 6381`, a redis-server on 6383 started here).
//!
//! 1. **Throughput**: `redis-benchmark` writes N commands per test (SET, INCR, LPUSH,
//!    HSET, SADD, ZADD; 50 clients, pipelined 16 deep, 100,000 random keys) into zone
//!    a; from the start of the load until each target's applied offset reaches the
//!    origin's offset at the end of the load: commands/s synced, drc's ratio to
//!    native.
//! 2. **Lag**: a probe writer stamps `SET bench:probe:<i> <µs>` every 2 ms for
//!    `REDIS_LAG_SECONDS` (10) under a steady background load (`redis-benchmark`, 4
//!    clients, not pipelined); one poller per target takes (seen there) − (stamped in
//!    a) for each probe: p50, p99, max.
//! 3. The daemon's peak RSS.
//!
//! Run: `cargo bench --bench redis` (starts the testenv with `--redis`; needs
//! `redis-benchmark`, from redis-tools). `REDIS_BENCH_N` (default 200,000) sets N,
//! `REDIS_BG_CLIENTS` (default 4) the background load's clients.
//! Results: docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

use ::redis::AsyncCommands;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const NATIVE_PORT: u16 = 6383;
const TESTS: &str = "set,incr,lpush,hset,sadd,zadd";

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The native replica, killed when dropped.
struct Native(Child);
impl Drop for Native {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

async fn con(port: u16) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn info_offset(c: &mut ::redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let info: String = ::redis::cmd("INFO").arg("replication").query_async(c).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The origin offset drc has applied in zone b (`drc:pos:a`).
async fn drc_offset(b: &mut ::redis::aio::MultiplexedConnection) -> u64 {
    let v: Option<String> = b.get("drc:pos:a").await.unwrap();
    v.and_then(|s| s.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("zone-b.toml");
    let text = config_head("b", "", ZONE_B, 6201, "now")
        + "[replication]\ndatabases = [\"redis_bench_unused\"]\n"
        + "[redis]\nhost = \"127.0.0.1\"\nport = 6382\ndatabases = [0]\nkeys = [\"*\"]\n"
        // REDIS_CONFLICTS=later_write: the testenv's rule (every batch judged against
        // zone b's own stream; redis-benchmark's counter:__rand_int__ keys as counters)
        + &format!(
            "conflicts = \"{}\"\ncounters = [\"counter:*\"]\n",
            std::env::var("REDIS_CONFLICTS").unwrap_or_else(|_| "apply".into())
        )
        + &peer_section("a", Some(ZONE_A))
        + "[peers.redis]\nhost = \"127.0.0.1\"\nport = 6381\n";
    std::fs::write(&path, text).unwrap();
    path
}

fn redis_benchmark(args: &[&str]) -> Child {
    Command::new("redis-benchmark")
        .args(["-p", "6381"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-benchmark (redis-tools)")
}

/// Polls `port` for the probes 0.. until `total` (known once the writer is done)
/// have been seen; returns each probe's lag, ms.
async fn poller(port: u16, total: tokio::sync::watch::Receiver<Option<u64>>) -> Vec<f64> {
    let mut c = con(port).await;
    let mut lags = Vec::new();
    let mut i = 0u64;
    loop {
        if total.borrow().is_some_and(|t| i >= t) {
            return lags;
        }
        let v: Option<i64> = c.get(format!("bench:probe:{i}")).await.unwrap();
        match v {
            Some(stamp) => {
                lags.push((now_us() - stamp) as f64 / 1000.0);
                i += 1;
            }
            None => tokio::time::sleep(Duration::from_micros(200)).await,
        }
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn main() {
    let n: u64 = std::env::var("REDIS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let lag_secs: u64 = std::env::var("REDIS_LAG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let bg_clients: u64 = std::env::var("REDIS_BG_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let up = Command::new(repo().join("testenv/up.sh"))
        .arg("--redis")
        .status()
        .unwrap();
    assert!(up.success(), "testenv/up.sh --redis");
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut a = con(6381).await;
        let mut b = con(6382).await;
        for c in [&mut a, &mut b] {
            let _: () = ::redis::cmd("FLUSHALL").query_async(c).await.unwrap();
        }
        let native = Native(
            Command::new("redis-server")
                .args([
                    "--port",
                    &NATIVE_PORT.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--replicaof", "127.0.0.1", "6381", "--dir"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server"),
        );
        let cfg = config(dir.path());
        let log = dir.path().join("b.log");
        let mut daemon = spawn(&cfg, &log);
        let mut nat = loop {
            if let Ok(c) = ::redis::Client::open(format!("redis://127.0.0.1:{NATIVE_PORT}/"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // both targets synced (empty) and streaming
        let ready = Instant::now();
        loop {
            let link: String = ::redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut nat)
                .await
                .unwrap();
            if link.contains("master_link_status:up") && drc_offset(&mut b).await > 0 {
                break;
            }
            assert!(
                daemon.exited().is_none(),
                "drc exited:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(
                ready.elapsed() < Duration::from_secs(60),
                "targets not ready:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // 1. throughput: a burst, then both targets catch up
        let tests = TESTS.split(',').count() as u64;
        let start = Instant::now();
        let status = redis_benchmark(&[
            "-n",
            &n.to_string(),
            "-r",
            "100000",
            "-c",
            "50",
            "-P",
            "16",
            "-t",
            TESTS,
            "-q",
        ])
        .wait()
        .unwrap();
        assert!(status.success(), "redis-benchmark");
        let load_secs = start.elapsed().as_secs_f64();
        let end = info_offset(&mut a, "master_repl_offset:").await;
        let (mut t_drc, mut t_nat) = (None, None);
        while t_drc.is_none() || t_nat.is_none() {
            if t_nat.is_none() && info_offset(&mut nat, "slave_repl_offset:").await >= end {
                t_nat = Some(start.elapsed().as_secs_f64());
            }
            if t_drc.is_none() && drc_offset(&mut b).await >= end {
                t_drc = Some(start.elapsed().as_secs_f64());
            }
            assert!(
                daemon.exited().is_none(),
                "drc exited:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            assert!(start.elapsed() < Duration::from_secs(600), "no catch-up in 10 min");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (t_drc, t_nat) = (t_drc.unwrap(), t_nat.unwrap());
        let commands = (n * tests) as f64;

        // 2. lag under a steady background load
        let mut background = redis_benchmark(&[
            "-n",
            "100000000",
            "-r",
            "100000",
            "-c",
            &bg_clients.to_string(),
            "-t",
            "set,incr",
        ]);
        let (tx, rx) = tokio::sync::watch::channel(None);
        let p_drc = tokio::spawn(poller(6382, rx.clone()));
        let p_nat = tokio::spawn(poller(NATIVE_PORT, rx));
        let mut w = con(6381).await;
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        let t0 = Instant::now();
        let mut probes = 0u64;
        while t0.elapsed() < Duration::from_secs(lag_secs) {
            tick.tick().await;
            let _: () = w.set(format!("bench:probe:{probes}"), now_us()).await.unwrap();
            probes += 1;
        }
        tx.send(Some(probes)).unwrap();
        let mut lags = Vec::new();
        for p in [p_drc, p_nat] {
            let mut l = tokio::time::timeout(Duration::from_secs(300), p)
                .await
                .expect("probes arrive")
                .unwrap();
            l.sort_by(|x, y| x.partial_cmp(y).unwrap());
            lags.push(l);
        }
        background.kill().ok();
        background.wait().ok();
        let rss = peak_rss_mb(daemon.id());
        drop(daemon);
        drop(native);

        println!(
            "\nRedis sync a -> b, same origin, same run (conflicts = {}):",
            std::env::var("REDIS_CONFLICTS").unwrap_or_else(|_| "apply".into())
        );
        println!("  burst: {n} x {tests} commands (redis-benchmark -c 50 -P 16), loaded in {load_secs:.2} s");
        println!("  {:<22} {:>12} {:>12}", "target", "caught up s", "commands/s");
        println!("  {:<22} {:>12.2} {:>12.0}", "drc (direct)", t_drc, commands / t_drc);
        println!(
            "  {:<22} {:>12.2} {:>12.0}",
            "native replicaof",
            t_nat,
            commands / t_nat
        );
        println!("  drc / native: {:.2}x", t_nat / t_drc);
        println!(
            "  lag, {probes} probes every 2 ms over {lag_secs} s under redis-benchmark -c {bg_clients} (set, incr):"
        );
        for (name, l) in [("drc (direct)", &lags[0]), ("native replicaof", &lags[1])] {
            println!(
                "  {name:<22} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                pct(l, 0.5),
                pct(l, 0.99),
                l.last().copied().unwrap_or(0.0)
            );
        }
        println!("  drc daemon peak RSS: {rss:.0} MB");
    });
}
