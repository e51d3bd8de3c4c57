//! Redis sync through the daemon (`drc run` with `[redis]`), against the testenv's two
//! real redis-servers (`testenv/up.sh --redis`: zone a 6381, zone b 6382): both zones
//! write concurrently — every type, TTLs, MULTI/EXEC, scripts, renames, deletes — on
//! keys of their own and on shared counters; the synced keys end identical (values
//! and absolute expiry), counters hold every increment of both zones exactly once,
//! keys outside the scope stay where they were written. Then the same under 20
//! `kill -9`s of the daemons and a restart of a Redis server; then an outage longer
//! than the origin's backlog (a full resync in which deletes made during the gap stay
//! deleted). The counter, mixed, kill and backlog cases run again over Kafka
//! (`transport = "kafka"`: each zone's Redis published to `<prefix>redis.<zone>` on
//! the testenv broker).
//!
//! Run: `testenv/up.sh --redis && cargo nextest run --test redis_sync`.

mod common;

use common::pair::*;
use common::{get, sample, wait_until};
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::time::Duration;

/// The synced database, and one that is not.
const DB: u64 = 5;
const OTHER_DB: u64 = 6;
const KEYS: &str = r#"["sync:*", "counter:*"]"#;
const REDIS: [u16; 2] = [6381, 6382];

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

/// A connection to zone `zone`'s Redis, database `db`, without a response timeout
/// (the crate's 500 ms default fails reads of a million-member set on a busy machine).
async fn con(zone: usize, db: u64) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", REDIS[zone])).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

/// Empties the test's databases and forgets drc's positions (a fresh start: full sync).
async fn fresh() {
    for z in 0..2 {
        for db in [DB, OTHER_DB] {
            let mut c = con(z, db).await;
            let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
        }
        let mut c = con(z, 0).await;
        let _: () = c.del(&["drc:pos:a", "drc:pos:b"]).await.unwrap();
    }
}

/// Starts both daemons with Redis sync and waits until both Redis directions
/// streamed (after their full sync).
async fn pair(name: &str, server_id: u32, admin_port: u16) -> (Pair, Vec<String>) {
    pair_with(name, server_id, admin_port, "").await
}

/// [`pair`] with `tables` after `[redis]` (e.g. `[redis.homes]`).
async fn pair_with(name: &str, server_id: u32, admin_port: u16, tables: &str) -> (Pair, Vec<String>) {
    pair_over(Transport::Direct, name, server_id, admin_port, tables).await
}

/// [`pair_with`] over `transport`.
async fn pair_over(
    transport: Transport,
    name: &str,
    server_id: u32,
    admin_port: u16,
    tables: &str,
) -> (Pair, Vec<String>) {
    fresh().await;
    let mut p = Pair::with(name, &[TABLE], server_id, transport).await;
    // the testenv's rules (unless `tables` has its own): counters sum, other keys
    // written in both zones at once end with the later write
    let rules = match tables.contains("conflicts =") {
        true => tables.to_string(),
        false => format!("counters = [\"counter:*\"]\nconflicts = \"later_write\"\n{tables}"),
    };
    p.with_redis(&format!("[{DB}]"), KEYS, &rules);
    let admin = p.with_admin(admin_port, "t");
    p.start_both().await;
    wait_full_syncs(&p).await;
    (p, admin)
}

/// Waits until both zones' Redis directions applied their full sync.
async fn wait_full_syncs(p: &Pair) {
    for z in 0..2 {
        assert!(
            wait_until(Duration::from_secs(60), || {
                let log = p.log(z);
                // (applied: over Kafka the broker may hold it back a while)
                async move { log.contains("Redis full sync applied") }
            })
            .await,
            "zone {z}'s Redis direction did not apply its full sync:\n{}",
            p.log(z)
        );
    }
}

/// Every key of `db` in zone `zone`: type, value (text) and absolute expiry (ms, -1 none).
async fn dump(zone: usize, db: u64) -> BTreeMap<String, (String, String, i64)> {
    let mut c = con(zone, db).await;
    let keys: Vec<String> = c.keys("*").await.unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query_async(&mut c).await.unwrap();
        // (a key can change or go between TYPE and the read: read it again next round)
        let v = match t.as_str() {
            "string" => match c.get::<_, Option<String>>(&k).await {
                Ok(Some(v)) => v,
                _ => continue,
            },
            "hash" => match c.hgetall::<_, BTreeMap<String, String>>(&k).await {
                Ok(m) if !m.is_empty() => format!("{m:?}"),
                _ => continue,
            },
            "list" => match c.lrange::<_, Vec<String>>(&k, 0, -1).await {
                Ok(l) if !l.is_empty() => format!("{l:?}"),
                _ => continue,
            },
            "set" => match c.smembers::<_, Vec<String>>(&k).await {
                Ok(mut m) if !m.is_empty() => {
                    m.sort();
                    format!("{m:?}")
                }
                _ => continue,
            },
            "zset" => match c.zrange_withscores::<_, Vec<(String, f64)>>(&k, 0, -1).await {
                Ok(z) if !z.is_empty() => format!("{z:?}"),
                _ => continue,
            },
            "none" => continue, // expired between KEYS and TYPE
            other => panic!("unexpected type {other} of {k}"),
        };
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query_async(&mut c).await.unwrap();
        out.insert(k, (t, v, at));
    }
    out
}

