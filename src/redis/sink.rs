//! The pipeline sink of a Redis direction: this zone's Redis, through
//! [`RedisApplier`]. It owns the durable position (`drc:pos:<origin>` in database 0,
//! written in the MULTI/EXEC of every applied transaction), publishes the offset it
//! made durable to the source (which acknowledges it to the origin), and keeps the
//! direction's metrics and `/status` entry.
//!
//! Over Kafka a message's items arrive together ([`Delivery`]) with the message's
//! offset, written into the position with them; a message is never split across two
//! MULTI/EXECs, so that offset always names a message applied whole. A transaction
//! whose origin offset is not past the position's is one the publisher published
//! again after a restart: skipped (`drc_redis_duplicates_total`).
//!
//! With `conflicts = "later_write"`, a batch touching keys the later write settles is
//! judged against this zone's own recent writes first ([`super::lww`]: the keys
//! watched, this zone's stream read to its end, MULTI/EXEC judged again if a watched
//! key changed); the origin's commands that lost are left out of it.
//!
//! Origin transactions are applied in batches of up to [`BATCH`] per round trip, as one
//! MULTI/EXEC with the position after the last (each stays atomic; a crash leaves all
//! or none of the batch): when the batch is full or its oldest transaction waited
//! [`BATCH_WAIT`], before a full sync's items, and at every [`Sink::flush`] (the run loop flushes whenever the source has nothing more
//! at hand, so batching happens only while the direction is behind).

use super::apply::{RedisApplier, RedisPos, SnapshotMark};
use super::fullsync::{FullSync, Local};
use super::lww::{Rules, Window};
use super::scope::Scope;
use super::source::{CaptureSettings, RedisItem};
use super::stream::RedisTx;
use super::verify::Homes;
use crate::error::Error;
use crate::pipeline::Sink;
use crate::telemetry::metrics as m;
use crate::telemetry::status::RedisDirection;
use metrics::{Counter, Gauge};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a Redis sink takes: one item of a capture, or the items of one Kafka message
/// and its offset.
#[derive(Debug)]
pub struct Delivery {
    pub items: Vec<RedisItem>,
    pub kafka: Option<i64>,
}

impl From<RedisItem> for Delivery {
    fn from(i: RedisItem) -> Self {
        Delivery {
            items: vec![i],
            kafka: None,
        }
    }
}

impl crate::pipeline::Item for Delivery {
    fn opens(&self) -> bool {
        true
    }
    fn closes(&self) -> bool {
        true
    }
    fn weight(&self) -> usize {
        self.items.iter().map(|i| i.commands().max(1)).sum()
    }
}

pub struct RedisSink {
    applier: RedisApplier,
    origin: String,
    /// This zone (its entry of a full sync's `peer_pos` is the one that counts here).
    zone: String,
    /// The origin offset of the last transaction taken (applied or pending): anything
    /// not past it is a duplicate. `None` before the first full sync ends.
    taken: Option<u64>,
    /// The Kafka offset of the message the pending transactions' last came in.
    pending_kafka: Option<i64>,
    local: Local,
    scope: Scope,
    homes: Homes,
    /// The full sync being applied.
    sync: Option<FullSync>,
    /// Origin transactions written, applied at the next flush (one round trip).
    pending: Vec<(RedisTx, RedisPos)>,
    /// The latest origin heartbeat among them (ms since the epoch).
    pending_heartbeat: Option<i64>,
    /// When the oldest of them was written.
    pending_since: Option<std::time::Instant>,
    durable: Arc<AtomicU64>,
    status: Arc<RedisDirection>,
    commands: Counter,
    txns: Counter,
    lag: Gauge,
    refused_here: Counter,
    refused_seen: u64,
    duplicates: Counter,
    /// This zone's recent writes, for the later-write rule.
    window: Window,
    lost: Counter,
    merged: Counter,
    warned: Option<std::time::Instant>,
}

