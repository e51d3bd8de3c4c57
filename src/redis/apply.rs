//! Applies a peer zone's Redis transactions to this zone's Redis, exactly once and
//! loop-free: each origin transaction ([`RedisTx`]) is one `MULTI … EXEC` that first
//! selects database 0 and sets `drc:pos:<origin>` to the origin position after it
//! (replid, offset, selected database), then runs the commands in their databases.
//! The position commits with the commands, so a restart that resumes the origin's
//! stream from it ([`RedisApplier::position`]) neither misses nor repeats a command
//! (an INCR is applied once); and since the position key is the transaction's first
//! write, this zone's capture recognises the transaction as the applier's and never
//! ships it back (`stream.rs`).
//!
//! A command the origin ran and this zone refuses inside the transaction (e.g.
//! WRONGTYPE: the key holds another type here) does not stop the direction: Redis runs
//! the transaction's other commands and the position; the refusal is counted and
//! logged, and the zones differ on that key until it is written again.

use super::endpoint::Endpoint;
use super::stream::{RedisTx, MARKER_PREFIX};
use redis::aio::MultiplexedConnection;

/// A position in an origin's command stream.
///
/// Besides (replid, offset, database) it carries what the stream had said up to
/// there, so that a capture resumed from it judges the next transactions exactly as
/// an uninterrupted one would (later-write-wins, `redis/lww.rs`): `clock`, the origin
/// daemon's last heartbeat value (ms) before this point, and `seen`, per zone, how
/// far the origin had applied that zone's stream (the last `drc:pos:<zone>` the
/// stream set).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RedisPos {
    pub replid: String,
    pub offset: u64,
    /// The database the stream had selected there.
    pub db: u64,
    /// Over Kafka, in `drc:pos:<origin>` only: the offset of the message that carried
    /// it (the consumer resumes after it). Never part of a message.
    #[serde(skip)]
    pub kafka: Option<i64>,
    /// The origin's last heartbeat (ms since the epoch) before this point; 0: none.
    #[serde(default)]
    pub clock: i64,
    /// Per zone, the position of that zone's stream the origin had applied here
    /// (their own `seen` empty).
    #[serde(default)]
    pub seen: Vec<(String, RedisPos)>,
}

impl RedisPos {
    /// `<replid> <offset> <db>[ <kafka offset>|- <clock>[ <zone>:<replid>:<offset>:<db>:<clock>…]]`.
    pub fn text(&self) -> String {
        let mut s = format!("{} {} {}", self.replid, self.offset, self.db);
        match self.kafka {
            Some(k) => s += &format!(" {k}"),
            None if self.clock != 0 || !self.seen.is_empty() => s += " -",
            None => {}
        }
        if self.clock != 0 || !self.seen.is_empty() {
            s += &format!(" {}", self.clock);
            for (z, p) in &self.seen {
                s += &format!(" {z}:{}:{}:{}:{}", p.replid, p.offset, p.db, p.clock);
            }
        }
        s
    }

    /// [`RedisPos::text`] read back.
    pub fn parse(s: &str) -> Option<RedisPos> {
        let mut it = s.split_whitespace();
        let mut pos = RedisPos {
            replid: it.next()?.to_string(),
            offset: it.next()?.parse().ok()?,
            db: it.next()?.parse().ok()?,
            kafka: match it.next() {
                None | Some("-") => None,
                Some(k) => Some(k.parse().ok()?),
            },
            ..Default::default()
        };
        if let Some(c) = it.next() {
            pos.clock = c.parse().ok()?;
        }
        for seen in it {
            let f: Vec<&str> = seen.split(':').collect();
            let [zone, replid, offset, db, clock] = f.as_slice() else {
                return None;
            };
            pos.seen.push((
                zone.to_string(),
                RedisPos {
                    replid: replid.to_string(),
                    offset: offset.parse().ok()?,
                    db: db.parse().ok()?,
                    clock: clock.parse().ok()?,
                    ..Default::default()
                },
            ));
        }
        Some(pos)
    }

    /// The same point of the origin's stream (the Kafka offset aside).
    pub fn same_point(&self, other: &RedisPos) -> bool {
        self.replid == other.replid && self.offset == other.offset
    }