/// Waits until the synced keys of both zones agree (values; expiries within 1 s);
/// panics with the differences after `secs`.
async fn assert_converged(p: &Pair, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let synced = |d: BTreeMap<String, (String, String, i64)>| {
            d.into_iter()
                .filter(|(k, _)| k.starts_with("sync:") || k.starts_with("counter:"))
                .collect::<BTreeMap<_, _>>()
        };
        let (a, b) = (synced(dump(0, DB).await), synced(dump(1, DB).await));
        let differ: Vec<String> = a
            .keys()
            .chain(b.keys())
            .filter(|k| match (a.get(*k), b.get(*k)) {
                (Some(x), Some(y)) => x.0 != y.0 || x.1 != y.1 || (x.2 - y.2).abs() > 1000,
                _ => true,
            })
            .map(|k| format!("{k}: a {:?} / b {:?}", a.get(k), b.get(k)))
            .collect();
        if differ.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{} synced keys differ, e.g.:\n{}\n{}",
                differ.len(),
                differ[..differ.len().min(20)].join("\n"),
                p.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What one zone's load added to the shared counters.
#[derive(Default, Debug)]
struct Sums {
    shared: i64,
    hash: i64,
}

/// `n` mixed commands in zone `zone` (seeded): strings, hashes, lists, sets, sorted
/// sets, TTLs, deletes, renames, MULTI/EXEC and scripts on the zone's own `sync:<z>:`
/// keys; increments of the shared `counter:*` keys; writes of unsynced keys
/// (`local:*`, database 6).
async fn load(zone: usize, n: usize, seed: u64) -> Sums {
    let z = ["a", "b"][zone];
    let mut c = con(zone, DB).await;
    let mut other = con(zone, OTHER_DB).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sums = Sums::default();
    for i in 0..n {
        let k = rng.gen_range(0..100);
        let r: redis::RedisResult<()> = match rng.gen_range(0..22) {
            0 => c.set(format!("sync:{z}:str:{k}"), format!("v{i}")).await,
            1 => c.append(format!("sync:{z}:str:{k}"), "+").await,
            2 => c.set_ex(format!("sync:{z}:str:{k}"), format!("ttl{i}"), 3600).await,
            3 => {
                sums.shared += 1;
                c.incr("counter:shared", 1).await
            }
            4 => {
                sums.hash += 1;
                c.hincr("counter:hash", format!("f{}", k % 5), 1).await
            }
            5 => c.hset(format!("sync:{z}:h:{}", k % 20), format!("f{}", i % 7), i).await,
            6 => c.hdel(format!("sync:{z}:h:{}", k % 20), format!("f{}", i % 7)).await,
            7 => c.rpush(format!("sync:{z}:l:{}", k % 20), i).await,
            8 => c.lpop(format!("sync:{z}:l:{}", k % 20), None).await,
            9 => c.sadd(format!("sync:{z}:s:{}", k % 20), format!("m{}", i % 50)).await,
            10 => c.srem(format!("sync:{z}:s:{}", k % 20), format!("m{}", i % 50)).await,
            11 => {
                c.zadd(format!("sync:{z}:z:{}", k % 20), format!("m{}", i % 30), i)
                    .await
            }
            12 => c.zincr("counter:zset", format!("m{}", k % 5), 1).await,
            13 => c.del(format!("sync:{z}:str:{k}")).await,
            14 => c.expire(format!("sync:{z}:h:{}", k % 20), 3600).await,
            15 => {
                sums.shared += 1;
                redis::pipe()
                    .atomic()
                    .set(format!("sync:{z}:str:{k}"), format!("tx{i}"))
                    .incr("counter:shared", 1)
                    .sadd("sync:shared:set", format!("{z}{}", i % 40))
                    .query_async(&mut c)
                    .await
            }
            16 => {
                sums.shared += 2;
                redis::cmd("EVAL")
                    .arg("redis.call('SET', KEYS[1], ARGV[1]); redis.call('INCRBY', KEYS[2], 2); return 1")
                    .arg(2)
                    .arg(format!("sync:{z}:str:{k}"))
                    .arg("counter:shared")
                    .arg(format!("script{i}"))
                    .query_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            }
            17 => c.set(format!("local:{z}:{k}"), i).await,
            // keys both zones overwrite: the later write stands
            20 => match k % 3 {
                0 => c.del(format!("sync:shared:str:{}", k % 10)).await,
                1 => {
                    c.set_ex(format!("sync:shared:str:{}", k % 10), format!("{z}{i}"), 3600)
                        .await
                }
                _ => c.set(format!("sync:shared:str:{}", k % 10), format!("{z}{i}")).await,
            },
            21 => c.set(format!("sync:shared:str:{}", k % 10), format!("{z}{i}")).await,
            18 => other.set(format!("sync:{z}:other:{k}"), i).await,
            _ => {
                // RENAME of a key that may not exist: the server refuses, nothing replicates
                match c
                    .rename::<_, _, ()>(format!("sync:{z}:str:{k}"), format!("sync:{z}:str:{}", k + 100))
                    .await
                {
                    Err(e) if e.to_string().contains("no such key") => Ok(()),
                    r => r,
                }
            }
        };
        r.unwrap_or_else(|e| panic!("zone {z} command {i}: {e}"));
    }
    sums
}

async fn counter(zone: usize, key: &str) -> i64 {
    let v: Option<i64> = con(zone, DB).await.get(key).await.unwrap();
    v.unwrap_or(0)
}

async fn hash_total(zone: usize) -> i64 {
    let h: BTreeMap<String, i64> = con(zone, DB).await.hgetall("counter:hash").await.unwrap();
    h.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_commands_in_both_zones_converge_counters_sum_unsynced_stay() {
    mixed(Transport::Direct, "redis_mixed", 6101, 9661).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_mixed_commands_in_both_zones_converge_counters_sum_unsynced_stay() {
    mixed(Transport::Kafka, "redis_k_mixed", 6181, 9675).await
}

async fn mixed(transport: Transport, name: &str, server_id: u32, admin_port: u16) {
    // a function library in zone a's snapshot (deployed per zone, not synced)
    let _: () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg("#!lua name=drctest\nredis.register_function('drcf', function() return 1 end)")
        .query_async(&mut con(0, 0).await)
        .await
        .map(|_: String| ())
        .unwrap();
    let (mut p, admin) = pair_over(transport, name, server_id, admin_port, "").await;
    let (a, b) = tokio::join!(load(0, 10_000, 1), load(1, 10_000, 2));
    // an unsynced key that expires inside a synced transaction: Redis deletes it in
    // that transaction; the increment still syncs
    let mut ca = con(0, DB).await;
    let _: () = redis::cmd("SET")
        .arg("local:a:exp")
        .arg(1)
        .arg("PX")
        .arg(1)
        .query_async(&mut ca)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _: (Option<String>, i64) = redis::pipe()
        .atomic()
        .get("local:a:exp")
        .incr("counter:shared", 1)
        .query_async(&mut ca)
        .await
        .unwrap();
    assert_converged(&p, 60).await;
    let shared = a.shared + b.shared + 1;
    for z in 0..2 {
        assert_eq!(
            counter(z, "counter:shared").await,
            shared,
            "zone {z}: every increment once"
        );
        assert_eq!(hash_total(z).await, a.hash + b.hash, "zone {z}: HINCRBY");
    }
    // unsynced keys stay where they were written
    for (z, other) in [(0, "b"), (1, "a")] {
        let d = dump(z, DB).await;
        assert!(
            !d.keys().any(|k| k.starts_with(&format!("local:{other}:"))),
            "zone {z} got the other zone's local:* keys"
        );
        assert!(
            !dump(z, OTHER_DB)
                .await
                .keys()
                .any(|k| k.starts_with(&format!("sync:{other}:"))),
            "zone {z} got keys of the other zone's unsynced database"
        );
    }
    // no loop: a second later the counters have not moved
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(counter(0, "counter:shared").await, shared, "a change came back");
    // the daemons report the directions
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
    let status: serde_json::Value = serde_json::from_str(&get(&format!("{}/status", admin[1]))).unwrap();
    let metrics = get(&format!("{}/metrics", admin[1]));
    assert!(
        sample(&metrics, "drc_redis_transactions_total", &["from_zone=\"a\""]).unwrap_or(0.0) > 1000.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "drc_redis_full_syncs_total", &["reason=\"first_start\""]),
        Some(1.0),
        "{metrics}"
    );
    let r = &status["redis"][0];
    assert_eq!(r["from_zone"], "a", "{status}");
    let text = std::process::Command::new(common::drc_bin())
        .args(["status", "--config"])
        .arg(&p.cfg[1])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("redis a -> b: applying"), "drc status:\n{text}");
    assert!(r["transactions"].as_u64().unwrap() > 1000, "{status}");
    assert!(r["lag_seconds"].as_f64().is_some(), "{status}");
}

/// 20 `kill -9`s of the daemons under load in both zones, and zone b's Redis
/// restarted in the middle (with its data: the daemon of zone a continues its stream):
/// converged, every counter increment applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_and_a_redis_restart_under_load_lose_and_repeat_nothing() {
    kills(Transport::Direct, "redis_kills", 6111, 9663).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_twenty_kills_and_a_redis_restart_under_load_lose_and_repeat_nothing() {
    kills(Transport::Kafka, "redis_k_kills", 6191, 9677).await
}

async fn kills(transport: Transport, name: &str, server_id: u32, admin_port: u16) {
    let (mut p, _) = pair_over(transport, name, server_id, admin_port, "").await;
    let a = tokio::spawn(load(0, 10_000, 3));
    let b1 = tokio::spawn(load(1, 5_000, 4));
    p.kill_randomly(10, 14).await;
    let b1 = b1.await.unwrap();
    // zone b's Redis restarts (its own load waits for it; zone a's goes on); the kills
    // go on once drc continued its stream on the restarted server: a restarted server
    // continues its stream only from its last offset (its backlog starts there), so a
    // capture killed before it made that offset durable syncs in full instead (the
    // backlog case below)
    common::redis::restart_redis(6382);
    let restarted_at = common::redis::replication_offsets(6382).0.unwrap_or(0);
    let b2 = tokio::spawn(load(1, 5_000, 5));
    assert!(
        common::redis::wait_replica_past(6382, restarted_at + 1, 30),
        "drc did not continue zone b's stream after the restart\n{}",
        p.logs()
    );
    p.kill_randomly(10, 15).await;
    let (a, b2) = (a.await.unwrap(), b2.await.unwrap());
    assert_converged(&p, 90).await;
    let shared = a.shared + b1.shared + b2.shared;
    for z in 0..2 {
        assert_eq!(
            counter(z, "counter:shared").await,
            shared,
            "zone {z}: every increment exactly once\n{}",
            p.logs()
        );
        assert_eq!(hash_total(z).await, a.hash + b1.hash + b2.hash, "zone {z}: HINCRBY");
    }
    for z in 0..2 {
        assert!(p.running(z), "{}", p.logs());
    }
}

/// Sets zone a's `repl-backlog-size` back to the testenv's 16 MB, even on a panic.
struct Backlog;
impl Drop for Backlog {
    fn drop(&mut self) {
        common::redis::redis_cli("6381", 0, "CONFIG SET repl-backlog-size 16mb\n");
    }
}

/// Zone b's daemon is down while zone a's Redis writes more than its backlog holds:
/// zone b's direction syncs in full (reported, counted). Keys zone a deleted in the
/// gap are deleted in zone b too (not resurrected); zone b's own writes of the gap
/// stay and reach zone a (even to a key zone a deleted: the later write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_backlog_syncs_in_full_and_deletes_stay_deleted() {
    backlog(Transport::Direct, "redis_backlog", 6121, 9665).await
}

