//! Active-active through a real Kafka-protocol broker (tansu, started by
//! `testenv/up.sh --kafka`): each daemon publishes its zone's own transactions to its
//! topic and applies the peer's. Same guarantees as the direct transport: the
//! concurrent-writes convergence test with `kill -9`s of the daemons, exact
//! exactly-once counts (an echo or a repeat would raise them, a loss lower them).
//!
//! * broker stop/start in the middle of the load plus 20 daemon kills: zero lost and
//!   zero applied twice, proven by the audit ledger (a per-token write counter kept
//!   by triggers in every zone), not only by drc's counts and a final diff;
//! * back-pressure: with the broker down the reader stops at the in-flight limit with
//!   bounded memory, says what it waits for, and resumes without loss;
//! * a third zone by config alone, including a restart of its MariaDB under load.
//!
//! These tests stop the shared broker or zone c, so nextest runs them one at a time
//! (`.config/nextest.toml`, group `serial`).
//! Run: `testenv/up.sh --kafka && cargo nextest run --test kafka`.

mod common;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Stops (`down.sh --kafka`) or starts (`up.sh --kafka`) the testenv broker; its
/// SQLite storage survives.
async fn broker(start: bool) {
    tokio::task::spawn_blocking(move || {
        let script = if start { "testenv/up.sh" } else { "testenv/down.sh" };
        let st = std::process::Command::new("bash")
            .arg(repo().join(script))
            .arg("--kafka")
            .status()
            .unwrap();
        assert!(st.success(), "{script} --kafka failed");
    })
    .await
    .unwrap();
}

/// The broker stopped for a test; started again when dropped, even if the test
/// fails meanwhile (the other Kafka tests need it).
struct BrokerDown;

impl BrokerDown {
    async fn stop() -> BrokerDown {
        broker(false).await;
        BrokerDown
    }

    async fn start(self) {
        broker(true).await;
        std::mem::forget(self);
    }
}

impl Drop for BrokerDown {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(repo().join("testenv/up.sh"))
            .arg("--kafka")
            .status();
    }
}

/// Deletes and creates `topic` again on the testenv broker (empty, one partition).
fn recreate_topic(topic: &str) {
    for args in [vec!["delete", topic], vec!["create", topic, "--partitions", "1"]] {
        let st = std::process::Command::new("tansu")
            .arg("topic")
            .args(&args)
            .arg("--broker")
            .arg("tcp://127.0.0.1:9092")
            .status()
            .unwrap();
        assert!(st.success(), "tansu topic {args:?}");
    }
}

/// The exit code of zone `zone`'s daemon, which must exit within `limit`.
async fn exit_code_within(p: &mut Pair, zone: usize, limit: Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = p.daemons[zone].as_mut().unwrap().try_wait().unwrap() {
            return st.code();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("zone {}'s daemon kept running:\n{}", ZONES[zone], p.log(zone))
}

/// Peak and current resident memory of a daemon, in MB (from /proc).
fn rss_mb(child: &std::process::Child) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kb = |key: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (kb("VmHWM:") / 1024, kb("VmRSS:") / 1024)
}

