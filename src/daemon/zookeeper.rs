//! ZooKeeper directions: per peer, the peer's ensemble ([`ZkSource`]: watch, then
//! read every root) → this zone's ensemble ([`ZkSink`]: node and metadata in one
//! multi). A ZooKeeper direction runs beside the MySQL and Redis ones and fails or
//! waits on its own ([`super::tasks::parked`]). Each session starts with a full
//! read of the peer's roots, so a restart, a reconnect or a new session misses
//! nothing; what this zone already holds is not written again (its metadata says so).

use super::tasks::parked;
use crate::config::{Config, ZkConfig};
use crate::error::Error;
use crate::pipeline::{self, Shutdown};
use crate::zookeeper::sink::ZkSink;
use crate::zookeeper::source::{ZkCapture, ZkSource};
use std::time::Duration;

/// One ZooKeeper direction: the origin's ensemble → this zone's.
#[derive(Clone)]
pub struct Direction {
    pub capture: ZkCapture,
    /// This zone's ensemble.
    pub local: String,
    /// Paths created here when missing (the configured roots, a partitioned root's
    /// sub-path of this zone).
    pub own_paths: Vec<String>,
    pub max_deletes: usize,
}

/// The ZooKeeper directions of `cfg` (one per peer).
pub fn directions(cfg: &Config, z: &ZkConfig) -> Vec<Direction> {
    cfg.peers
        .iter()
        .filter_map(|p| {
            let server = p.zookeeper.as_ref()?;
            // (a peer with no root mirrored here still has a direction: its session
            // creates this zone's roots, and idles)
            let roots = crate::zookeeper::direction_roots(&z.roots, &p.zone);
            Some(Direction {
                capture: ZkCapture {
                    origin: p.zone.clone(),
                    zone: cfg.zone.clone(),
                    connect: server.connect.clone(),
                    session_timeout: Duration::from_millis(z.session_timeout_ms),
                    roots,
                    reconcile_every: Duration::from_secs(z.reconcile_interval_secs),
                },
                local: z.connect.clone(),
                own_paths: crate::zookeeper::own_paths(&z.roots, &cfg.zone),
                max_deletes: z.max_deletes_per_pass,
            })
        })
        .collect()
}

/// Runs a ZooKeeper direction until `shutdown`.
pub async fn run(d: Direction, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("ZooKeeper sync from zone {}", d.capture.origin);
    let status = crate::telemetry::status::registry().zk_direction(&d.capture.origin);
    status.update(|s| {
        s.roots = d
            .capture
            .roots
            .iter()
            .map(|r| format!("{} ({:?})", r.path, r.mode))
            .collect()
    });
    parked(&what, &shutdown, |e| status.error(e), || session(&d, &shutdown)).await
}

async fn session(d: &Direction, shutdown: &Shutdown) -> Result<(), Error> {
    let c = &d.capture;
    let local = crate::zookeeper::connect(&d.local, c.session_timeout).await?;
    crate::zookeeper::ensure_path(&local, &d.local, crate::zookeeper::META_ROOT).await?;
    for p in &d.own_paths {
        crate::zookeeper::ensure_path(&local, &d.local, p).await?;
    }
    tracing::info!(
        from = %c.origin, to = %c.zone, origin_ensemble = %c.connect, local_ensemble = %d.local,
        roots = ?c.roots.iter().map(|r| format!("{} ({:?})", r.path, r.mode)).collect::<Vec<_>>(),
        "ZooKeeper sync starting"
    );
    let status = crate::telemetry::status::registry().zk_direction(&c.origin);
    status.update(|s| s.state = "reading".into());
    let source = ZkSource::start(c.clone());
    let sink = ZkSink::new(
        local,
        &d.local,
        &c.origin,
        &c.zone,
        c.roots.clone(),
        d.max_deletes,
        status,
    );
    let dir = crate::telemetry::status::registry().direction(&c.origin);
    pipeline::run(source, sink, Some(&dir), shutdown).await
}