    /// How far the origin had applied `zone`'s stream here.
    pub fn seen_of(&self, zone: &str) -> Option<&RedisPos> {
        self.seen.iter().find(|(z, _)| z == zone).map(|(_, p)| p)
    }

    /// Records that the origin applied `zone`'s stream up to `p`.
    pub fn set_seen(&mut self, zone: &str, p: RedisPos) {
        let p = RedisPos {
            kafka: None,
            seen: Vec::new(),
            ..p
        };
        match self.seen.iter_mut().find(|(z, _)| z == zone) {
            Some(e) => e.1 = p,
            None => self.seen.push((zone.to_string(), p)),
        }
    }
}

/// The marker of a full sync being applied (`drc:pos:<origin>` until it ends): the
/// snapshot's (replid, offset) and, over Kafka, the offset to read again from (the
/// message before the sync's start: a crash starts the sync over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMark {
    pub replid: String,
    pub offset: u64,
    pub kafka: Option<i64>,
}

impl SnapshotMark {
    fn text(&self) -> String {
        match self.kafka {
            None => format!("snapshot {} {}", self.replid, self.offset),
            Some(k) => format!("snapshot {} {} {k}", self.replid, self.offset),
        }
    }

    fn parse(s: &str) -> Option<SnapshotMark> {
        let mut it = s.strip_prefix("snapshot ")?.split_whitespace();
        let m = SnapshotMark {
            replid: it.next()?.to_string(),
            offset: it.next()?.parse().ok()?,
            kafka: match it.next() {
                None => None,
                Some(k) => Some(k.parse().ok()?),
            },
        };
        it.next().is_none().then_some(m)
    }
}

/// What `drc:pos:<origin>` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Nothing: a first start.
    Nothing,
    /// The position after the last transaction applied.
    At(RedisPos),
    /// A full sync was under way when the direction stopped.
    Snapshot(SnapshotMark),
}

impl Stored {
    pub fn position(&self) -> Option<&RedisPos> {
        match self {
            Stored::At(p) => Some(p),
            _ => None,
        }
    }

