//! Anti-entropy between two zones' Redis (`drc redis verify`): the synced keys of both
//! are read and compared by content, differences are re-checked after a settle time
//! (a change still in flight is not a difference), and, with repair, keys that have a
//! home zone (`[redis.homes]`) are made the home's version in the other zone.
//!
//! # What is compared
//! Per key: its type, its content in a canonical form (a hash's fields and a set's
//! members sorted, a sorted set's members with their scores in order, a list in
//! order; other types by `DUMP`) and its absolute expiry (`PEXPIRETIME`, within
//! 1 s). Each key is read whole: memory is that of the largest key plus every key
//! name of both zones (one database at a time).
//!
//! # Repair
//! A differing key with a home zone gets the home's version in the other zone:
//! `RESTORE … REPLACE ABSTTL` of the home's `DUMP` (or `DEL` when the home has none),
//! in one MULTI/EXEC that starts with `SET drc:mark:repair <ms>` in database 0, so the
//! other zone's capture treats it as drc's own and never ships it back. A differing key
//! without a home is reported, not changed: only a rule can choose (give its pattern a
//! home, or make it a counter).

use super::scope::Scope;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;
use wildmatch::WildMatch;

/// First write of drc's repair transactions (database 0): marks them as drc's own.
pub const REPAIR_MARK: &[u8] = b"drc:mark:repair";

/// One key's state in one zone: type, content digest, absolute expiry (ms, -1: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub kind: String,
    pub digest: u64,
    pub expire_at_ms: i64,
}

impl KeyState {
    fn same(&self, o: &KeyState) -> bool {
        self.kind == o.kind
            && self.digest == o.digest
            && (self.expire_at_ms == o.expire_at_ms
                || (self.expire_at_ms > 0 && o.expire_at_ms > 0 && (self.expire_at_ms - o.expire_at_ms).abs() <= 1000))
    }
}

/// A key that differs after the settle time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Difference {
    pub db: u64,
    pub key: String,
    /// `type/digest/expiry` in each zone, or `missing`.
    pub local: String,
    pub peer: String,
    /// The key's home zone, if its pattern has one.
    pub home: Option<String>,
    /// Made the home's version by this run.
    pub repaired: bool,
}

/// What a verify run found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub keys_local: u64,
    pub keys_peer: u64,
    pub differences: Vec<Difference>,
}

/// Home zones by key pattern.
#[derive(Debug, Clone, Default)]
pub struct Homes(Vec<(WildMatch, String)>);

impl Homes {
    pub fn new(map: &BTreeMap<String, String>) -> Homes {
        Homes(map.iter().map(|(p, z)| (WildMatch::new(p), z.clone())).collect())
    }