/// Over Kafka the capture of zone a's Redis is zone a's own daemon (its publisher):
/// that one is down for the gap, and its full sync reaches zone b through the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_an_outage_longer_than_the_backlog_syncs_in_full_and_deletes_stay_deleted() {
    backlog(Transport::Kafka, "redis_k_backlog", 6201, 9679).await
}

async fn backlog(transport: Transport, name: &str, server_id: u32, admin_port: u16) {
    let (mut p, admin) = pair_over(transport, name, server_id, admin_port, "").await;
    // the daemon whose capture of zone a's Redis is down in the gap
    let down = if transport == Transport::Kafka { 0 } else { 1 };
    let mut a = con(0, DB).await;
    let mut b = con(1, DB).await;
    for i in 0..30 {
        let _: () = a.set(format!("sync:a:k{i}"), i).await.unwrap();
        let _: () = b.set(format!("sync:b:k{i}"), i).await.unwrap();
    }
    assert_converged(&p, 30).await;
    p.kill9(down);
    let _backlog = Backlog;
    common::redis::redis_cli("6381", 0, "CONFIG SET repl-backlog-size 16384\n");
    // the gap: zone a deletes some of each zone's keys and writes far more than 16 KB
    for i in 0..10 {
        let _: () = a.del(format!("sync:a:k{i}")).await.unwrap();
        let _: () = a.del(format!("sync:b:k{i}")).await.unwrap();
    }
    let big = "x".repeat(1024);
    for i in 0..200 {
        let _: () = a
            .set(format!("sync:a:big:{}", i % 20), format!("{i}{big}"))
            .await
            .unwrap();
    }
    // zone b writes meanwhile: new keys, and key 7 that zone a deleted (b's is later:
    // zone b's daemon is down, so its writes take the time of the heartbeat zone a's
    // daemon writes for it, from 3 heartbeats after the kill on)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..5 {
        let _: () = b.set(format!("sync:b:new:{i}"), i).await.unwrap();
    }
    let _: () = b.set("sync:b:k7", "b wrote after a deleted").await.unwrap();
    p.start(down);
    assert_converged(&p, 60).await;
    for z in 0..2 {
        let d = dump(z, DB).await;
        for i in 0..10 {
            assert!(
                !d.contains_key(&format!("sync:a:k{i}")),
                "zone {z}: sync:a:k{i} resurrected"
            );
            if i != 7 {
                assert!(
                    !d.contains_key(&format!("sync:b:k{i}")),
                    "zone {z}: sync:b:k{i} resurrected"
                );
            }
        }
        assert_eq!(
            d.get("sync:b:k7").map(|v| v.1.as_str()),
            Some("b wrote after a deleted"),
            "zone {z}"
        );
        assert!(
            d.contains_key("sync:b:new:4") && d.contains_key("sync:a:big:19"),
            "zone {z}"
        );
    }
    let metrics = get(&format!("{}/metrics", admin[down]));
    assert_eq!(
        sample(&metrics, "drc_redis_full_syncs_total", &["reason=\"backlog_lost\""]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        p.log(down).contains("no longer holds drc's position"),
        "{}",
        p.log(down)
    );
    assert!(p.running(0) && p.running(1), "{}", p.logs());
}

