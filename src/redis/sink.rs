//! The pipeline sink of a Redis direction: this zone's Redis, through
//! [`RedisApplier`]. It owns the durable position (`drc:pos:<origin>` in database 0,
//! written in the MULTI/EXEC of every applied transaction), publishes the offset it
//! made durable to the source (which acknowledges it to the origin), and keeps the
//! direction's metrics and `/status` entry.
//!
//! Origin transactions are applied in batches of up to [`BATCH`] per round trip, as one
//! MULTI/EXEC with the position after the last (each stays atomic; a crash leaves all
//! or none of the batch): when the batch is full or its oldest transaction waited
//! [`BATCH_WAIT`], before a full sync's items, and at every [`Sink::flush`] (the run loop flushes whenever the source has nothing more
//! at hand, so batching happens only while the direction is behind).

use super::apply::RedisApplier;
use super::apply::RedisPos;
use super::fullsync::{FullSync, Local};
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

pub struct RedisSink {
    applier: RedisApplier,
    origin: String,
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
}

impl RedisSink {
    /// The sink of the direction `c` describes (origin, this zone, scope, homes);
    /// `local`: this zone's Redis (its own stream is read during a full sync).
    pub fn new(
        applier: RedisApplier,
        c: &CaptureSettings,
        local: Local,
        durable: Arc<AtomicU64>,
        status: Arc<RedisDirection>,
    ) -> Self {
        let (origin, zone) = (c.origin.as_str(), c.zone.as_str());
        let labels = [("from_zone", origin.to_string()), ("to_zone", zone.to_string())];
        let refused_seen = applier.refused;
        RedisSink {
            applier,
            origin: origin.to_string(),
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
    /// Applies the written transactions (one MULTI/EXEC, the position after the last).
    async fn apply_pending(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.applier.apply_batch(&self.origin, &self.pending).await?;
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

impl Sink for RedisSink {
    type Item = RedisItem;

    async fn write(&mut self, item: RedisItem) -> Result<(), Error> {
        if !matches!(item, RedisItem::Tx { .. }) {
            self.apply_pending().await?;
        }
        match item {
            RedisItem::SyncStart { sync, peer_pos } => {
                self.sync = Some(
                    FullSync::start(
                        &mut self.applier,
                        &self.local,
                        &self.origin,
                        sync,
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
            RedisItem::SyncEnd { pos } => {
                let sync = self.sync.take().ok_or_else(|| Error::Transient {
                    addr: self.applier.addr.clone(),
                    what: "the end of a snapshot outside a full sync".into(),
                })?;
                sync.finish(&mut self.applier, &pos).await?;
                self.durable.store(pos.offset, Ordering::Relaxed);
                self.status.update(|s| {
                    s.state = "applying".into();
                    s.position = Some(format!("{} {} {}", pos.replid, pos.offset, pos.db));
                });
            }
            RedisItem::Tx { tx, pos, heartbeat_ms } => {
                self.pending.push((tx, pos));
                if heartbeat_ms.is_some() {
                    self.pending_heartbeat = heartbeat_ms;
                }
                let since = *self.pending_since.get_or_insert_with(std::time::Instant::now);
                if self.pending.len() >= BATCH || since.elapsed() >= BATCH_WAIT {
                    self.apply_pending().await?;
                }
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