fn broker_up() {
    assert!(
        std::net::TcpStream::connect_timeout(&"127.0.0.1:9092".parse().unwrap(), Duration::from_secs(2)).is_ok(),
        "no Kafka broker on 127.0.0.1:9092; start it with testenv/up.sh --kafka"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_with_kills_converge_over_kafka() {
    broker_up();
    let mut p = Pair::with("kafka", &[ORDERS], 4901, Transport::Kafka).await;
    p.start_both().await;
    let db = p.db.clone();
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let load = Load::spawn(&p, 2, 500, seed);
    p.kill_randomly(10, seed).await;
    let committed = load.finish().await;
    let (ca, cb) = (committed[0], committed[1]);
    eprintln!("committed transactions: zone a {ca}, zone b {cb}; 10 daemon kills");
    p.assert_applied_exactly(&[ca, cb]).await;
    p.assert_converged("orders", 30, seed).await;
    let mut c = conn(ZONE_B).await;
    let topic: Option<String> = c
        .exec_first(
            "SELECT kafka_topic FROM drc.applied WHERE origin_zone = ?",
            (format!("a/{db}"),),
        )
        .await
        .unwrap()
        .flatten();
    assert_eq!(
        topic.as_deref(),
        Some(format!("{db}.a").as_str()),
        "the Kafka position is stored with the rows"
    );
    eprintln!("rows at the end: {}", p.rows(0, "orders").await.len());
}

/// An applier transaction longer than one fragment (here 300 rows, fragments of 50)
/// carries its loop marker only in its first fragment: none of its fragments may be
/// published back. (Group commit makes such transactions common: a backlog of small
/// origin transactions is applied as one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_fragment_applier_transaction_is_not_published_back() {
    broker_up();
    let mut p = Pair::with("bigloop", &[ORDERS], 4951, Transport::Kafka).await;
    p.start_both().await;
    let db = p.db.clone();
    let values: Vec<String> = (0..300).map(|i| format!("('big {i}')")).collect();
    exec(
        ZONE_A,
        &[&format!(
            "INSERT INTO `{db}`.orders (customer) VALUES {}",
            values.join(", ")
        )],
    )
    .await;
    let applied = wait_until(Duration::from_secs(30), || async { p.applied_txns(1).await >= 1 }).await;
    assert!(applied, "zone b did not apply the transaction\n{}", p.logs());
    assert_eq!(p.rows(1, "orders").await.len(), 300);
    // An echo would be published before zone b's later heartbeats (the topic is in
    // order): wait until zone a has applied two heartbeats of b written after it.
    let hb = |db: String| async move {
        conn(ZONE_A)
            .await
            .exec_first::<Option<u64>, _, _>(
                "SELECT hb_seq FROM drc.applied WHERE origin_zone = ?",
                (format!("b/{db}"),),
            )
            .await
            .unwrap()
            .flatten()
            .unwrap_or(0)
    };
    let seen = hb(db.clone()).await;
    let later = wait_until(Duration::from_secs(30), || {
        let next = hb(db.clone());
        async move { next.await >= seen + 2 }
    })
    .await;
    assert!(later, "zone a applied no later heartbeat of zone b\n{}", p.logs());
    assert_eq!(
        p.applied_txns(0).await,
        0,
        "fragments of zone b's applier transaction came back to zone a\n{}",
        p.logs()
    );
    assert_eq!(p.applied_txns(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_and_twenty_kills_lose_nothing_and_repeat_nothing() {
    broker_up();
    let mut p = Pair::audited("brk", 4911, Transport::Kafka, 2).await;
    p.start_both().await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    // At most 2 x 2 x 20,000 transactions; the load ends 2 s after the broker is back.
    let load = Load::spawn(&p, 2, 20_000, seed);
    // The broker goes away in the middle of the load and comes back, while the
    // daemons are being killed.
    let stop = load.stop.clone();
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let down = BrokerDown::stop().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        down.start().await;
        let back = std::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        back
    });
    p.kill_randomly(20, seed).await;
    let committed = load.finish().await;
    let load_end = std::time::Instant::now();
    assert!(
        restart.await.unwrap() < load_end,
        "the load ended before the broker came back; make it longer"
    );
    eprintln!("committed transactions: {committed:?}; 20 daemon kills, one broker restart");
    let t = std::time::Instant::now();
    p.assert_applied_exactly(&committed).await;
    eprintln!("caught up {:?} after the load", t.elapsed());
    p.assert_converged("orders", 30, seed).await;
    assert!(wait_converged(&p, "ledger", 30).await, "ledgers differ");
    p.assert_audit(&committed).await;
    eprintln!("rows at the end: {}", p.rows(0, "orders").await.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_pauses_the_reader_with_bounded_memory_and_loses_nothing() {
    broker_up();
    let mut p = Pair::audited("outage", 4931, Transport::Kafka, 2).await;
    p.start_both().await;
    let down = BrokerDown::stop().await;
    // More single-row transactions than the producer keeps in flight (2,000).
    let db = p.db.clone();
    let mut c = conn(ZONE_A).await;
    for i in 0..5000 {
        c.exec_drop(
            format!("INSERT INTO `{db}`.ledger (token) VALUES (?)"),
            (format!("outage/{i}"),),
        )
        .await
        .unwrap();
    }
    let waiting = wait_until(Duration::from_secs(30), || {
        let log = p.log(0);
        async move { log.contains("waiting for the broker to acknowledge") && log.contains("in-flight limit") }
    })
    .await;
    assert!(waiting, "the producer did not report the back-pressure:\n{}", p.log(0));
    let (peak, now) = rss_mb(p.daemons[0].as_ref().unwrap());
    eprintln!("daemon a with the broker down and 5,000 transactions waiting: peak RSS {peak} MB, now {now} MB");
    assert!(
        peak < 150,
        "memory must stay bounded while the broker is down: peak {peak} MB"
    );
    down.start().await;
    p.assert_applied_exactly(&[5000, 0]).await;
    assert!(wait_converged(&p, "ledger", 30).await, "ledgers differ");
    p.assert_audit(&[5000, 0]).await;
    assert!(
        p.log(0).contains("publishing resumed"),
        "no log line says the producer resumed:\n{}",
        p.log(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_c_three_zones_by_config_alone_with_a_mariadb_restart() {
    broker_up();
    testenv_up("c");
    let mut p = Pair::audited("three", 4921, Transport::Kafka, 3).await;
    p.start_both().await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let load = Load::spawn(&p, 2, 250, seed);
    p.kill_randomly(6, seed).await;
    let mut committed = load.finish().await;
    // Zone c's MariaDB goes down while a and b keep writing: c's daemon waits
    // (its consumers and its producer) and catches up when the server is back.
    testenv_down("c");
    let load = Load::spawn_in(&p, &[0, 1], 2, 150, seed ^ 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    testenv_up("c");
    for (total, more) in committed.iter_mut().zip(load.finish().await) {
        *total += more;
    }
    eprintln!("committed transactions per zone: {committed:?}; 6 daemon kills, zone c restarted");
    p.assert_applied_exactly(&committed).await;
    p.assert_converged("orders", 30, seed).await;
    assert!(wait_converged(&p, "ledger", 30).await, "ledgers differ");
    p.assert_audit(&committed).await;
    assert!(
        p.log(2).contains("interrupted; resuming") || p.log(2).contains("not reachable; retrying"),
        "zone c's daemon did not report the outage:\n{}",
        p.log(2)
    );
}

/// A stored offset the broker no longer has (here: the topic was deleted and
/// recreated, as retention would delete it) stops the consumer with the reason; it
/// never jumps to whatever the broker has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_offset_stops_the_consumer_instead_of_skipping() {
    broker_up();
    let mut p = Pair::with("lost", &[ORDERS], 4941, Transport::Kafka).await;
    p.start_both().await;
    let db = p.db.clone();
    for i in 0..5 {
        exec(
            ZONE_A,
            &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('row {i}')")],
        )
        .await;
    }
    assert!(
        wait_until(Duration::from_secs(30), || async { p.applied_txns(1).await == 5 }).await,
        "{}",
        p.logs()
    );
    p.kill9(0);
    p.kill9(1);
    let topic = format!("{db}.a");
    recreate_topic(&topic);
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('after')")],
    )
    .await;
    p.start(0);
    p.start(1);
    let code = exit_code_within(&mut p, 1, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1), "{}", p.log(1));
    assert!(p.log(1).contains("is no longer on the broker"), "{}", p.log(1));
    assert_eq!(p.applied_txns(1).await, 5, "nothing applied after the gap");
}

/// The topic is recreated and, before zone b's daemon starts again, already holds
/// more messages than b's stored offset: the watermarks alone pass, and b would
/// resume in the middle of other transactions. b reads the message at its stored
/// offset again, finds another transaction than the one it applied last, and stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_that_already_holds_more_messages_is_refused() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    broker_up();
    let mut p = Pair::with("recreated", &[ORDERS], 4961, Transport::Kafka).await;
    p.start_both().await;
    let db = p.db.clone();
    for i in 0..3 {
        exec(
            ZONE_A,
            &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('row {i}')")],
        )
        .await;
    }
    assert!(
        wait_until(Duration::from_secs(30), || async { p.applied_txns(1).await == 3 }).await,
        "{}",
        p.logs()
    );
    // Zone a stops cleanly, so its publisher's position is saved past the three
    // transactions. Killed, it may not have saved it yet and publishes them again
    // into the new topic, in the same order: the message at b's stored offset is
    // then the very transaction b applied last, and b rightly goes on (nothing was
    // lost). Seen in 2 of 5 runs once the applier had got faster.
    let mut a = p.daemons[0].take().expect("zone a runs");
    // SAFETY: a signal to a child process this test started
    unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
    a.wait().unwrap();
    p.kill9(1);
    let stored: i64 = conn(ZONE_B)
        .await
        .exec_first(
            "SELECT kafka_offset FROM drc.applied WHERE origin_zone = ?",
            (format!("a/{db}"),),
        )
        .await
        .unwrap()
        .unwrap();
    let topic = format!("{db}.a");
    recreate_topic(&topic);
    // zone a publishes into the new topic until it holds more than b's offset
    p.start(0);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("group.id", format!("{db}-probe"))
        .create()
        .unwrap();
    let mut i = 0;
    let filled = wait_until(Duration::from_secs(60), || {
        i += 1;
        let db = db.clone();
        let high = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .map(|(_, h)| h)
            .unwrap_or(0);
        async move {
            if high > stored + 3 {
                return true;
            }
            exec(
                ZONE_A,
                &[&format!(
                    "INSERT INTO `{db}`.orders (customer) VALUES ('new topic {i}')"
                )],
            )
            .await;
            false
        }
    })
    .await;
    assert!(filled, "the new topic did not reach offset {stored}:\n{}", p.log(0));
    p.start(1);
    let code = exit_code_within(&mut p, 1, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1), "{}", p.log(1));
    assert!(p.log(1).contains("the topic was recreated"), "{}", p.log(1));
    assert_eq!(p.applied_txns(1).await, 3, "nothing applied from the new topic");
}

/// A backlog of 3,000 small transactions published while zone b is away travels
/// many to a message (`json/2`: far fewer messages than transactions), and zone b,
/// killed 8 times while it applies them (its group commits end inside messages: it
/// resumes after the last transaction it applied, from the middle of a message),
/// applies every one exactly once (the audit ledger).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_travels_many_transactions_to_a_message_and_kills_inside_one_repeat_nothing() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    broker_up();
    let mut p = Pair::audited("batch", 4931, Transport::Kafka, 2).await;
    let admin = p.with_admin(9721, "t");
    p.start_both().await;
    p.kill9(1);
    // zone a's daemon is away too while the backlog is written: its reader then
    // starts behind and fills whole messages
    p.kill9(0);
    const TXNS: u64 = 3_000;
    let mut c = mysql_async::Conn::new(opts(ZONE_A)).await.unwrap();
    for i in 0..TXNS {
        c.query_drop("START TRANSACTION").await.unwrap();
        c.exec_drop(
            format!("INSERT INTO `{}`.orders (customer) VALUES (?)", p.db),
            (format!("backlog {i}"),),
        )
        .await
        .unwrap();
        c.exec_drop(
            format!("INSERT INTO `{}`.ledger (token) VALUES (?)", p.db),
            (format!("a-{i}"),),
        )
        .await
        .unwrap();
        c.query_drop("COMMIT").await.unwrap();
    }
    p.start(0);
    let topic = format!("{}.a", p.db);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("group.id", format!("{}-probe", p.db))
        .create()
        .unwrap();
    // every transaction published (and acknowledged): how many messages it took
    // (heartbeats add about one a second)
    let published = wait_until(Duration::from_secs(60), || {
        // (the daemon may still be starting: its endpoint not up yet)
        let shipped = ureq::get(&format!("{}/metrics", admin[0]))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|m| sample(&m, "drc_shipped_transactions_total", &[]))
            .unwrap_or(0.0);
        async move { shipped >= TXNS as f64 }
    })
    .await;
    assert!(published, "zone a did not publish its backlog:\n{}", p.log(0));
    let messages = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5)).unwrap().1;
    eprintln!("{TXNS} transactions in {messages} messages");
    assert!(
        messages * 10 < TXNS as i64,
        "{messages} messages for {TXNS} transactions: not batched\n{}",
        p.log(0)
    );
    p.start(1);
    // killed as soon as it has applied more, 8 times: at a group commit, which ends
    // inside a message far more often than at its end
    let mut kills = Vec::new();
    for _ in 0..8 {
        let before = p.applied_txns(1).await;
        if before >= TXNS {
            break;
        }
        for _ in 0..3000 {
            if p.applied_txns(1).await > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        p.kill9(1);
        kills.push(p.applied_txns(1).await);
        p.start(1);
    }
    eprintln!("zone b killed with these transactions applied: {kills:?}");
    assert!(
        kills.len() >= 2,
        "zone b applied the backlog before it could be killed twice"
    );
    let committed = [TXNS, 0];
    p.assert_applied_exactly(&committed).await;
    p.assert_audit(&committed).await;
    assert!(p.running(1), "{}", p.log(1));
}