impl RedisSink {
    /// The sink of the direction `c` describes (origin, this zone, scope, homes),
    /// resuming after `from` (the stored position); `local`: this zone's Redis (its
    /// own stream is read during a full sync).
    pub fn new(
        applier: RedisApplier,
        c: &CaptureSettings,
        from: Option<&RedisPos>,
        local: Local,
        durable: Arc<AtomicU64>,
        status: Arc<RedisDirection>,
    ) -> Self {
        let (origin, zone) = (c.origin.as_str(), c.zone.as_str());
        let labels = [("from_zone", origin.to_string()), ("to_zone", zone.to_string())];
        let refused_seen = applier.refused;
        let rules = Rules::new(c.conflicts, &c.counters, c.homes.clone(), c.scope.clone());
        let conflict = |rule: &'static str| metrics::counter!(m::REDIS_CONFLICTS, "from_zone" => origin.to_string(), "to_zone" => zone.to_string(), "rule" => rule);
        RedisSink {
            window: Window::new(origin, local.clone(), rules),
            lost: conflict("later_write"),
            merged: conflict("merged"),
            warned: None,
            applier,
            origin: origin.to_string(),
            zone: zone.to_string(),
            taken: from.map(|p| p.offset),
            pending_kafka: None,
            local,
            scope: c.scope.clone(),
            homes: c.homes.clone(),
            sync: None,
            pending: Vec::new(),
            pending_heartbeat: None,
            pending_since: None,
            durable,
            status,
            commands: metrics::counter!(m::REDIS_COMMANDS, &labels),
            txns: metrics::counter!(m::REDIS_TXNS, &labels),
            lag: metrics::gauge!(m::REDIS_LAG_SECONDS, &labels),
            refused_here: metrics::counter!(m::REDIS_REFUSED, "from_zone" => origin.to_string(), "to_zone" => zone.to_string(), "reason" => "refused_here"),
            duplicates: metrics::counter!(m::REDIS_DUPLICATES, &labels),
            refused_seen,
        }
    }
}

/// Origin transactions applied in one round trip, at most.
pub const BATCH: usize = 256;
/// A batch is applied once its oldest transaction waited this long, full or not (the
/// source may never run dry under a steady load).
pub const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

impl RedisSink {
    /// Takes one item (`kafka`: the offset of the message it came in).
    async fn take(&mut self, item: RedisItem, kafka: Option<i64>) -> Result<(), Error> {
        if !matches!(item, RedisItem::Tx { .. }) {
            self.apply_pending().await?;
        }
        match item {
            RedisItem::SyncStart { sync, peer_pos } => {
                if self.sync.take().is_some() {
                    tracing::warn!(from = %self.origin, "zone {}'s full sync starts over (its publisher restarted during it)", self.origin);
                }
                self.taken = None;
                let peer_pos = peer_pos.into_iter().find(|(z, _)| *z == self.zone).map(|(_, p)| p);
                let mark = SnapshotMark {
                    replid: sync.0,
                    offset: sync.1,
                    // a crash during the sync reads the topic again from its start
                    kafka: kafka.map(|k| k - 1),
                };
                self.sync = Some(
                    FullSync::start(
                        &mut self.applier,
                        &self.local,
                        &self.origin,
                        mark,
                        peer_pos,
                        self.scope.clone(),
                        self.homes.clone(),
                    )
                    .await?,
                );
            }
            RedisItem::Snapshot { tx, key } => {
                let n = tx.commands.len() as u64;
                let sync = self.sync.as_mut().ok_or_else(|| Error::Transient {
                    addr: self.applier.addr.clone(),
                    what: "a snapshot chunk outside a full sync".into(),
                })?;
                sync.chunk(&mut self.applier, key, tx).await?;
                self.commands.increment(n);
            }
            RedisItem::SyncEnd { mut pos } => {
                let sync = self.sync.take().ok_or_else(|| Error::Transient {
                    addr: self.applier.addr.clone(),
                    what: "the end of a snapshot outside a full sync".into(),
                })?;
                pos.kafka = kafka;
                sync.finish(&mut self.applier, &pos).await?;
                self.taken = Some(pos.offset);
                self.durable.store(pos.offset, Ordering::Relaxed);
                self.status.update(|s| {
                    s.state = "applying".into();
                    s.position = Some(format!("{} {} {}", pos.replid, pos.offset, pos.db));
                });
            }
            RedisItem::Tx { tx, pos, heartbeat_ms } => {
                if self.sync.is_some() {
                    return Err(Error::Transient {
                        addr: self.applier.addr.clone(),
                        what: "a transaction inside a full sync".into(),
                    });
                }
                let Some(taken) = self.taken else {
                    return Err(Error::Server {
                        addr: self.applier.addr.clone(),
                        what: format!(
                            "zone {}'s Redis changes arrive without the full sync they follow (the topic's start was deleted by retention?): this zone has no copy to apply them to. Stop zone {}'s daemon, remove its Redis publisher state ([reader] state_dir/redis) so that it syncs in full again, and start it (docs/REDIS.md)",
                            self.origin, self.origin
                        ),
                    });
                };
                if pos.offset <= taken {
                    self.duplicates.increment(1);
                    return Ok(());
                }
                self.taken = Some(pos.offset);
                // consecutive transactions without commands (skipped ones, keep-alives,
                // heartbeats) only move the position: one entry for all of them
                match self.pending.last_mut() {
                    Some((last, last_pos)) if last.commands.is_empty() && tx.commands.is_empty() => *last_pos = pos,
                    _ => self.pending.push((tx, pos)),
                }
                if kafka.is_some() {
                    self.pending_kafka = kafka;
                }
                if heartbeat_ms.is_some() {
                    self.pending_heartbeat = heartbeat_ms;
                }
                self.pending_since.get_or_insert_with(std::time::Instant::now);
            }
        }
        Ok(())
    }