    /// The home zone of `key`, if its pattern has one (the first matching pattern).
    pub fn of(&self, key: &[u8]) -> Option<&str> {
        let k = String::from_utf8_lossy(key);
        self.0.iter().find(|(p, _)| p.matches(&k)).map(|(_, z)| z.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{addr}: {source}")]
pub struct VerifyError {
    pub addr: String,
    pub source: redis::RedisError,
}

/// One side of the comparison.
pub struct Side {
    pub zone: String,
    pub addr: String,
    con: redis::aio::MultiplexedConnection,
}

impl Side {
    pub async fn connect(zone: &str, server: &super::endpoint::Endpoint) -> Result<Side, VerifyError> {
        let con = server.connection().await.map_err(|source| VerifyError {
            addr: server.addr.clone(),
            source,
        })?;
        Ok(Side {
            zone: zone.to_string(),
            addr: server.addr.clone(),
            con,
        })
    }

    fn err(&self, source: redis::RedisError) -> VerifyError {
        VerifyError {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Every key of `db` in scope.
    async fn keys(&mut self, db: u64, scope: &Scope) -> Result<BTreeSet<Vec<u8>>, VerifyError> {
        let mut out = BTreeSet::new();
        let mut cursor = 0u64;
        loop {
            let mut p = redis::pipe();
            p.cmd("SELECT").arg(db).ignore();
            p.cmd("SCAN").arg(cursor).arg("COUNT").arg(1000);
            let ((next, keys),): ((u64, Vec<Vec<u8>>),) =
                p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
            out.extend(keys.into_iter().filter(|k| scope.covers(db, k)));
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// The state of one key (`None`: no such key).
    async fn state(&mut self, db: u64, key: &[u8]) -> Result<Option<KeyState>, VerifyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(db).ignore();
        p.cmd("TYPE").arg(key);
        p.cmd("PEXPIRETIME").arg(key);
        let (kind, expire_at_ms): (String, i64) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let c = &mut self.con;
        let r: redis::RedisResult<()> = async {
            match kind.as_str() {
                "none" => {}
                "string" => redis::cmd("GET").arg(key).query_async::<Vec<u8>>(c).await?.hash(&mut h),
                "list" => redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<Vec<u8>>>(c)
                    .await?
                    .hash(&mut h),
                "set" => {
                    let mut m: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query_async(c).await?;
                    m.sort();
                    m.hash(&mut h);
                }
                "hash" => {
                    let mut m: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL").arg(key).query_async(c).await?;
                    m.sort();
                    m.hash(&mut h);
                }
                "zset" => redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async::<Vec<Vec<u8>>>(c)
                    .await?
                    .hash(&mut h),
                _ => redis::cmd("DUMP")
                    .arg(key)
                    .query_async::<Vec<u8>>(c)
                    .await?
                    .hash(&mut h),
            }
            Ok(())
        }
        .await;
        r.map_err(|e| self.err(e))?;
        if kind == "none" {
            return Ok(None);
        }
        Ok(Some(KeyState {
            kind,
            digest: h.finish(),
            expire_at_ms,
        }))
    }

    /// Makes `key` here what `from` has (`DUMP`/`RESTORE`, or `DEL`), marked as drc's.
    async fn copy_from(&mut self, from: &mut Side, db: u64, key: &[u8]) -> Result<(), VerifyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(db).ignore();
        p.cmd("DUMP").arg(key);
        p.cmd("PEXPIRETIME").arg(key);
        let (dump, at): (Option<Vec<u8>>, i64) = p.query_async(&mut from.con).await.map_err(|e| from.err(e))?;
        let mut t = redis::pipe();
        t.atomic();
        t.cmd("SELECT").arg(0).ignore();
        t.cmd("SET")
            .arg(REPAIR_MARK)
            .arg(chrono::Utc::now().timestamp_millis())
            .ignore();
        t.cmd("SELECT").arg(db).ignore();
        match dump {
            Some(d) => {
                t.cmd("RESTORE")
                    .arg(key)
                    .arg(at.max(0))
                    .arg(d)
                    .arg("REPLACE")
                    .arg("ABSTTL")
                    .ignore();
            }
            None => {
                t.cmd("DEL").arg(key).ignore();
            }
        }
        t.query_async::<()>(&mut self.con).await.map_err(|e| self.err(e))
    }
}

fn show(s: &Option<KeyState>) -> String {
    match s {
        None => "missing".into(),
        Some(s) => format!("{} {:016x} expire_at_ms={}", s.kind, s.digest, s.expire_at_ms),
    }
}

/// Compares the keys in `scope` of `local` and `peer`; differences are re-checked
/// after `settle`; with `repair`, keys with a home get the home's version.
pub async fn verify(
    local: &mut Side,
    peer: &mut Side,
    scope: &Scope,
    homes: &Homes,
    settle: Duration,
    repair: bool,
) -> Result<Report, VerifyError> {
    let mut report = Report::default();
    let mut suspects = Vec::new();
    for &db in scope.databases() {
        let (lk, pk) = (local.keys(db, scope).await?, peer.keys(db, scope).await?);
        report.keys_local += lk.len() as u64;
        report.keys_peer += pk.len() as u64;
        for k in lk.union(&pk) {
            let (l, p) = (local.state(db, k).await?, peer.state(db, k).await?);
            let same = match (&l, &p) {
                (Some(a), Some(b)) => a.same(b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                suspects.push((db, k.clone()));
            }
        }
    }
    if suspects.is_empty() {
        return Ok(report);
    }
    tokio::time::sleep(settle).await;
    for (db, k) in suspects {
        let (l, p) = (local.state(db, &k).await?, peer.state(db, &k).await?);
        let same = match (&l, &p) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        let home = homes.of(&k).map(str::to_string);
        let mut repaired = false;
        if repair {
            if home.as_deref() == Some(local.zone.as_str()) {
                peer.copy_from(local, db, &k).await?;
                repaired = true;
            } else if home.as_deref() == Some(peer.zone.as_str()) {
                local.copy_from(peer, db, &k).await?;
                repaired = true;
            }
        }
        report.differences.push(Difference {
            db,
            key: String::from_utf8_lossy(&k).into_owned(),
            local: show(&l),
            peer: show(&p),
            home,
            repaired,
        });
    }
    Ok(report)
}
