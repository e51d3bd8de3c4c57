//! Redis items on Kafka (`drc-redis-v1`): one message is a MessagePack array of
//! items, either consecutive origin transactions (a batch the publisher gathered)
//! or one item of a full sync. Keys and values travel as MessagePack binaries;
//! struct fields by name, so a reader can tell a field it does not know.
//!
//! A message is applied whole by the consumer (one MULTI/EXEC, or one full-sync
//! step), so the Kafka offset stored with the position names a message applied
//! entirely. The origin position of every transaction travels with it: a publisher
//! that restarts and publishes again what the broker already had is recognised
//! (its transactions' offsets are not past the stored one) and skipped.

use super::apply::RedisPos;
use super::source::RedisItem;
use super::stream::RedisTx;
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};

/// The `drc-format` header of a Redis message.
pub const FORMAT: &str = "drc-redis-v1";

#[derive(Serialize)]
struct Command<'a> {
    db: u64,
    args: Vec<&'a Bytes>,
}

#[derive(Deserialize)]
struct OwnedCommand {
    db: u64,
    args: Vec<ByteBuf>,
}

#[derive(Serialize)]
enum Item<'a> {
    Tx {
        commands: Vec<Command<'a>>,
        pos: &'a RedisPos,
        heartbeat_ms: Option<i64>,
    },
    SyncStart {
        replid: &'a str,
        offset: u64,
        peer_pos: Vec<(&'a str, &'a RedisPos)>,
    },
    Snapshot {
        commands: Vec<Command<'a>>,
        key: Option<(u64, &'a Bytes)>,
    },
    SyncEnd {
        pos: &'a RedisPos,
    },
}

#[derive(Deserialize)]
enum OwnedItem {
    Tx {
        commands: Vec<OwnedCommand>,
        pos: RedisPos,
        heartbeat_ms: Option<i64>,
    },
    SyncStart {
        replid: String,
        offset: u64,
        peer_pos: Vec<(String, RedisPos)>,
    },
    Snapshot {
        commands: Vec<OwnedCommand>,
        key: Option<(u64, ByteBuf)>,
    },
    SyncEnd {
        pos: RedisPos,
    },
}

fn commands(tx: &RedisTx) -> Vec<Command<'_>> {
    tx.commands
        .iter()
        .map(|(db, args)| Command {
            db: *db,
            args: args.iter().map(|a| Bytes::new(a)).collect(),
        })
        .collect()
}

fn owned(commands: Vec<OwnedCommand>, offset: u64) -> RedisTx {
    RedisTx {
        commands: commands
            .into_iter()
            .map(|c| (c.db, c.args.into_iter().map(ByteBuf::into_vec).collect()))
            .collect(),
        offset,
        ..Default::default()
    }
}

/// Encodes `items` as one message.
pub fn encode(items: &[RedisItem]) -> Vec<u8> {
    let wire: Vec<Item<'_>> = items
        .iter()
        .map(|i| match i {
            RedisItem::Tx { tx, pos, heartbeat_ms } => Item::Tx {
                commands: commands(tx),
                pos,
                heartbeat_ms: *heartbeat_ms,
            },
            RedisItem::SyncStart { sync, peer_pos } => Item::SyncStart {
                replid: &sync.0,
                offset: sync.1,
                peer_pos: peer_pos.iter().map(|(z, p)| (z.as_str(), p)).collect(),
            },
            RedisItem::Snapshot { tx, key } => Item::Snapshot {
                commands: commands(tx),
                key: key.as_ref().map(|(db, k)| (*db, Bytes::new(k))),
            },
            RedisItem::SyncEnd { pos } => Item::SyncEnd { pos },
        })
        .collect();
    rmp_serde::to_vec_named(&wire).expect("Redis items serialize")
}

