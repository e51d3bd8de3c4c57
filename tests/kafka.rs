//! Active-active through a real Kafka-protocol broker (tansu, started by
//! `testenv/up.sh --kafka`): each daemon publishes its zone's own transactions to its
//! topic and applies the peer's. Same guarantees as the direct transport: the
//! concurrent-writes convergence test with `kill -9`s of the daemons, exact
//! exactly-once counts (an echo or a repeat would raise them, a loss lower them).
//!
//! Run: `testenv/up.sh --kafka && cargo nextest run --test kafka`.

mod common;

use common::pair::*;
use common::*;
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::time::Duration;

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
    let load = Load::spawn(&db, 2, 500, seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        let z = rng.gen_range(0..2);
        p.kill9(z);
        p.start(z);
    }
    let [ca, cb] = load.finish().await;
    eprintln!("committed transactions: zone a {ca}, zone b {cb}; 10 daemon kills");
    let all = wait_until(Duration::from_secs(120), || async {
        p.applied_txns(1).await >= ca && p.applied_txns(0).await >= cb
    })
    .await;
    assert!(
        all,
        "applied a->b {} of {ca}, b->a {} of {cb}\n{}\n{}",
        p.applied_txns(1).await,
        p.applied_txns(0).await,
        p.log(0),
        p.log(1)
    );
    assert!(wait_converged(&p, "orders", 30).await, "zones differ");
    assert_eq!(p.applied_txns(1).await, ca, "a -> b exactly once");
    assert_eq!(p.applied_txns(0).await, cb, "b -> a exactly once");
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
    drop(p);
    for port in PORTS {
        exec(port, &[&format!("DROP DATABASE `{db}`")]).await;
    }
}
