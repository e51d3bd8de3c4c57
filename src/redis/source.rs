//! The pipeline source of a Redis direction: drc as a replica of the origin zone's
//! Redis ([`super::replica`]), its stream grouped into origin transactions
//! ([`super::stream`]) and judged against the scope ([`super::scope`]).
//!
//! # What it yields, in stream order
//! * after a full sync: [`RedisItem::SyncStart`], the snapshot as
//!   [`RedisItem::Snapshot`] chunks, then [`RedisItem::SyncEnd`] with the sync's
//!   offset (the sink sweeps and writes the position: [`super::fullsync`]);
//! * every origin transaction in scope as a [`RedisItem::Tx`] with the position after
//!   it; the origin daemon's heartbeat (`SET drc:hb:<origin> <ms>`) as a `Tx` with no
//!   commands and `heartbeat_ms` (the position moves on an idle origin, and the sink
//!   measures the lag).
//!
//! # Invariants
//! * Nothing is skipped silently: an applier's transaction is a suppressed loop, a
//!   FLUSHALL/FLUSHDB/SWAPDB, a transaction mixing keys in and out of scope and a
//!   FUNCTION/SCRIPT are counted and warned about (`drc_redis_refused_total`); only
//!   transactions wholly out of scope are dropped without a word.
//! * The replica acknowledges (`REPLCONF ACK`) the offset the sink made durable
//!   ([`RedisSource::durable`]), never one merely read.
//! * The capture runs in its own task feeding a bounded queue; dropping the source
//!   stops it. Its errors arrive through [`Source::next`] (connection problems are
//!   transient: the direction resumes from the sink's position).

use super::apply::RedisPos;
use super::own::heartbeat;
use super::replica::{Replica, ReplicaError, Sync};
use super::scope::{Scope, Verdict};
use super::snapshot::Snapshot;
use super::stream::{Grouper, RedisTx};
use super::verify::Homes;
use crate::error::Error;
use crate::pipeline::{Item, Source};
use crate::telemetry::metrics as m;
use crate::telemetry::status::RedisDirection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Keys of the daemons' heartbeats (database 0): `drc:hb:<zone>` = ms since the epoch.
pub const HEARTBEAT_PREFIX: &[u8] = b"drc:hb:";

/// Items between the capture task and the run loop: with a full sync's chunks of up
/// to 1,024 elements, at most about 130,000 elements wait in memory.
const QUEUE: usize = 128;

/// One item of a Redis direction.
#[derive(Debug, Clone)]
pub enum RedisItem {
    /// A full sync begins: the snapshot taken at `sync` (replid, offset) follows;
    /// `peer_pos` is, per receiving zone, where the origin had applied that zone's
    /// stream (`drc:pos:<zone>` there, read just before; [`super::fullsync`]).
    SyncStart {
        sync: (String, u64),
        peer_pos: Vec<(String, RedisPos)>,
    },
    /// A chunk of the snapshot; `key` when it starts a key (database, name).
    Snapshot { tx: RedisTx, key: Option<(u64, Vec<u8>)> },
    /// The snapshot is complete; the stream continues after `pos`.
    SyncEnd { pos: RedisPos },
    /// An origin transaction (no commands: a heartbeat or the end of a snapshot) and
    /// the position after it.
    Tx {
        tx: RedisTx,
        pos: RedisPos,
        heartbeat_ms: Option<i64>,
    },
}

impl RedisItem {
    /// Commands in the item.
    pub fn commands(&self) -> usize {
        match self {
            RedisItem::Snapshot { tx, .. } | RedisItem::Tx { tx, .. } => tx.commands.len(),
            RedisItem::SyncStart { .. } | RedisItem::SyncEnd { .. } => 0,
        }
    }
}

impl Item for RedisItem {
    fn opens(&self) -> bool {
        true
    }
    fn closes(&self) -> bool {
        true
    }
    fn weight(&self) -> usize {
        self.commands().max(1)
    }
}

/// Where and what to capture.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// The origin zone.
    pub origin: String,
    /// Where the capture goes (metric labels): this zone, or `kafka` (the publisher).
    pub zone: String,
    /// The zones that receive the capture: with a full sync goes where the origin had
    /// applied each one's stream (this zone; over Kafka every peer).
    pub receivers: Vec<String>,
    /// The origin's Redis (its `addr` names it in logs; credentials never logged).
    pub server: super::endpoint::Endpoint,
    pub scope: Scope,
    /// Home zones of key patterns: a homed key takes its home's writes only.
    pub homes: Homes,
    /// Concurrent writes of other keys, and the counters' patterns (always applied):
    /// the sink's later-write rule (`super::lww`).
    pub conflicts: super::lww::Conflicts,
    pub counters: Vec<String>,
    /// A full sync was under way when the direction stopped (the sink's position is a
    /// snapshot's marker): the next full sync is counted as `interrupted`.
    pub interrupted: bool,
}

