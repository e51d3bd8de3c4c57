//! A Redis direction end to end, against the testenv's two real redis-servers
//! (`testenv/up.sh --redis`): zone a's stream (drc as its replica) grouped into origin
//! transactions and applied to zone b, each with its position in one MULTI/EXEC. The
//! capture is dropped half-way ("a crash") and resumed from the position stored in
//! zone b: 500 INCRs arrive exactly 500 times, a client transaction and a script's
//! effects whole, nothing else changes; zone b's own stream shows every applied
//! transaction as the applier's (never shipped back). A full sync copies a database
//! with every type, TTLs and a 200,000-member set, chunked (keys the snapshot holds
//! replaced whole, zone b's other keys kept), and resumes the stream after it.
//!
//! Run: `testenv/up.sh --redis && cargo nextest run --test redis_apply`.

mod common;

use common::redis::redis_cli;
use drc::redis::apply::{RedisApplier, RedisPos, SnapshotMark};
use drc::redis::endpoint::Endpoint;
use drc::redis::replica::{Replica, Sync};
use drc::redis::snapshot::Snapshot;
use drc::redis::stream::Grouper;
use drc::redis::stream::RedisTx;
use std::time::Duration;

const DB: u64 = 11;

fn cli(port: &str, commands: &str) -> String {
    redis_cli(port, DB, commands)
}

/// Applies zone a's transactions of database `DB` until `n` are applied or the last
/// one written (`SET end:marker`) was; returns how many were applied.
async fn run(r: &mut Replica, g: &mut Grouper, b: &mut RedisApplier, n: usize) -> usize {
    let mut applied = 0;
    loop {
        let c = tokio::time::timeout(Duration::from_secs(10), r.next_command())
            .await
            .expect("a command within 10 s")
            .unwrap();
        let Some(tx) = g.push(c) else { continue };
        if tx.applier || !tx.commands.iter().all(|(d, _)| *d == DB) {
            continue; // another test's database
        }
        let last = tx
            .commands
            .iter()
            .any(|(_, a)| a.get(1).map(|k| k.as_slice()) == Some(b"end:marker"));
        let pos = RedisPos {
            replid: r.replid.clone(),
            offset: tx.offset,
            db: g.db(),
            ..Default::default()
        };
        b.apply("a", &tx, &pos).await.unwrap();
        r.ack(tx.offset).await.unwrap();
        applied += 1;
        if last || applied == n {
            return applied;
        }
    }
}

