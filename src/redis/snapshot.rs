//! A full sync's snapshot as transactions for the peer: every key of the chosen
//! databases is replaced — `DEL` first, then its value in chunks (`SET`, `RPUSH`,
//! `SADD`, `HSET`, `ZADD` of at most `rdb::CHUNK` elements), then its absolute
//! expiry (`PEXPIREAT`) — so a million-member set crosses with the memory of one
//! chunk, and applying a key twice (a snapshot started again after a crash) leaves it
//! as the snapshot had it. A key already expired is left out.
//!
//! Each transaction is applied like any origin transaction, marker first
//! ([`super::apply::RedisApplier::apply_snapshot`]), so the peer's capture never
//! ships it back; the position after the snapshot is written with its last
//! transaction (`RedisApplier::apply` of an empty transaction after it), so a crash before then makes the next start
//! sync in full again.

use super::rdb::{Kind, RdbItem};
use super::stream::RedisTx;

/// Which keys a snapshot carries: (database, key name) → synced.
pub type KeyFilter = Box<dyn Fn(u64, &[u8]) -> bool + Send>;

/// Turns snapshot items into transactions.
pub struct Snapshot {
    /// Which keys are synced (database, name).
    keep: KeyFilter,
    /// The current key: database, name, type, expiry; `None` when skipped.
    key: Option<(u64, Vec<u8>, Kind, Option<i64>)>,
    now_ms: i64,
    /// Keys replaced so far.
    pub keys: u64,
}

impl Snapshot {
    pub fn new(keep: impl Fn(u64, &[u8]) -> bool + Send + 'static) -> Snapshot {
        Snapshot {
            keep: Box::new(keep),
            key: None,
            now_ms: chrono::Utc::now().timestamp_millis(),
            keys: 0,
        }
    }

    /// The transaction `item` makes, if any.
    pub fn push(&mut self, item: RdbItem) -> Option<RedisTx> {
        let tx = |db: u64, commands: Vec<Vec<Vec<u8>>>| RedisTx {
            commands: commands.into_iter().map(|c| (db, c)).collect(),
            offset: 0,
            applier: false,
            refused: None,
        };
        match item {
            RdbItem::Key {
                db,
                key,
                kind,
                expire_at_ms,
            } => {
                if !(self.keep)(db, &key) || expire_at_ms.is_some_and(|t| t <= self.now_ms) {
                    self.key = None;
                    return None;
                }
                self.keys += 1;
                self.key = Some((db, key.clone(), kind, expire_at_ms));
                Some(tx(db, vec![vec![b"DEL".to_vec(), key]]))
            }
            RdbItem::KeyEnd => {
                let (db, key, _, expire) = self.key.take()?;
                let at = expire?;
                Some(tx(
                    db,
                    vec![vec![b"PEXPIREAT".to_vec(), key, at.to_string().into_bytes()]],
                ))
            }
            RdbItem::Str(v) => {
                let (db, key, ..) = self.key.as_ref()?;
                Some(tx(*db, vec![vec![b"SET".to_vec(), key.clone(), v]]))
            }
            RdbItem::List(v) => self.many(b"RPUSH", v.into_iter().map(|e| vec![e])),
            RdbItem::Set(v) => self.many(b"SADD", v.into_iter().map(|e| vec![e])),
            RdbItem::Hash(v) => self.many(b"HSET", v.into_iter().map(|(f, x)| vec![f, x])),
            RdbItem::Zset(v) => self.many(b"ZADD", v.into_iter().map(|(m, s)| vec![score_text(s).into_bytes(), m])),
            RdbItem::Aux(..) | RdbItem::Db(_) | RdbItem::End => None,
        }
    }

    /// One command adding `elements` (each one or more arguments) to the current key.
    fn many(&self, cmd: &[u8], elements: impl Iterator<Item = Vec<Vec<u8>>>) -> Option<RedisTx> {
        let (db, key, ..) = self.key.as_ref()?;
        let mut c = vec![cmd.to_vec(), key.clone()];
        for e in elements {
            c.extend(e);
        }
        if c.len() == 2 {
            return None;
        }
        Some(RedisTx {
            commands: vec![(*db, c)],
            offset: 0,
            applier: false,
            refused: None,
        })
    }
}

/// A score as ZADD takes it, exactly (shortest text that reads back the same double).
fn score_text(s: f64) -> String {
    if s == f64::INFINITY {
        "+inf".into()
    } else if s == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_replaced_in_chunks_and_gets_its_expiry() {
        let mut s = Snapshot::new(|db, _| db == 3);
        let far = chrono::Utc::now().timestamp_millis() + 3_600_000;
        let mut out = Vec::new();
        for item in [
            RdbItem::Db(3),
            RdbItem::Key {
                db: 3,
                key: b"s".to_vec(),
                kind: Kind::Set,
                expire_at_ms: Some(far),
            },
            RdbItem::Set(vec![b"a".to_vec(), b"b".to_vec()]),
            RdbItem::Set(vec![b"c".to_vec()]),
            RdbItem::KeyEnd,
            // another database, and a key already expired: left out
            RdbItem::Key {
                db: 4,
                key: b"x".to_vec(),
                kind: Kind::String,
                expire_at_ms: None,
            },
            RdbItem::Str(b"1".to_vec()),
            RdbItem::KeyEnd,
            RdbItem::Key {
                db: 3,
                key: b"old".to_vec(),
                kind: Kind::String,
                expire_at_ms: Some(1),
            },
            RdbItem::Str(b"1".to_vec()),
            RdbItem::KeyEnd,
        ] {
            out.extend(s.push(item));
        }
        let cmds: Vec<String> = out
            .iter()
            .flat_map(|t| t.commands.iter())
            .map(|(db, c)| {
                format!(
                    "{db} {}",
                    c.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })
            .collect();
        assert_eq!(
            cmds,
            [
                "3 DEL s".to_string(),
                "3 SADD s a b".to_string(),
                "3 SADD s c".to_string(),
                format!("3 PEXPIREAT s {far}"),
            ]
        );
        assert_eq!(s.keys, 1);
        assert_eq!(score_text(1.5), "1.5");
        assert_eq!(score_text(-100.0), "-100.0");
        assert_eq!(score_text(f64::NEG_INFINITY), "-inf");
    }
}