/// `drc redis verify` with the daemons running.
fn verify(p: &Pair, zone: usize, repair: bool) -> (i32, String) {
    let mut c = std::process::Command::new(common::drc_bin());
    c.args(["redis", "verify", "--config"])
        .arg(&p.cfg[zone])
        .args(["--settle-ms", "500"]);
    if repair {
        c.arg("--repair");
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A key with a home zone (`[redis.homes] "sync:route:*" = "a"`) takes zone a's writes
/// only: zone b's write of it is not applied in zone a (a conflict, counted). `drc
/// redis verify` finds that difference and one of a key without a home (both zones
/// wrote it while the daemons were down: each applied the other's); `--repair` gives
/// zone b the home's version of the homed key and leaves the other for the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_homed_key_takes_its_homes_writes_and_verify_finds_and_repairs() {
    // (every write applied as it comes: the unhomed key that both zones write stays
    // different, for verify to report)
    let (mut p, admin) = pair_with(
        "redis_homes",
        6131,
        9667,
        "conflicts = \"apply\"\n[redis.homes]\n\"sync:route:*\" = \"a\"\n",
    )
    .await;
    let mut a = con(0, DB).await;
    let mut b = con(1, DB).await;
    let _: () = a.set("sync:route:1", "from a").await.unwrap();
    let _: () = a.set("sync:plain", "1").await.unwrap();
    assert_converged(&p, 30).await;
    assert_eq!(verify(&p, 1, false).0, 0, "{}", verify(&p, 1, false).1);
    // zone b writes the key homed in a: not applied in a, counted there (once: the
    // position moves past it, so a restart does not count it again)
    let _: () = b.set("sync:route:1", "from b").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            sample(
                &get(&format!("{}/metrics", admin[0])),
                "drc_redis_conflicts_total",
                &["rule=\"home\""],
            )
            .unwrap_or(0.0)
                >= 1.0
        })
        .await,
        "the conflict is counted in zone a"
    );
    // both zones write a key without a home while the daemons are down
    p.kill9(0);
    p.kill9(1);
    let _: () = a.set("sync:clash", "A").await.unwrap();
    let _: () = b.set("sync:clash", "B").await.unwrap();
    p.start(0);
    p.start(1);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let (x, y): (Option<String>, Option<String>) = (
                con(0, DB).await.get("sync:clash").await.unwrap(),
                con(1, DB).await.get("sync:clash").await.unwrap(),
            );
            x.as_deref() == Some("B") && y.as_deref() == Some("A")
        })
        .await,
        "each zone applied the other's write:\n{}",
        p.logs()
    );
    let route_a: String = a.get("sync:route:1").await.unwrap();
    assert_eq!(route_a, "from a", "zone b's write of a key homed in a was applied in a");
    let (code, text) = verify(&p, 1, false);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("2 differ"), "{text}");
    assert!(text.contains("sync:route:1") && text.contains("(home a)"), "{text}");
    assert!(text.contains("sync:clash") && text.contains("no home zone"), "{text}");
    let (code, text) = verify(&p, 1, true);
    assert_eq!(code, 3, "the key without a home remains:\n{text}");
    assert!(text.contains("1 repaired"), "{text}");
    let route_b: String = b.get("sync:route:1").await.unwrap();
    assert_eq!(route_b, "from a", "repaired to the home's version");
    // the operator settles the other key in one zone; then the zones agree
    let _: () = a.set("sync:clash", "settled").await.unwrap();
    assert_converged(&p, 30).await;
    let (code, text) = verify(&p, 0, false);
    assert_eq!(code, 0, "{text}");
    assert!(p.running(0) && p.running(1), "{}", p.logs());
}