/// The source: the receiving end of the capture task.
pub struct RedisSource {
    rx: mpsc::Receiver<Result<RedisItem, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RedisSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisSource {
    /// Starts capturing after `from` (the sink's position), or with a full sync
    /// (`None`). `durable` is the origin offset the sink has made durable.
    /// `status` is the direction's `/status` entry.
    pub fn start(
        s: CaptureSettings,
        from: Option<RedisPos>,
        durable: Arc<AtomicU64>,
        status: Arc<RedisDirection>,
    ) -> RedisSource {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            if let Err(e) = capture(&s, from, &tx, durable, &status).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        RedisSource { rx, task }
    }
}

impl Source for RedisSource {
    type Item = RedisItem;

    async fn next(&mut self) -> Result<Option<RedisItem>, Error> {
        match self.rx.recv().await {
            Some(Ok(i)) => Ok(Some(i)),
            Some(Err(e)) => Err(e),
            // the capture ends only by sending its error: it panicked
            None => Err(Error::Transient {
                addr: String::new(),
                what: "the Redis capture task ended unexpectedly (a bug: see the log); starting over".into(),
            }),
        }
    }

    fn has_ready(&mut self) -> bool {
        !self.rx.is_empty()
    }
}

fn err(e: ReplicaError) -> Error {
    match e {
        // a refused certificate: the config must change
        ReplicaError::Io { addr, source } if super::endpoint::is_refused(&source) => Error::Server {
            addr,
            what: format!("Redis replication stream: {source}"),
        },
        ReplicaError::Io { addr, source } => Error::Transient {
            addr,
            what: format!("Redis replication stream: {source}"),
        },
        // a protocol surprise or a bad snapshot: read it again from the position
        // (a server restarting mid-sync sends half a snapshot)
        ReplicaError::Protocol { addr, what } => Error::Transient {
            addr,
            what: format!("Redis replication stream: {what}"),
        },
        // a value drc cannot read (a stream, a module type): the same snapshot again
        // would fail the same way
        ReplicaError::Snapshot {
            addr,
            source: source @ super::rdb::RdbError::Unsupported(..),
        } => Error::Server {
            addr,
            what: format!(
                "Redis full sync: {source}: drc reads strings, lists, sets, sorted sets and hashes; remove or rename the key holding it (in any database: the snapshot holds them all), or sync without a full sync (docs/REDIS.md)"
            ),
        },
        ReplicaError::Snapshot { addr, source } => Error::Transient {
            addr,
            what: format!("Redis full sync: {source}"),
        },
    }
}

async fn capture(
    s: &CaptureSettings,
    from: Option<RedisPos>,
    out: &mpsc::Sender<Result<RedisItem, Error>>,
    durable: Arc<AtomicU64>,
    status: &RedisDirection,
) -> Result<(), Error> {
    let labels = [("from_zone", s.origin.clone()), ("to_zone", s.zone.clone())];
    // where the origin had applied the receivers' streams, before the sync starts
    let mut origin_redis = super::apply::RedisApplier::connect(&s.server).await?;
    let mut peer_pos = Vec::new();
    for z in &s.receivers {
        if let Some(p) = origin_redis.position(z).await? {
            peer_pos.push((z.clone(), RedisPos { kafka: None, ..p }));
        }
    }
    drop(origin_redis);
    let (mut r, sync) = Replica::connect(&s.server, from.as_ref().map(|p| (p.replid.as_str(), p.offset)))
        .await
        .map_err(err)?;
    r.follow(durable.clone());
    let hb_key = [HEARTBEAT_PREFIX, s.origin.as_bytes()].concat();
    // what the stream said before the position: the origin's heartbeat time, and how
    // far it had applied each zone's stream (carried in every position)
    let mut said = from.as_ref().map_or_else(RedisPos::default, |p| RedisPos {
        clock: p.clock,
        seen: p.seen.clone(),
        ..Default::default()
    });
    let mut grouper = match sync {
        Sync::Full { replid, offset } => {
            let reason = match (&from, s.interrupted) {
                (Some(_), _) => "backlog_lost",
                (None, true) => "interrupted",
                (None, false) => "first_start",
            };
            match &from {
                Some(p) => tracing::warn!(
                    from = %s.origin, wanted = %format!("{} {}", p.replid, p.offset), now = %format!("{replid} {offset}"),
                    "zone {}'s Redis no longer holds drc's position in its backlog (an outage longer than repl-backlog-size covers, or a restarted server): syncing in full", s.origin
                ),
                None => tracing::info!(from = %s.origin, %replid, offset, "Redis: first start, syncing in full"),
            }
            let mut l = labels.to_vec();
            l.push(("reason", reason.to_string()));
            metrics::counter!(m::REDIS_FULL_SYNCS, &l).increment(1);
            // nothing of the new stream is applied yet (the old offsets were another id's)
            durable.store(0, Ordering::Relaxed);
            status.update(|st| {
                st.state = "syncing".into();
                st.full_syncs += 1;
            });
            let scope = s.scope.clone();
            // a key homed in another zone than the origin is not the origin's to give
            let (homes, origin) = (s.homes.clone(), s.origin.clone());
            let mut snap = Snapshot::new(move |db, k| scope.covers(db, k) && homes.of(k).is_none_or(|h| h == origin));
            said = RedisPos::default();
            for (z, p) in &peer_pos {
                said.set_seen(z, p.clone());
            }
            let start = RedisItem::SyncStart {
                sync: (replid.clone(), offset),
                peer_pos,
            };
            if out.send(Ok(start)).await.is_err() {
                return Ok(());
            }
            let (raw, mut items) = mpsc::channel(64);
            // the database the stream after the snapshot has selected (real replicas
            // take it from this field too: the stream need not SELECT it again)
            let mut stream_db = 0u64;
            // the origin's heartbeat key in the snapshot: the clock at the sync's offset
            let (mut clock, mut hb_next) = (0i64, false);
            let convert = async {
                while let Some(item) = items.recv().await {
                    match &item {
                        super::rdb::RdbItem::Aux(k, v) if k == b"repl-stream-db" => {
                            stream_db = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                        }
                        super::rdb::RdbItem::Key { db: 0, key, .. } => hb_next = *key == hb_key,
                        super::rdb::RdbItem::Str(v) if hb_next => {
                            clock = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                            hb_next = false;
                        }
                        _ => {}
                    }
                    let key = match &item {
                        super::rdb::RdbItem::Key { db, key, .. } => Some((*db, key.clone())),
                        _ => None,
                    };
                    if let Some(tx) = snap.push(item) {
                        let chunk = RedisItem::Snapshot { tx, key };
                        if out.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let (read, ()) = tokio::join!(r.snapshot_to(raw), convert);
            read.map_err(err)?;
            said.clock = clock;
            metrics::counter!(m::REDIS_SNAPSHOT_KEYS, &labels).increment(snap.keys);
            tracing::info!(from = %s.origin, keys = snap.keys, "Redis full sync read; the stream follows");
            let end = RedisItem::SyncEnd {
                pos: RedisPos {
                    replid,
                    offset,
                    db: stream_db,
                    ..said.clone()
                },
            };
            if out.send(Ok(end)).await.is_err() {
                return Ok(());
            }
            Grouper::new(stream_db)
        }
        Sync::Continue { .. } => Grouper::new(from.as_ref().map_or(0, |p| p.db)),
    };
    let bytes = metrics::counter!(m::REDIS_BYTES, &labels);
    let loops = metrics::counter!(m::REDIS_LOOPS_SUPPRESSED, &labels);
    let behind = metrics::gauge!(m::REDIS_BEHIND_BYTES, &labels);
    let refused = |reason: &str| {
        let mut l = labels.to_vec();
        l.push(("reason", reason.to_string()));
        metrics::counter!(m::REDIS_REFUSED, &l).increment(1);
    };
    let conflicts = metrics::counter!(m::REDIS_CONFLICTS, "from_zone" => s.origin.clone(), "to_zone" => s.zone.clone(), "rule" => "home");
    let mut warned = None::<std::time::Instant>;
    loop {
        r.acknowledge_later(durable.load(Ordering::Relaxed));
        let before = r.offset;
        let c = r.next_command().await.map_err(err)?;
        bytes.increment(c.offset - before);
        behind.set(c.offset.saturating_sub(durable.load(Ordering::Relaxed)) as f64);
        // the origin's keep-alives move the offset too: a position that stops short of
        // them cannot continue after the origin restarts from its snapshot (its backlog
        // then starts at its last offset), so they pass as transactions without commands
        let keepalive = matches!(c.name().as_str(), "PING" | "REPLCONF").then_some(c.offset);
        let tx = match grouper.push(c) {
            Some(tx) => tx,
            None => match keepalive.filter(|_| grouper.idle()) {
                Some(offset) => super::stream::RedisTx {
                    offset,
                    ..Default::default()
                },
                None => continue,
            },
        };
        said.clock = heartbeat(&tx, &hb_key).unwrap_or(said.clock);
        if let Some((zone, p)) = applied(&tx) {
            said.set_seen(&zone, p);
        }
        let pos = RedisPos {
            replid: r.replid.clone(),
            offset: tx.offset,
            db: grouper.db(),
            ..said.clone()
        };
        let offset = tx.offset;
        // a transaction not shipped still moves the position (as a transaction
        // without commands: a sink coalesces consecutive ones), so that the durable
        // position, and the offset acknowledged to the origin, reach the end of its
        // stream (a restarted origin continues only from exactly there)
        let judged: Option<RedisItem> = 'judge: {
            Some(if tx.applier {
                loops.increment(1);
                break 'judge None;
            } else if let Some(cmd) = &tx.refused {
                refused("flush");
                tracing::warn!(from = %s.origin, command = %cmd, offset = tx.offset, "{cmd} in zone {}'s Redis was not propagated (drc never propagates FLUSHALL, FLUSHDB or SWAPDB; run it in every zone if that is what you want)", s.origin);
                break 'judge None;
            } else if tx.commands.is_empty() {
                RedisItem::Tx {
                    tx,
                    pos,
                    heartbeat_ms: None,
                }
            } else if let Some(ms) = heartbeat(&tx, &hb_key) {
                RedisItem::Tx {
                    tx: RedisTx::default(),
                    pos,
                    heartbeat_ms: Some(ms),
                }
            } else {
                let mut tx = tx;
                s.scope.trim(&mut tx.commands);
                if tx.commands.is_empty() {
                    break 'judge None;
                }
                let before = tx.commands.len();
                // a homed key's expiry in another zone (a DEL of it) is not a conflict:
                // the home expires it at the same absolute time
                let mut expiries = 0u64;
                tx.commands.retain(|(_, args)| {
                    let gone = misrouted(&s.homes, &s.origin, args);
                    if gone && (args[0].eq_ignore_ascii_case(b"DEL") || args[0].eq_ignore_ascii_case(b"UNLINK")) {
                        expiries += 1;
                    }
                    !gone
                });
                let misrouted_writes = (before - tx.commands.len()) as u64 - expiries;
                if misrouted_writes > 0 {
                    conflicts.increment(misrouted_writes);
                    if warned.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(10)) {
                        warned = Some(std::time::Instant::now());
                        tracing::warn!(from = %s.origin, offset = tx.offset, "zone {} wrote keys whose home is another zone ([redis.homes]); not applied (the home's value stands; `drc redis verify --repair` gives zone {} the home's value back). Counted in drc_redis_conflicts_total; this warning at most every 10 s", s.origin, s.origin);
                    }
                }
                if tx.commands.is_empty() {
                    break 'judge None;
                }
                match s.scope.judge(&tx.commands) {
                    Verdict::Ship => RedisItem::Tx {
                        tx,
                        pos,
                        heartbeat_ms: None,
                    },
                    Verdict::Drop => break 'judge None,
                    Verdict::Unkeyed(name) => {
                        refused("unkeyed");
                        tracing::warn!(from = %s.origin, command = %name, "{name} in zone {}'s Redis is not synced (deploy functions and scripts in every zone)", s.origin);
                        break 'judge None;
                    }
                    Verdict::Mixed(inside, outside) => {
                        refused("mixed_scope");
                        tracing::warn!(from = %s.origin, offset = tx.offset, synced = %inside, not_synced = %outside, "a transaction in zone {}'s Redis touches keys in and out of the synced scope; not applied (widen or narrow [redis] keys / databases so that it is one or the other)", s.origin);
                        break 'judge None;
                    }
                }
            })
        };
        let item = judged.unwrap_or_else(|| RedisItem::Tx {
            tx: RedisTx {
                offset,
                ..Default::default()
            },
            pos: RedisPos {
                replid: r.replid.clone(),
                offset,
                db: grouper.db(),
                ..said.clone()
            },
            heartbeat_ms: None,
        });
        if out.send(Ok(item)).await.is_err() {
            return Ok(());
        }
    }
}

/// A command of `origin` touching a key whose home is another zone.
fn misrouted(homes: &Homes, origin: &str, args: &[Vec<u8>]) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    super::scope::key_positions(&name, args)
        .into_iter()
        .any(|i| homes.of(&args[i]).is_some_and(|h| h != origin))
}

/// An applier's transaction: the zone whose stream it applied and the position in
/// that stream after it (`SET drc:pos:<zone> <position>` first; a full sync's marker
/// is not a position).
pub fn applied(tx: &RedisTx) -> Option<(String, RedisPos)> {
    let (0, args) = tx.commands.first()? else { return None };
    if !args[0].eq_ignore_ascii_case(b"SET") {
        return None;
    }
    let zone = args.get(1)?.strip_prefix(super::stream::MARKER_PREFIX)?;
    let p = RedisPos::parse(std::str::from_utf8(args.get(2)?).ok()?)?;
    Some((String::from_utf8(zone.to_vec()).ok()?, p))
}
