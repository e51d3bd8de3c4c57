//! drc as a replica of a real redis-server (7.0, the testenv's zone b on
//! 127.0.0.1:6382, `testenv/up.sh --redis`): the full sync's snapshot holds the keys
//! written before; the commands written after arrive in order with the replication
//! offset the server reports (`master_repl_offset`), a script's effects as one
//! transaction; a reconnect with `PSYNC <replid>
//! <offset>` continues right after the last command read (nothing missed, nothing
//! repeated), both with a diskless (EOF-marked) and a disk-based (length-framed)
//! snapshot.
//!
//! Run: `testenv/up.sh --redis && cargo nextest run --test redis_replica`.

mod common;

use common::redis::redis_cli;
use drc::redis::endpoint::Endpoint;
use drc::redis::rdb::RdbItem;
use drc::redis::replica::{Replica, StreamCommand, Sync};
use drc::redis::stream::Grouper;
use std::time::Duration;

const ADDR: &str = "127.0.0.1:6382";
const DB: u64 = 9;

fn cli(commands: &str) -> String {
    redis_cli("6382", DB, commands)
}

fn master_offset() -> u64 {
    cli("INFO replication\n")
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("master_repl_offset")
}

/// Reads commands until one named `name` with first argument `arg` arrives.
async fn until(r: &mut Replica, name: &str, arg: &str) -> Vec<StreamCommand> {
    let mut seen = Vec::new();
    loop {
        let c = tokio::time::timeout(Duration::from_secs(10), r.next_command())
            .await
            .expect("a command within 10 s")
            .unwrap();
        let done = c.name() == name && c.args.get(1).map(|a| a.as_slice()) == Some(arg.as_bytes());
        seen.push(c);
        if done {
            return seen;
        }
    }
}