/// `drc check` checks the Redis servers too: a user that may not PSYNC is a problem
/// (exit 3, with the ACL fix), eviction of any key a warning.
#[test]
fn drc_check_names_a_user_without_psync_and_eviction_of_synced_keys() {
    use common::redis::redis_cli;
    redis_cli("6382", 0, "ACL SETUSER drc_nopsync on >pw ~* +@all -psync\nCONFIG SET maxmemory 1gb\nCONFIG SET maxmemory-policy allkeys-lru\n");
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            common::redis::redis_cli(
                "6382",
                0,
                "ACL DELUSER drc_nopsync\nCONFIG SET maxmemory 0\nCONFIG SET maxmemory-policy noeviction\n",
            );
        }
    }
    let _restore = Restore;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(common::repo().join("testenv/zone-a.toml"))
        .unwrap()
        .replace(".run/secrets", &common::run_dir().join("secrets").display().to_string())
        .replace(".run/tls", &common::run_dir().join("tls").display().to_string())
        .replace(".run/drc-a", &dir.path().join("drc-a").display().to_string())
        .replace(
            "[peers.redis]\nhost = \"127.0.0.1\"\nport = 6382\n",
            "[peers.redis]\nhost = \"127.0.0.1\"\nport = 6382\nuser = \"drc_nopsync\"\npassword = \"pw\"\n",
        );
    assert!(
        text.contains("drc_nopsync"),
        "the testenv config changed shape:\n{text}"
    );
    let cfg = dir.path().join("zone-a.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(common::drc_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("PROBLEM")
            && l.contains("user drc_nopsync may not PSYNC")
            && l.contains("ACL SETUSER drc_nopsync +psync")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("WARN") && l.contains("redis_eviction") && l.contains("allkeys-lru")),
        "{text}"
    );
}