    /// Applies the written transactions (one MULTI/EXEC, the position after the last).
    async fn apply_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(k) = self.pending_kafka.take() {
            if let Some((_, last)) = self.pending.last_mut() {
                last.kafka = Some(k);
            }
        }
        // the keys the later write settles, read once (none without the rule)
        let mut keys: Vec<(u64, Vec<u8>)> = Vec::new();
        if self.window.rules().enabled() {
            for (tx, _) in &self.pending {
                keys.extend(self.window.rules().keys(tx));
            }
        }
        if !keys.is_empty() {
            keys.sort();
            keys.dedup();
            self.apply_judged(&keys).await?;
        } else {
            self.applier.apply_batch(&self.origin, &self.pending).await?;
            self.window.keep_up(&mut self.applier).await?;
        }
        let (mut txns, mut cmds) = (0u64, 0u64);
        for (tx, _) in &self.pending {
            if !tx.commands.is_empty() {
                txns += 1;
                cmds += tx.commands.len() as u64;
            }
        }
        let lag = self
            .pending_heartbeat
            .take()
            .map(|ms| (crate::telemetry::status::now_us() / 1000 - ms) as f64 / 1e3);
        let pos = self.pending.last().map(|(_, p)| p.clone()).expect("not empty");
        self.pending.clear();
        self.pending_since = None;
        self.durable.store(pos.offset, Ordering::Relaxed);
        self.commands.increment(cmds);
        self.txns.increment(txns);
        if let Some(l) = lag {
            self.lag.set(l);
        }
        self.status.update(|s| {
            s.state = "applying".into();
            s.position = Some(format!("{} {} {}", pos.replid, pos.offset, pos.db));
            s.transactions += txns;
            s.commands += cmds;
            if lag.is_some() {
                s.lag_seconds = lag;
            }
        });
        if self.applier.refused > self.refused_seen {
            self.refused_here.increment(self.applier.refused - self.refused_seen);
            self.refused_seen = self.applier.refused;
        }
        Ok(())
    }
}

impl RedisSink {
    /// Applies the pending batch judged against this zone's recent writes, exactly:
    /// judged again whenever a watched key was written between judgement and apply.
    async fn apply_judged(&mut self, keys: &[(u64, Vec<u8>)]) -> Result<(), Error> {
        let from = self.pending.iter().find_map(|(_, p)| p.seen_of(&self.zone)).cloned();
        loop {
            let end = self.applier.watch_then_offset(keys).await?;
            self.window
                .catch_up(&mut self.applier, from.as_ref(), Some(end))
                .await?;
            let mut batch = self.pending.clone();
            let v = self.window.judge(&mut batch, &self.zone);
            if !self.applier.apply_batch(&self.origin, &batch).await? {
                continue;
            }
            self.lost.increment(v.lost);
            self.merged.increment(v.merged);
            if let Some(key) = v
                .example
                .filter(|_| self.warned.is_none_or(|t| t.elapsed().as_secs() >= 10))
            {
                self.warned = Some(std::time::Instant::now());
                tracing::info!(from = %self.origin, key = %String::from_utf8_lossy(&key), lost = v.lost, merged = v.merged, "zone {} and this zone wrote the same keys concurrently: the later write stands (drc_redis_conflicts_total; this line at most every 10 s)", self.origin);
            }
            return Ok(());
        }
    }
}

impl Sink for RedisSink {
    type Item = Delivery;

    async fn write(&mut self, d: Delivery) -> Result<(), Error> {
        for item in d.items {
            self.take(item, d.kafka).await?;
        }
        if let Some(since) = self.pending_since {
            if self.pending.len() >= BATCH || since.elapsed() >= BATCH_WAIT {
                self.apply_pending().await?;
            }
        }
        if self.applier.refused > self.refused_seen {
            self.refused_here.increment(self.applier.refused - self.refused_seen);
            self.refused_seen = self.applier.refused;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if let Some(sync) = self.sync.as_mut() {
            sync.flush(&mut self.applier).await?;
        }
        self.apply_pending().await
    }
}