/// Decodes a message; the error says what is wrong with it.
pub fn decode(payload: &[u8]) -> Result<Vec<RedisItem>, String> {
    let wire: Vec<OwnedItem> = rmp_serde::from_slice(payload).map_err(|e| format!("not a {FORMAT} message: {e}"))?;
    let mut out = Vec::with_capacity(wire.len());
    for i in wire {
        out.push(match i {
            OwnedItem::Tx {
                commands,
                pos,
                heartbeat_ms,
            } => {
                if commands.iter().any(|c| c.args.is_empty()) {
                    return Err(format!("{FORMAT}: a command without a name"));
                }
                RedisItem::Tx {
                    tx: owned(commands, pos.offset),
                    pos,
                    heartbeat_ms,
                }
            }
            OwnedItem::SyncStart {
                replid,
                offset,
                peer_pos,
            } => RedisItem::SyncStart {
                sync: (replid, offset),
                peer_pos,
            },
            OwnedItem::Snapshot { commands, key } => {
                if commands.iter().any(|c| c.args.is_empty()) {
                    return Err(format!("{FORMAT}: a command without a name"));
                }
                RedisItem::Snapshot {
                    tx: owned(commands, 0),
                    key: key.map(|(db, k)| (db, k.into_vec())),
                }
            }
            OwnedItem::SyncEnd { pos } => RedisItem::SyncEnd { pos },
        });
    }
    // transactions only, or one step of a full sync (applied whole: the offset stored
    // with the position names a message applied entirely)
    if out.is_empty() || (out.len() > 1 && out.iter().any(|i| !matches!(i, RedisItem::Tx { .. }))) {
        return Err(format!(
            "{FORMAT}: a message holds transactions or one step of a full sync, not {} items of which {} are not transactions",
            out.len(),
            out.iter().filter(|i| !matches!(i, RedisItem::Tx { .. })).count()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> RedisPos {
        RedisPos {
            replid: "r".repeat(40),
            offset,
            db: 3,
            kafka: None,
            clock: 1_700_000_000_123,
            seen: vec![(
                "b".into(),
                RedisPos {
                    replid: "s".repeat(40),
                    offset: 9,
                    clock: 1_700_000_000_001,
                    ..Default::default()
                },
            )],
        }
    }

    #[test]
    fn items_cross_unchanged_with_binary_keys_and_values() {
        let tx = RedisTx {
            commands: vec![
                (3, vec![b"SET".to_vec(), vec![0, 255, 10], vec![0xc3, 0x28]]),
                (0, vec![b"INCR".to_vec(), b"counter:x".to_vec()]),
            ],
            offset: 77,
            ..Default::default()
        };
        let items = vec![
            RedisItem::Tx {
                tx: tx.clone(),
                pos: pos(77),
                heartbeat_ms: None,
            },
            RedisItem::Tx {
                tx: RedisTx {
                    offset: 90,
                    ..Default::default()
                },
                pos: pos(90),
                heartbeat_ms: Some(1_700_000_000_000),
            },
            RedisItem::SyncStart {
                sync: ("s".repeat(40), 5),
                peer_pos: vec![("b".into(), pos(12))],
            },
            RedisItem::Snapshot {
                tx: RedisTx {
                    commands: vec![(1, vec![b"RPUSH".to_vec(), b"l".to_vec(), vec![]])],
                    ..Default::default()
                },
                key: Some((1, b"l".to_vec())),
            },
            RedisItem::SyncEnd { pos: pos(5) },
        ];
        let (txs, steps) = items.split_at(2);
        let back = decode(&encode(txs)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{txs:?}"));
        for step in steps {
            let one = std::slice::from_ref(step);
            assert_eq!(format!("{:?}", decode(&encode(one)).unwrap()), format!("{one:?}"));
        }
        // a full sync's step among transactions would be split when applied: refused
        assert!(decode(&encode(&items)).unwrap_err().contains("not 5 items"));
        assert!(decode(&encode(&[])).is_err());
    }

    #[test]
    fn garbage_and_truncated_messages_are_errors_not_panics() {
        let good = encode(&[RedisItem::SyncEnd { pos: pos(1) }]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(b"{\"not\":\"msgpack\"}").is_err());
        // a huge announced array length does not allocate it
        assert!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        // a command without a name
        let bad = rmp_serde::to_vec_named(&vec![Item::Snapshot {
            commands: vec![Command { db: 0, args: vec![] }],
            key: None,
        }])
        .unwrap();
        assert!(decode(&bad).unwrap_err().contains("without a name"));
    }
}
