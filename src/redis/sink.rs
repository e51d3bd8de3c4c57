//! The pipeline sink of a Redis direction: this zone's Redis, through
//! [`RedisApplier`]. It owns the durable position (`drc:pos:<origin>` in database 0,
//! written in the MULTI/EXEC of every applied transaction), publishes the offset it
//! made durable to the source (which acknowledges it to the origin), and keeps the
//! direction's metrics and `/status` entry.
//!
//! Each item is applied when written (one MULTI/EXEC per origin transaction, the
//! position in it), so [`Sink::flush`] has nothing left to do.

use super::apply::RedisApplier;
use super::fullsync::{FullSync, Local};
use super::scope::Scope;
use super::source::RedisItem;
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
    /// The full sync being applied.
    sync: Option<FullSync>,
    durable: Arc<AtomicU64>,
    status: Arc<RedisDirection>,
    commands: Counter,
    txns: Counter,
    lag: Gauge,
    refused_here: Counter,
    refused_seen: u64,
}

impl RedisSink {
    /// `local`: this zone's Redis (its own stream is read during a full sync);
    /// `scope`: what is synced.
    pub fn new(
        applier: RedisApplier,
        origin: &str,
        zone: &str,
        local: Local,
        scope: Scope,
        durable: Arc<AtomicU64>,
        status: Arc<RedisDirection>,
    ) -> Self {
        let labels = [("from_zone", origin.to_string()), ("to_zone", zone.to_string())];
        let refused_seen = applier.refused;
        RedisSink {
            applier,
            origin: origin.to_string(),
            local,
            scope,
            sync: None,
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

impl Sink for RedisSink {
    type Item = RedisItem;

    async fn write(&mut self, item: RedisItem) -> Result<(), Error> {
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
                self.applier.apply(&self.origin, &tx, &pos).await?;
                self.durable.store(pos.offset, Ordering::Relaxed);
                let n = tx.commands.len() as u64;
                if n > 0 {
                    self.commands.increment(n);
                    self.txns.increment(1);
                }
                let lag = heartbeat_ms.map(|ms| (crate::telemetry::status::now_us() / 1000 - ms) as f64 / 1e3);
                if let Some(l) = lag {
                    self.lag.set(l);
                }
                self.status.update(|s| {
                    s.state = "applying".into();
                    s.position = Some(format!("{} {} {}", pos.replid, pos.offset, pos.db));
                    if n > 0 {
                        s.transactions += 1;
                        s.commands += n;
                    }
                    if lag.is_some() {
                        s.lag_seconds = lag;
                    }
                });
            }
        }
        if self.applier.refused > self.refused_seen {
            self.refused_here.increment(self.applier.refused - self.refused_seen);
            self.refused_seen = self.applier.refused;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}