/// With `[redis] verify_interval_secs`, the daemons repair a homed key written in the
/// wrong zone by themselves (and count it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_anti_entropy_repairs_a_homed_key_by_itself() {
    let (p, admin) = pair_with(
        "redis_entropy",
        6141,
        9669,
        "verify_interval_secs = 1\n[redis.homes]\n\"sync:route:*\" = \"a\"\n",
    )
    .await;
    let mut a = con(0, DB).await;
    let mut b = con(1, DB).await;
    let _: () = a.set("sync:route:9", "from a").await.unwrap();
    assert_converged(&p, 30).await;
    let _: () = b.set("sync:route:9", "from b").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            con(1, DB)
                .await
                .get::<_, Option<String>>("sync:route:9")
                .await
                .unwrap()
                .as_deref()
                == Some("from a")
        })
        .await,
        "zone b's misrouted write was not repaired:\n{}",
        p.logs()
    );
    let repaired: f64 = (0..2)
        .map(|z| {
            sample(
                &get(&format!("{}/metrics", admin[z])),
                "drc_redis_verify_repaired_total",
                &[],
            )
            .unwrap_or(0.0)
        })
        .sum();
    assert!(repaired >= 1.0, "repairs counted");
    assert_converged(&p, 30).await;
}

/// A first start against a zone whose Redis already holds data: 20,000 keys and a
/// 1,000,000-member set of 64-byte members (64 MB) cross in the full sync, with the
/// daemon's memory bounded (the snapshot is streamed in chunks, never held whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_of_a_million_member_set_and_many_keys_with_bounded_memory() {
    fresh().await;
    let mut w = String::new();
    for chunk in (0..1_000_000).collect::<Vec<u32>>().chunks(2000) {
        w += &format!(
            "SADD sync:big {}\n",
            chunk.iter().map(|i| member(*i)).collect::<Vec<_>>().join(" ")
        );
    }
    for i in 0..20_000 {
        w += &format!("SET sync:k:{i} v{i}\n");
    }
    common::redis::redis_cli("6381", DB, &w);
    let mut p = Pair::new("redis_big", &[TABLE], 6151).await;
    p.with_redis(&format!("[{DB}]"), KEYS, "");
    // zone a first, until it has synced zone b's (empty) Redis: zone b's full sync then
    // knows where zone a had applied its stream and reads its own stream beside the
    // snapshot (the heavier path, which a CI machine took by timing alone: 85 MB)
    p.start(0);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            let pos: Option<String> = con(0, 0).await.get("drc:pos:b").await.unwrap();
            pos.is_some()
        })
        .await,
        "zone a did not sync zone b's Redis:\n{}",
        p.logs()
    );
    let started = std::time::Instant::now();
    p.start(1);
    assert!(
        wait_until(Duration::from_secs(120), || async {
            let n: u64 = con(1, DB).await.scard("sync:big").await.unwrap();
            let k: Option<String> = con(1, DB).await.get("sync:k:19999").await.unwrap();
            n == 1_000_000 && k.is_some()
        })
        .await,
        "the full sync did not complete:\n{}",
        p.logs()
    );
    let secs = started.elapsed().as_secs_f64();
    let peak_mb = |z: usize| -> f64 {
        let pid = p.daemons[z].as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    let (peak_b, peak_a) = (peak_mb(1), peak_mb(0));
    eprintln!(
        "full sync of 1,000,000 members (64 MB) and 20,000 keys in {secs:.1} s, zone b's daemon peak RSS {peak_b:.0} MB (zone a's: {peak_a:.0} MB)"
    );
    // Held whole, the set alone is over 100 MB as drc's values (64 bytes, a vector and
    // the allocator's header per member), on top of the daemon's own 30-45 MB (a debug
    // build's pages included). Streamed, zone b peaked at 53-59 MB (debug build), its
    // batches bounded at 2 MB whatever the members.
    assert!(peak_b < 110.0, "zone b's daemon peaked at {peak_b:.0} MB");
    let last: bool = con(1, DB).await.sismember("sync:big", member(999_999)).await.unwrap();
    assert!(last, "the last member crossed intact");
    assert_converged(&p, 60).await;
    fresh().await;
}

/// Member `i` of the big set: 64 bytes.
fn member(i: u32) -> String {
    format!("m{i:063}")
}