#[tokio::test]
async fn a_direction_applies_exactly_once_across_a_restart_and_never_loops() {
    cli("6381", "FLUSHDB\n");
    cli("6382", "FLUSHDB\n");
    let mut b = RedisApplier::connect(&Endpoint::plain("127.0.0.1:6382")).await.unwrap();
    // b's own stream, to see what the applier wrote there
    let (mut b_stream, _) = Replica::connect(&Endpoint::plain("127.0.0.1:6382"), None)
        .await
        .unwrap();
    b_stream.snapshot(|_| {}).await.unwrap();
    let (mut a, sync) = Replica::connect(&Endpoint::plain("127.0.0.1:6381"), None)
        .await
        .unwrap();
    assert!(matches!(sync, Sync::Full { .. }));
    a.snapshot(|_| {}).await.unwrap();

    let mut writes = String::new();
    for _ in 0..500 {
        writes += "INCR counter\n";
    }
    writes += "MULTI\nSET k1 v1\nHSET h f1 x f2 y\nRPUSH l a b c\nEXEC\n";
    writes += "EVAL \"redis.call('SADD', 's', 'm1', 'm2') redis.call('INCRBY', 'counter', 1000)\" 0\n";
    writes += "SET end:marker done\n";
    cli("6381", &writes);

    // the stream is grouped from the database the stream has selected: SELECT comes
    // with the first command
    let mut g = Grouper::new(0);
    let first = run(&mut a, &mut g, &mut b, 200).await;
    assert_eq!(first, 200);
    drop(a); // the crash: nothing acknowledged beyond the stored position is trusted

    let pos = b.position("a").await.unwrap().expect("a stored position");
    let (mut a, sync) = Replica::connect(&Endpoint::plain("127.0.0.1:6381"), Some((&pos.replid, pos.offset)))
        .await
        .unwrap();
    assert!(matches!(sync, Sync::Continue { .. }), "{sync:?}");
    let mut g = Grouper::new(pos.db);
    let rest = run(&mut a, &mut g, &mut b, usize::MAX).await;
    assert_eq!(first + rest, 500 + 3, "every origin transaction once");

    let state = |port: &str| {
        cli(
            port,
            "GET counter\nGET k1\nHGETALL h\nLRANGE l 0 -1\nSMEMBERS s\nGET end:marker\n",
        )
        .lines()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let (in_a, in_b) = (state("6381"), state("6382"));
    assert_eq!(in_a[0], "1500");
    let mut sa = in_a.clone();
    let mut sb = in_b.clone();
    sa.sort();
    sb.sort();
    assert_eq!(sa, sb, "zone a {in_a:?}, zone b {in_b:?}");

    // zone b's stream: every transaction the applier wrote is marked as the applier's
    let mut gb = Grouper::new(0);
    let mut marked = 0;
    let mut unmarked = 0;
    while marked < 503 {
        let c = tokio::time::timeout(Duration::from_secs(10), b_stream.next_command())
            .await
            .expect("b's stream")
            .unwrap();
        if let Some(tx) = gb.push(c) {
            if tx.applier {
                marked += 1;
            } else if tx.commands.iter().all(|(d, _)| *d == DB) {
                unmarked += 1;
            }
        }
    }
    assert_eq!(unmarked, 0, "an applied transaction would be shipped back");
    cli("6381", "FLUSHDB\n");
    cli("6382", "FLUSHDB\n");
}

#[tokio::test]
async fn a_full_sync_copies_the_database_and_the_stream_goes_on_after_it() {
    let cli12 = |port: &str, commands: &str| redis_cli(port, 12, commands);
    cli12("6381", "FLUSHDB\n");
    cli12("6382", "FLUSHDB\nSET stale:in:b 1\nSADD big stale\n");
    let mut writes = String::from("SET s hello\nSET n 42\nPEXPIRE s 3600000\nRPUSH l a b c\nHSET h f1 v1 f2 v2\nZADD z 1.5 one -2 two\nSADD small x y\n");
    for chunk in (0..200_000).collect::<Vec<_>>().chunks(1000) {
        writes += &format!(
            "SADD big {}\n",
            chunk.iter().map(|i| format!("m{i}")).collect::<Vec<_>>().join(" ")
        );
    }
    cli12("6381", &writes);

    let mut b = RedisApplier::connect(&Endpoint::plain("127.0.0.1:6382")).await.unwrap();
    let (mut a, sync) = Replica::connect(&Endpoint::plain("127.0.0.1:6381"), None)
        .await
        .unwrap();
    let Sync::Full { replid, offset } = sync else {
        panic!("{sync:?}")
    };
    // the snapshot's transactions, collected (bounded by chunks) then applied
    let mut snap = Snapshot::new(|db, _| db == 12);
    let mut txs: Vec<RedisTx> = Vec::new();
    let mut largest = 0;
    a.snapshot(|item| {
        if let Some(tx) = snap.push(item) {
            largest = largest.max(tx.commands.iter().map(|(_, c)| c.len()).max().unwrap_or(0));
            txs.push(tx);
        }
    })
    .await
    .unwrap();
    assert!(
        largest <= drc::redis::rdb::CHUNK * 2 + 2,
        "a command of {largest} arguments"
    );
    for tx in &txs {
        b.apply_snapshot(
            "a",
            tx,
            &SnapshotMark {
                replid: replid.clone(),
                offset,
                kafka: None,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        b.position("a").await.unwrap(),
        None,
        "no position before the snapshot is whole"
    );
    let pos = RedisPos {
        replid: replid.clone(),
        offset,
        db: 0,
        ..Default::default()
    };
    let empty = RedisTx {
        commands: vec![],
        offset,
        applier: false,
        refused: None,
    };
    b.apply("a", &empty, &pos).await.unwrap();
    assert_eq!(b.position("a").await.unwrap(), Some(pos.clone()));

    // the stream after the snapshot
    cli12("6381", "SADD big after\nSET end:marker done\n");
    let mut g = Grouper::new(0);
    loop {
        let c = tokio::time::timeout(Duration::from_secs(10), a.next_command())
            .await
            .unwrap()
            .unwrap();
        let Some(tx) = g.push(c) else { continue };
        if !tx.commands.iter().all(|(d, _)| *d == 12) {
            continue;
        }
        let done = tx
            .commands
            .iter()
            .any(|(_, c)| c.get(1).map(|k| k.as_slice()) == Some(b"end:marker"));
        let p = RedisPos {
            replid: a.replid.clone(),
            offset: tx.offset,
            db: g.db(),
            ..Default::default()
        };
        b.apply("a", &tx, &p).await.unwrap();
        if done {
            break;
        }
    }
    let state = |port: &str| {
        let mut v: Vec<String> = cli12(
            port,
            "KEYS *\nGET s\nGET n\nLRANGE l 0 -1\nHGETALL h\nZRANGE z 0 -1 WITHSCORES\nSMEMBERS small\nSCARD big\nSISMEMBER big after\nSISMEMBER big stale\nGET end:marker\n",
        )
        .lines()
        .map(str::to_string)
        .collect();
        v.sort();
        v
    };
    let (sa, mut sb) = (state("6381"), state("6382"));
    // zone b's own key stays (active-active: it is b's write, b's capture ships it);
    // a key the snapshot holds is replaced whole (b's member "stale" of `big` went)
    let own = sb.iter().position(|k| k == "stale:in:b").expect("b's own key kept");
    sb.remove(own);
    assert_eq!(sa, sb);
    assert!(sa.contains(&"200001".to_string()), "{sa:?}");
    let ttl: i64 = cli12("6382", "PTTL s\n").trim().parse().unwrap();
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "the expiry crossed: {ttl}");
    cli12("6381", "FLUSHDB\n");
    cli12("6382", "FLUSHDB\n");
}

/// A batch of origin transactions in one MULTI/EXEC: a command this zone refuses
/// (WRONGTYPE: the key holds another type here) is counted, everything else of the
/// batch and the position after its last transaction apply.
#[tokio::test]
async fn a_batch_applies_around_a_refused_command_and_stores_the_last_position() {
    let cli13 = |port: &str, commands: &str| redis_cli(port, 13, commands);
    cli13("6382", "FLUSHDB\nSET wt plain\n");
    let mut b = RedisApplier::connect(&Endpoint::plain("127.0.0.1:6382")).await.unwrap();
    let tx = |args: &[&str]| RedisTx {
        commands: vec![(13, args.iter().map(|a| a.as_bytes().to_vec()).collect())],
        ..Default::default()
    };
    let pos = |offset| RedisPos {
        replid: "r".repeat(40),
        offset,
        db: 13,
        ..Default::default()
    };
    let batch = vec![
        (tx(&["SET", "one", "1"]), pos(100)),
        (tx(&["HSET", "wt", "f", "v"]), pos(200)),
        (tx(&["INCRBY", "n", "5"]), pos(300)),
    ];
    assert!(b.apply_batch("batchtest", &batch).await.unwrap());
    assert_eq!(b.refused, 1, "the HSET of a string is refused and counted");
    assert_eq!(cli13("6382", "GET one\nGET wt\nGET n\n"), "1\nplain\n5\n");
    let stored = b.position("batchtest").await.unwrap().unwrap();
    assert_eq!(stored.offset, 300, "the position after the last transaction");
    redis_cli("6382", 0, "DEL drc:pos:batchtest\n");
    cli13("6382", "FLUSHDB\n");
}

/// A batch applied after `WATCH` (later-write-wins judges it first): a watched key
/// written by another client in between makes the whole batch not run, position
/// included, and says so; watched again and untouched, it applies.
#[tokio::test]
async fn a_watched_batch_runs_only_when_its_keys_were_not_written_meanwhile() {
    let cli14 = |port: &str, commands: &str| redis_cli(port, 14, commands);
    cli14("6382", "FLUSHDB\n");
    redis_cli("6382", 0, "DEL drc:pos:watchtest\n");
    let mut b = RedisApplier::connect(&Endpoint::plain("127.0.0.1:6382")).await.unwrap();
    let batch = vec![(
        RedisTx {
            commands: vec![(14, vec![b"SET".to_vec(), b"w".to_vec(), b"drc".to_vec()])],
            ..Default::default()
        },
        RedisPos {
            replid: "r".repeat(40),
            offset: 10,
            db: 14,
            ..Default::default()
        },
    )];
    b.watch(&[(14, b"w".to_vec())]).await.unwrap();
    cli14("6382", "SET w local\n");
    assert!(
        !b.apply_batch("watchtest", &batch).await.unwrap(),
        "a watched key changed: not applied"
    );
    assert_eq!(cli14("6382", "GET w\n"), "local\n");
    assert!(b.position("watchtest").await.unwrap().is_none(), "nor the position");
    b.watch(&[(14, b"w".to_vec())]).await.unwrap();
    assert!(b.apply_batch("watchtest", &batch).await.unwrap());
    assert_eq!(cli14("6382", "GET w\n"), "drc\n");
    assert_eq!(b.position("watchtest").await.unwrap().unwrap().offset, 10);
    redis_cli("6382", 0, "DEL drc:pos:watchtest\n");
    cli14("6382", "FLUSHDB\n");
}