/// The commands of `seen` that write data, as text.
fn data_commands(seen: &[StreamCommand]) -> Vec<Vec<String>> {
    seen.iter()
        .filter(|c| !matches!(c.name().as_str(), "PING" | "REPLCONF" | "SELECT"))
        .map(|c| c.args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .collect()
}

async fn full_sync_then_continue(diskless: bool) {
    cli(&format!(
        "CONFIG SET repl-diskless-sync {}\nCONFIG SET repl-diskless-sync-delay 0\nFLUSHDB\nSET before:1 one\nRPUSH before:list a b c\n",
        if diskless { "yes" } else { "no" }
    ));
    let (mut r, sync) = Replica::connect(&Endpoint::plain(ADDR), None).await.unwrap();
    let Sync::Full { replid, offset } = sync.clone() else {
        panic!("a first sync is full: {sync:?}")
    };
    let mut keys = Vec::new();
    let mut ended = false;
    r.snapshot(|item| match item {
        RdbItem::Key { db, key, .. } if db == DB => keys.push(String::from_utf8_lossy(&key).into_owned()),
        RdbItem::End => ended = true,
        _ => {}
    })
    .await
    .unwrap();
    assert!(ended);
    keys.sort();
    assert_eq!(keys, ["before:1", "before:list"]);
    assert_eq!(r.offset, offset);

    // commands after the snapshot, in order, with the server's offsets
    cli("SET after:1 x\nINCR after:counter\nMULTI\nSET after:2 y\nDEL before:1\nEXEC\nSET after:last z\n");
    let seen = until(&mut r, "SET", "after:last").await;
    let writes = data_commands(&seen);
    assert_eq!(
        writes,
        vec![
            vec!["SET", "after:1", "x"],
            vec!["INCR", "after:counter"],
            vec!["MULTI"],
            vec!["SET", "after:2", "y"],
            vec!["DEL", "before:1"],
            vec!["EXEC"],
            vec!["SET", "after:last", "z"],
        ]
    );
    // a script's effects arrive as one transaction (Redis 7 wraps them in MULTI/EXEC)
    cli("EVAL \"redis.call('SET', 'after:script', 's') redis.call('INCR', 'after:counter')\" 0\nSET after:marker m\n");
    let seen = until(&mut r, "SET", "after:marker").await;
    // (the stream selected the database before: the grouper continues from there,
    // as it would from a stored position)
    let mut g = Grouper::new(DB);
    let txs: Vec<_> = seen.into_iter().filter_map(|c| g.push(c)).collect();
    let names = |t: &drc::redis::stream::RedisTx| {
        t.commands
            .iter()
            .map(|(db, a)| format!("{db} {}", String::from_utf8_lossy(&a[0]).to_ascii_uppercase()))
            .collect::<Vec<_>>()
    };
    assert_eq!(txs.len(), 2, "{txs:?}");
    assert_eq!(names(&txs[0]), [format!("{DB} SET"), format!("{DB} INCR")]);
    assert_eq!(names(&txs[1]), [format!("{DB} SET")]);
    assert!(txs.iter().all(|t| !t.applier && t.refused.is_none()));
    let at = r.offset;
    assert_eq!(at, master_offset(), "the offset after the last command is the server's");
    r.ack(at).await.unwrap();
    drop(r);

    // a reconnect from (replid, offset) continues after the last command read
    cli("SET gap:1 while-away\n");
    let (mut r, sync) = Replica::connect(&Endpoint::plain(ADDR), Some((&replid, at)))
        .await
        .unwrap();
    assert!(
        matches!(sync, Sync::Continue { offset, .. } if offset == at),
        "{sync:?}"
    );
    cli("SET after:reconnect w\n");
    let seen = until(&mut r, "SET", "after:reconnect").await;
    let writes = data_commands(&seen);
    assert_eq!(
        writes,
        vec![vec!["SET", "gap:1", "while-away"], vec!["SET", "after:reconnect", "w"]],
        "nothing missed, nothing repeated"
    );
    assert_eq!(r.offset, master_offset());
    drop(r);
    cli("FLUSHDB\nCONFIG SET repl-diskless-sync yes\n");
}

#[tokio::test]
async fn full_sync_commands_and_continuation_from_an_offset() {
    full_sync_then_continue(true).await;
    full_sync_then_continue(false).await;
}

/// A server restarted from its own snapshot (`SHUTDOWN SAVE`) continues its stream
/// from its last offset with a backlog that starts at the next byte: a replica that
/// had read everything continues without a full sync (drc asks, as Redis's replicas
/// do, for the next byte: `PSYNC <replid> <offset + 1>`).
#[tokio::test]
async fn a_restarted_server_continues_its_stream_for_a_replica_that_read_it_all() {
    cli("SET restart:before 1\n");
    let (mut r, sync) = Replica::connect(&Endpoint::plain(ADDR), None).await.unwrap();
    assert!(matches!(sync, Sync::Full { .. }), "{sync:?}");
    r.snapshot(|_| {}).await.unwrap();
    cli("SET restart:last 2\n");
    until(&mut r, "SET", "restart:last").await;
    // the server's PINGs and GETACKs count too: read until it has nothing more
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), r.next_command()).await {}
    let (replid, at) = (r.replid.clone(), r.offset);
    assert_eq!(at, master_offset(), "read to the end of the stream");
    drop(r);
    common::redis::restart_redis(6382);
    let (mut r, sync) = Replica::connect(&Endpoint::plain(ADDR), Some((&replid, at)))
        .await
        .unwrap();
    assert!(
        matches!(sync, Sync::Continue { offset, .. } if offset == at),
        "a restarted server continues its stream: {sync:?}"
    );
    cli("SET restart:after 3\n");
    let seen = until(&mut r, "SET", "restart:after").await;
    assert_eq!(
        data_commands(&seen),
        vec![vec!["SET", "restart:after", "3"]],
        "nothing missed, nothing repeated"
    );
    assert_eq!(r.offset, master_offset());
    cli("DEL restart:before restart:last restart:after\n");
}