/// The issue's counter case: INCR 10,000 times in zone a and 10,000 times in zone b
/// on the same key, concurrently: exactly 20,000 in both, and it stays there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_incrs_in_each_zone_on_one_key_make_exactly_twenty_thousand() {
    incrs(Transport::Direct, "redis_incr", 6161, 9671).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_ten_thousand_incrs_in_each_zone_on_one_key_make_exactly_twenty_thousand() {
    incrs(Transport::Kafka, "redis_k_incr", 6211, 9681).await
}

async fn incrs(transport: Transport, name: &str, server_id: u32, admin_port: u16) {
    let (p, _) = pair_over(transport, name, server_id, admin_port, "").await;
    let incr = |zone: usize| async move {
        let mut c = con(zone, DB).await;
        for _ in 0..100 {
            let mut pipe = redis::pipe();
            for _ in 0..100 {
                pipe.incr("counter:one", 1).ignore();
            }
            let _: () = pipe.query_async(&mut c).await.unwrap();
        }
    };
    tokio::join!(incr(0), incr(1));
    assert!(
        wait_until(Duration::from_secs(60), || async {
            counter(0, "counter:one").await == 20_000 && counter(1, "counter:one").await == 20_000
        })
        .await,
        "a {} / b {}:\n{}",
        counter(0, "counter:one").await,
        counter(1, "counter:one").await,
        p.logs()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for z in 0..2 {
        assert_eq!(
            counter(z, "counter:one").await,
            20_000,
            "zone {z}: no increment came back"
        );
    }
}

/// Zone b writes keys of its own while its direction from zone a syncs in full (zone
/// a's backlog lost during an outage): every local write made during the sync stands
/// in zone b (the snapshot never overwrites it; it is watched while a chunk is
/// applied) and reaches zone a, so the zones converge on zone b's later values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_writes_during_a_full_sync_are_never_overwritten_by_the_snapshot() {
    let (mut p, _) = pair("redis_racefs", 6171, 9673).await;
    let mut w = String::new();
    for i in 0..20_000 {
        w += &format!("SET sync:r:{i} a{i}\n");
    }
    common::redis::redis_cli("6381", DB, &w);
    assert_converged(&p, 60).await;
    p.kill9(1);
    let _backlog = Backlog;
    common::redis::redis_cli("6381", 0, "CONFIG SET repl-backlog-size 16384\n");
    // zone a rewrites every key in the gap (more than its backlog holds)
    let mut w = String::new();
    for i in 0..20_000 {
        w += &format!("SET sync:r:{i} a2-{i}\n");
    }
    common::redis::redis_cli("6381", DB, &w);
    p.start(1);
    // zone b writes a share of the same keys while the full sync runs
    let mut b = con(1, DB).await;
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let i = (n * 7919) % 20_000;
        let _: () = b.set(format!("sync:r:{i}"), format!("b-{n}")).await.unwrap();
        n += 1;
    }
    assert_converged(&p, 90).await;
    assert!(
        p.log(1).contains("no longer holds drc's position"),
        "a full sync happened:\n{}",
        p.log(1)
    );
    eprintln!("{n} local writes in zone b during the full sync");
}