    /// Over Kafka: the offset of the last message applied whole (`None`: read the
    /// topic from its beginning).
    pub fn kafka(&self) -> Option<i64> {
        match self {
            Stored::At(p) => p.kafka,
            Stored::Snapshot(m) => m.kafka,
            Stored::Nothing => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{addr}: {what}")]
pub struct ApplyError {
    pub addr: String,
    pub what: String,
    /// A connection problem (retried) rather than a refusal (the direction stops).
    pub transient: bool,
}

impl From<ApplyError> for crate::error::Error {
    fn from(e: ApplyError) -> Self {
        if e.transient {
            crate::error::Error::Transient {
                addr: e.addr,
                what: e.what,
            }
        } else {
            crate::error::Error::Server {
                addr: e.addr,
                what: e.what,
            }
        }
    }
}

/// Server states that pass: loading its data, busy with a script, out of memory or
/// unable to persist (the operator frees memory or disk), read-only (a failover).
const PASSING: &[&str] = &[
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "OOM",
    "MISCONF",
    "READONLY",
];

/// A connection problem, or a server in a state that passes ([`PASSING`], also when it
/// refused a transaction for it: EXECABORT names the reason): retried from the stored
/// position.
fn is_connection(e: &redis::RedisError) -> bool {
    let passing = |code: Option<&str>| code.is_some_and(|c| PASSING.contains(&c));
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || passing(e.code())
        || (e.code() == Some("EXECABORT") && PASSING.iter().any(|c| e.to_string().contains(&format!("{c} "))))
        || e.clone()
            .into_server_errors()
            .is_some_and(|errs| errs.iter().any(|(_, se)| passing(Some(se.code()))))
}

/// Queues `commands` (database, arguments) on `p`, selecting each command's
/// database when it changes (the pipeline starts in database 0); `ignore`: their
/// replies are not returned.
fn queue<'a>(p: &mut redis::Pipeline, commands: impl Iterator<Item = &'a (u64, Vec<Vec<u8>>)>, ignore: bool) {
    let mut db = 0;
    for (d, args) in commands {
        if *d != db {
            p.cmd("SELECT").arg(*d).ignore();
            db = *d;
        }
        let mut c = redis::cmd(&String::from_utf8_lossy(&args[0]));
        for a in &args[1..] {
            c.arg(a.as_slice());
        }
        p.add_command(c);
        if ignore {
            p.ignore();
        }
    }
}

/// `WATCH` of `keys` (database, name), each after the `SELECT` of its database.
fn watching(keys: &[(u64, Vec<u8>)]) -> redis::Pipeline {
    let mut p = redis::pipe();
    let mut db = None;
    for (d, k) in keys {
        if db != Some(*d) {
            p.cmd("SELECT").arg(*d).ignore();
            db = Some(*d);
        }
        p.cmd("WATCH").arg(k.as_slice()).ignore();
    }
    p
}

/// The sink side of a Redis direction: this zone's Redis.
pub struct RedisApplier {
    con: MultiplexedConnection,
    /// `host:port` (no credentials).
    pub addr: String,
    /// Commands this zone refused inside applied transactions.
    pub refused: u64,
}

impl RedisApplier {
    /// Connects to `server`. A refused TLS certificate is definite (the config must
    /// change), other connection failures transient.
    pub async fn connect(server: &Endpoint) -> Result<RedisApplier, ApplyError> {
        let addr = server.addr.clone();
        let err = |e: redis::RedisError| ApplyError {
            addr: addr.clone(),
            what: e.to_string(),
            transient: is_connection(&e) && !super::endpoint::is_refused(&e),
        };
        let con = server.connection().await.map_err(err)?;
        Ok(RedisApplier { con, addr, refused: 0 })
    }

    fn key(origin: &str) -> Vec<u8> {
        [MARKER_PREFIX, origin.as_bytes()].concat()
    }

    /// The position after the last transaction of `origin` applied here.
    pub async fn position(&mut self, origin: &str) -> Result<Option<RedisPos>, ApplyError> {
        Ok(self.stored(origin).await?.position().cloned())
    }

    /// What is stored for `origin`: the position after its last transaction applied
    /// here, or the marker of a full sync of it under way when it stopped (no
    /// position to continue from).
    pub async fn stored(&mut self, origin: &str) -> Result<Stored, ApplyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(0).ignore();
        p.cmd("GET").arg(Self::key(origin));
        let (v,): (Option<String>,) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        let parsed = match &v {
            None => Some(Stored::Nothing),
            Some(s) if s.starts_with("snapshot ") => SnapshotMark::parse(s).map(Stored::Snapshot),
            Some(s) => RedisPos::parse(s).map(Stored::At),
        };
        match (parsed, v) {
            (Some(st), _) => Ok(st),
            (None, s) => Err(ApplyError {
                addr: self.addr.clone(),
                what: format!(
                    "unreadable position {:?} in {} (database 0): delete the key to sync zone {origin} in full again",
                    s.unwrap_or_default(),
                    String::from_utf8_lossy(&Self::key(origin))
                ),
                transient: false,
            }),
        }
    }

    /// Applies `tx` of `origin` with the position after it, atomically.
    pub async fn apply(&mut self, origin: &str, tx: &RedisTx, pos: &RedisPos) -> Result<(), ApplyError> {
        self.apply_marked(origin, tx, pos.text()).await
    }

    /// Applies a transaction of the snapshot of `origin`'s full sync at `sync`
    /// (replid, offset): marked as the applier's, with no position yet (a crash now
    /// means a full sync again). [`RedisApplier::apply`] of the last one (or of an
    /// empty transaction) writes the position after the snapshot.
    pub async fn apply_snapshot(&mut self, origin: &str, tx: &RedisTx, sync: &SnapshotMark) -> Result<(), ApplyError> {
        self.apply_marked(origin, tx, sync.text()).await
    }

    /// Watches `keys` (database, name) for [`RedisApplier::apply_snapshot_watched`].
    pub async fn watch(&mut self, keys: &[(u64, Vec<u8>)]) -> Result<(), ApplyError> {
        if keys.is_empty() {
            return Ok(());
        }
        watching(keys)
            .query_async::<()>(&mut self.con)
            .await
            .map_err(|e| self.err(e))
    }

    /// [`RedisApplier::watch`] and, in the same round trip after it, the server's
    /// replication offset: every write of the keys after that offset aborts the next
    /// MULTI/EXEC.
    pub async fn watch_then_offset(&mut self, keys: &[(u64, Vec<u8>)]) -> Result<u64, ApplyError> {
        let mut p = watching(keys);
        p.cmd("INFO").arg("replication");
        let (info,): (String,) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        self.info_field(&info, "master_repl_offset")?
            .parse()
            .map_err(|_| self.info_missing("master_repl_offset"))
    }

    /// [`RedisApplier::apply_snapshot`] after [`RedisApplier::watch`]: `false` when a
    /// watched key changed and nothing ran.
    pub async fn apply_snapshot_watched<'a>(
        &mut self,
        origin: &str,
        commands: impl Iterator<Item = &'a (u64, Vec<Vec<u8>>)>,
        sync: &SnapshotMark,
    ) -> Result<bool, ApplyError> {
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SELECT").arg(0).ignore();
        p.cmd("SET").arg(Self::key(origin)).arg(sync.text());
        queue(&mut p, commands, true);
        match p.query_async::<Option<(String,)>>(&mut self.con).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) if e.code() == Some("EXECABORT") && !is_connection(&e) => Err(self.err(e)),
            // a command refused inside EXEC: the others ran
            Err(e) if !is_connection(&e) => {
                self.refused += 1;
                tracing::warn!(origin, error = %e, "a command of a full sync's chunk was refused here; the rest of it was applied");
                Ok(true)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    async fn apply_marked(&mut self, origin: &str, tx: &RedisTx, marker: String) -> Result<(), ApplyError> {
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("SELECT").arg(0).ignore();
        p.cmd("SET").arg(Self::key(origin)).arg(marker).ignore();
        queue(&mut p, tx.commands.iter(), true);
        match p.query_async::<()>(&mut self.con).await {
            Ok(()) => Ok(()),
            // the whole transaction refused before running (EXECABORT: a command this
            // server does not know): nothing ran, the position did not move
            Err(e) if e.code() == Some("EXECABORT") => Err(self.err(e)),
            // a command refused inside EXEC: the others and the position ran
            Err(e) if !is_connection(&e) => {
                self.refused += 1;
                tracing::warn!(origin, error = %e, "a command of a replicated Redis transaction was refused here; the rest of it was applied");
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Applies several consecutive transactions of `origin` in one round trip, as one
    /// MULTI/EXEC with the position after the last: each origin transaction stays
    /// atomic (inside a larger atomic unit), and the position commits with all of them,
    /// so a crash neither loses nor repeats any. A command this server refuses inside
    /// (WRONGTYPE) is counted and logged, the rest applied; a transaction refused whole
    /// (EXECABORT: nothing ran) is an error.
    ///
    /// After [`RedisApplier::watch`], `false` when a watched key changed and nothing ran.
    pub async fn apply_batch(&mut self, origin: &str, batch: &[(RedisTx, RedisPos)]) -> Result<bool, ApplyError> {
        let Some((_, last)) = batch.last() else {
            return Ok(true);
        };
        let mut p = redis::pipe();
        p.atomic().ignore_errors();
        p.cmd("SELECT").arg(0).ignore();
        p.cmd("SET").arg(Self::key(origin)).arg(last.text()).ignore();
        queue(&mut p, batch.iter().flat_map(|(tx, _)| tx.commands.iter()), false);
        let results: Vec<redis::Value> = match p.query_async::<Option<Vec<redis::Value>>>(&mut self.con).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(e) if e.code() == Some("EXECABORT") && !is_connection(&e) => {
                return Err(ApplyError {
                    addr: self.addr.clone(),
                    what: format!("a replicated transaction of zone {origin} was refused whole (nothing ran): {e}"),
                    transient: false,
                })
            }
            Err(e) => return Err(self.err(e)),
        };
        for r in results {
            if let redis::Value::ServerError(e) = r {
                self.refused += 1;
                tracing::warn!(origin, error = ?e, "a command of a replicated Redis transaction was refused here; the rest of it was applied");
            }
        }
        Ok(true)
    }

    /// Deletes one of drc's own keys of database 0 (not a synced key: not marked).
    pub async fn forget(&mut self, key: &[u8]) -> Result<(), ApplyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(0).ignore().cmd("DEL").arg(key).ignore();
        p.query_async::<()>(&mut self.con).await.map_err(|e| self.err(e))
    }

    /// The server's replication offset (`master_repl_offset`).
    pub async fn master_offset(&mut self) -> Result<u64, ApplyError> {
        let info = self.replication_info().await?;
        self.info_field(&info, "master_repl_offset")?
            .parse()
            .map_err(|_| self.info_missing("master_repl_offset"))
    }

    /// This server's stream now: its replication id and offset (database 0 assumed:
    /// not known from here), with `zone`'s heartbeat value as the clock.
    pub async fn now(&mut self, zone: &str) -> Result<RedisPos, ApplyError> {
        let info = self.replication_info().await?;
        let replid = self.info_field(&info, "master_replid")?.to_string();
        let offset = self
            .info_field(&info, "master_repl_offset")?
            .parse()
            .map_err(|_| self.info_missing("master_repl_offset"))?;
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(0).ignore();
        p.cmd("GET")
            .arg([super::source::HEARTBEAT_PREFIX, zone.as_bytes()].concat());
        let (clock,): (Option<i64>,) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        Ok(RedisPos {
            replid,
            offset,
            clock: clock.unwrap_or(0),
            ..Default::default()
        })
    }

    /// The oldest point of this server's stream its backlog holds (the offset before
    /// its first byte), when that is the start of a command: the backlog has not
    /// wrapped yet (it was created, or the server restarted, since). `None` otherwise.
    pub async fn backlog_start(&mut self) -> Result<Option<(String, u64)>, ApplyError> {
        let info = self.replication_info().await?;
        let number = |f: &str| -> Result<u64, ApplyError> {
            self.info_field(&info, f)?.parse().map_err(|_| self.info_missing(f))
        };
        if number("repl_backlog_active")? != 1 || number("repl_backlog_histlen")? >= number("repl_backlog_size")? {
            return Ok(None);
        }
        let replid = self.info_field(&info, "master_replid")?.to_string();
        let first: u64 = self
            .info_field(&info, "repl_backlog_first_byte_offset")?
            .parse()
            .map_err(|_| self.info_missing("repl_backlog_first_byte_offset"))?;
        Ok(Some((replid, first.saturating_sub(1))))
    }

    async fn replication_info(&mut self) -> Result<String, ApplyError> {
        redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut self.con)
            .await
            .map_err(|e| self.err(e))
    }

    fn info_field<'a>(&self, info: &'a str, field: &str) -> Result<&'a str, ApplyError> {
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| self.info_missing(field))
    }

    fn info_missing(&self, field: &str) -> ApplyError {
        ApplyError {
            addr: self.addr.clone(),
            what: format!("INFO replication has no {field}"),
            transient: false,
        }
    }

    /// One `SCAN` step of database `db`: the next cursor (0: done) and keys.
    pub async fn scan(&mut self, db: u64, cursor: u64) -> Result<(u64, Vec<Vec<u8>>), ApplyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(db).ignore();
        p.cmd("SCAN").arg(cursor).arg("COUNT").arg(1000);
        let ((next, keys),): ((u64, Vec<Vec<u8>>),) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        Ok((next, keys))
    }

    /// Which of `members` the set `key` (database 0) holds.
    pub async fn smismember(&mut self, key: &[u8], members: &[Vec<u8>]) -> Result<Vec<bool>, ApplyError> {
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(0).ignore();
        let mut c = redis::cmd("SMISMEMBER");
        c.arg(key);
        for m in members {
            c.arg(m.as_slice());
        }
        p.add_command(c);
        let (v,): (Vec<bool>,) = p.query_async(&mut self.con).await.map_err(|e| self.err(e))?;
        Ok(v)
    }

    fn err(&self, e: redis::RedisError) -> ApplyError {
        ApplyError {
            addr: self.addr.clone(),
            what: e.to_string(),
            transient: is_connection(&e),
        }
    }
}
