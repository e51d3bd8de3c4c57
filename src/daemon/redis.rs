//! Redis directions: per peer, the peer's Redis captured as a replica
//! ([`RedisSource`]) → this zone's Redis ([`RedisSink`]); and this zone's heartbeat
//! key, from which the peers measure the lag.
//!
//! # Resumption
//! The position is `drc:pos:<origin>` in this zone's Redis, written in the
//! MULTI/EXEC of every applied transaction; a session (re)starts the capture from it
//! (`PSYNC <replid> <offset>`), or with a full sync when there is none. A Redis
//! direction runs beside the MySQL ones and fails or waits on its own: a Redis
//! outage never holds MySQL replication back.

use crate::config::{Config, RedisConfig};
use crate::error::Error;
use crate::pipeline::{self, Shutdown};
use crate::redis::apply::RedisApplier;
use crate::redis::fullsync::Local;
use crate::redis::scope::Scope;
use crate::redis::sink::RedisSink;
use crate::redis::source::{CaptureSettings, RedisSource, HEARTBEAT_PREFIX};
use crate::redis::verify::Homes;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// One Redis direction: the origin's Redis → this zone's.
#[derive(Clone)]
pub struct Direction {
    pub capture: CaptureSettings,
    /// This zone's Redis, for reading its own stream during a full sync.
    pub local: Local,
    /// This zone's Redis (`redis://…`, credentials included: never logged).
    pub local_url: String,
    pub local_addr: String,
}

/// The Redis directions of `cfg` (one per peer), and this zone's Redis URL; `None`
/// without `[redis]`.
pub fn directions(cfg: &Config, r: &RedisConfig) -> Result<(Vec<Direction>, String), String> {
    let local_url = r.server.url(&cfg.base_dir, "redis")?;
    let scope = Scope::new(&r.databases, &r.keys);
    let mut out = Vec::new();
    for p in &cfg.peers {
        let Some(server) = &p.redis else { continue };
        out.push(Direction {
            capture: CaptureSettings {
                origin: p.zone.clone(),
                zone: cfg.zone.clone(),
                addr: server.addr(),
                url: server.url(&cfg.base_dir, "peers.redis")?,
                auth: server.auth(&cfg.base_dir, "peers.redis")?,
                scope: scope.clone(),
                homes: Homes::new(&r.homes),
            },
            local: Local {
                addr: r.server.addr(),
                auth: r.server.auth(&cfg.base_dir, "redis")?,
            },
            local_url: local_url.clone(),
            local_addr: r.server.addr(),
        });
    }
    Ok((out, local_url))
}

/// Runs a Redis direction until `shutdown` or a definite error.
pub async fn run(d: Direction, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("Redis replication from zone {}", d.capture.origin);
    let status = crate::telemetry::status::registry().redis_direction(&d.capture.origin);
    pipeline::restart_on_transient(&what, &shutdown, || async {
        let r = session(&d, &shutdown).await;
        if let Err(e) = &r {
            status.error(e);
        }
        r
    })
    .await
}

async fn session(d: &Direction, shutdown: &Shutdown) -> Result<(), Error> {
    let origin = &d.capture.origin;
    let status = crate::telemetry::status::registry().redis_direction(origin);
    let mut applier = RedisApplier::connect(&d.local_url).await?;
    let from = applier.position(origin).await?;
    let durable = Arc::new(AtomicU64::new(from.as_ref().map_or(0, |p| p.offset)));
    tracing::info!(
        from = %origin, to = %d.capture.zone, origin_redis = %d.capture.addr, local_redis = %d.local_addr,
        resume = %from.as_ref().map_or("a full sync".to_string(), |p| format!("{} {} (db {})", p.replid, p.offset, p.db)),
        "Redis replicating"
    );
    status.update(|s| s.state = "applying".into());
    let source = RedisSource::start(d.capture.clone(), from, durable.clone(), status.clone());
    let sink = RedisSink::new(
        applier,
        origin,
        &d.capture.zone,
        d.local.clone(),
        d.capture.scope.clone(),
        durable,
        status,
    );
    let dir = crate::telemetry::status::registry().direction(origin);
    pipeline::run(source, sink, Some(&dir), shutdown).await
}

/// Writes `SET drc:hb:<zone> <ms since the epoch>` into this zone's Redis (database
/// 0) every `every` until `shutdown`; an unreachable Redis is retried quietly (the
/// peers' lag gauges grow meanwhile).
pub async fn heartbeats(url: String, zone: String, every: Duration, shutdown: Shutdown) -> Result<(), Error> {
    let key = [HEARTBEAT_PREFIX, zone.as_bytes()].concat();
    let mut con = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return Ok(()),
        }
        if con.is_none() {
            con = match redis::Client::open(url.as_str()) {
                Ok(c) => c.get_multiplexed_async_connection().await.ok(),
                Err(_) => None,
            };
        }
        let Some(c) = con.as_mut() else { continue };
        let ms = crate::telemetry::status::now_us() / 1000;
        let mut p = redis::pipe();
        p.cmd("SELECT").arg(0).ignore().cmd("SET").arg(&key).arg(ms).ignore();
        match p.query_async::<()>(c).await {
            Ok(()) => warned = false,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "cannot write the Redis heartbeat key; retrying");
                    warned = true;
                }
                con = None;
            }
        }
    }
}