/// The testenv's rule for keys both zones write (`conflicts = "later_write"`): with
/// both directions paused (each zone's write made before it sees the other's, the
/// heartbeats going on), keys overwritten in both zones end, in both, with the later
/// write — a SET over a SET either way round, a DEL over a SET, a SET without expiry
/// over one with — and changes of different fields of a hash made in both are
/// merged. A write made right after the other zone's write arrived is applied over it
/// whatever the clocks say (twenty times, each within a heartbeat of the write it
/// follows). Fails with `conflicts = "apply"`: the zones end with each other's
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_written_in_both_zones_at_once_end_with_the_later_write() {
    later_write(Transport::Direct, "redis_lww", 6311, 9701).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_keys_written_in_both_zones_at_once_end_with_the_later_write() {
    later_write(Transport::Kafka, "redis_k_lww", 6321, 9705).await
}

async fn later_write(transport: Transport, name: &str, server_id: u32, admin_port: u16) {
    let (p, admin) = pair_over(transport, name, server_id, admin_port, "").await;
    let (mut ca, mut cb) = (con(0, DB).await, con(1, DB).await);
    let get = |zone: usize, key: &'static str| async move {
        let v: Option<String> = con(zone, DB).await.get(key).await.unwrap();
        v
    };
    // causal: each write follows the other zone's, seen
    for i in 0..20 {
        let key = format!("sync:causal:{i}");
        let (first, second, fz, sz) = if i % 2 == 0 {
            (&mut ca, &mut cb, "a", "b")
        } else {
            (&mut cb, &mut ca, "b", "a")
        };
        let _: () = first.set(&key, fz).await.unwrap();
        let seen = wait_until(Duration::from_secs(20), || {
            let mut c = second.clone();
            let key = key.clone();
            async move { c.get::<_, Option<String>>(&key).await.unwrap().as_deref() == Some(fz) }
        })
        .await;
        assert!(seen, "{key} did not arrive:\n{}", p.logs());
        let _: () = second.set(&key, sz).await.unwrap();
    }
    let _: () = ca.set("sync:lww:del", "x").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            get(1, "sync:lww:del").await.is_some()
        })
        .await,
        "{}",
        p.logs()
    );
    // concurrent: neither zone applies the other's writes meanwhile
    let cfgs: Vec<String> = p.cfg.iter().map(|c| c.display().to_string()).collect();
    for c in &cfgs {
        let (code, out) = common::drc(&["pause", "--config", c]);
        assert_eq!(code, 0, "{out}");
    }
    let _: () = ca.set("sync:lww:1", "a-early").await.unwrap();
    let _: () = cb.set("sync:lww:2", "b-early").await.unwrap();
    let _: () = ca.set("sync:lww:del", "a-early").await.unwrap();
    let _: () = cb.set_ex("sync:lww:ttl", "b-early", 3600).await.unwrap();
    let _: () = ca.hset("sync:lww:h", "fa", "a").await.unwrap();
    // later by more than a heartbeat (200 ms here) in every zone's clock
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _: () = cb.set("sync:lww:1", "b-late").await.unwrap();
    let _: () = ca.set("sync:lww:2", "a-late").await.unwrap();
    let _: () = cb.del("sync:lww:del").await.unwrap();
    let _: () = ca.set("sync:lww:ttl", "a-late").await.unwrap();
    let _: () = cb.hset("sync:lww:h", "fb", "b").await.unwrap();
    for c in &cfgs {
        let (code, out) = common::drc(&["resume", "--config", c]);
        assert_eq!(code, 0, "{out}");
    }
    assert_converged(&p, 60).await;
    for z in 0..2 {
        assert_eq!(get(z, "sync:lww:1").await.as_deref(), Some("b-late"), "zone {z}");
        assert_eq!(get(z, "sync:lww:2").await.as_deref(), Some("a-late"), "zone {z}");
        assert_eq!(get(z, "sync:lww:del").await, None, "zone {z}: the later DEL stands");
        assert_eq!(get(z, "sync:lww:ttl").await.as_deref(), Some("a-late"), "zone {z}");
        let ttl: i64 = con(z, DB).await.ttl("sync:lww:ttl").await.unwrap();
        assert_eq!(ttl, -1, "zone {z}: the later SET has no expiry");
        let h: BTreeMap<String, String> = con(z, DB).await.hgetall("sync:lww:h").await.unwrap();
        assert_eq!(h.len(), 2, "zone {z}: both fields merged: {h:?}");
        for i in 0..20 {
            let v: Option<String> = con(z, DB).await.get(format!("sync:causal:{i}")).await.unwrap();
            let want = if i % 2 == 0 { "b" } else { "a" };
            assert_eq!(
                v.as_deref(),
                Some(want),
                "zone {z}: sync:causal:{i}: the write made after seeing the other's"
            );
        }
    }
    for (z, url) in admin.iter().enumerate() {
        let m = common::get(&format!("{url}/metrics"));
        let lost = sample(&m, "drc_redis_conflicts_total", &["rule=\"later_write\""]).unwrap_or(0.0);
        assert!(
            lost >= 2.0,
            "zone {z}: the earlier writes it got were not applied: {lost}\n{m}"
        );
    }
}

/// Both Redis directions over TLS (the testenv servers' TLS ports, 6391 and 6392,
/// verify-full against the testenv's CA) as the ACL user `drc`, who has exactly the
/// grants docs/REDIS.md lists: the full sync and the stream cross both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_over_tls_as_a_user_with_only_the_documented_grants() {
    fresh().await;
    let _: () = con(0, DB)
        .await
        .set("sync:tls:before", "in a before the start")
        .await
        .unwrap();
    let mut p = Pair::new("redis_tls", &[TABLE], 6431).await;
    let login = "user = \"drc\"\npassword = \"drc-redis\"\n";
    p.with_redis_on([6391, 6392], login, true, &format!("[{DB}]"), KEYS, "");
    p.start_both().await;
    wait_full_syncs(&p).await;
    let _: () = con(0, DB).await.set("sync:tls:a", "from a").await.unwrap();
    let _: () = con(1, DB).await.set("sync:tls:b", "from b").await.unwrap();
    for (zone, key, want) in [
        (1, "sync:tls:before", "in a before the start"),
        (1, "sync:tls:a", "from a"),
        (0, "sync:tls:b", "from b"),
    ] {
        assert!(
            wait_until(Duration::from_secs(30), || async {
                con(zone, DB)
                    .await
                    .get::<_, Option<String>>(key)
                    .await
                    .unwrap()
                    .as_deref()
                    == Some(want)
            })
            .await,
            "{key} did not reach zone {zone}:\n{}",
            p.logs()
        );
    }
    for z in 0..2 {
        let log = p.log(z);
        assert!(!log.contains(" ERROR ") && !log.contains("NOPERM"), "zone {z}:\n{log}");
    }
    // the servers saw drc's connections as TLS ones from user drc
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con(0, 0).await)
        .await
        .unwrap();
    assert!(
        clients
            .lines()
            .any(|l| l.contains("user=drc") && l.contains("laddr=127.0.0.1:6391")),
        "{clients}"
    );
    assert_converged(&p, 30).await;
    fresh().await;
}
