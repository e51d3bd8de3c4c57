//! ZooKeeper directions: per peer, the peer's ensemble ([`ZkSource`]: watch, then
//! read every root) → this zone's ensemble ([`ZkSink`]: node and metadata in one
//! multi). Over Kafka: this zone's ensemble → [`ZkPublisher`] (topic
//! `<prefix>zk.<zone>`), and per peer its topic ([`KafkaSource`]) → [`ZkSink`]. A ZooKeeper direction runs beside the MySQL and Redis ones and fails or
//! waits on its own ([`super::tasks::parked`]). Each session starts with a full
//! read of the peer's roots, so a restart, a reconnect or a new session misses
//! nothing; what this zone already holds is not written again (its metadata says so).

use super::tasks::parked;
use crate::config::{Config, ZkConfig};
use crate::error::Error;
use crate::kafka::source::KafkaSource;
use crate::kafka::zk::ZkPublisher;
use crate::kafka::KafkaConfig;
use crate::pipeline::{self, Shutdown};
use crate::zookeeper::sink::{ZkDelivery, ZkSink};
use crate::zookeeper::source::{ZkCapture, ZkSource};
use std::time::Duration;

/// One ZooKeeper direction: the origin's ensemble → this zone's.
#[derive(Clone)]
pub struct Direction {
    pub capture: ZkCapture,
    /// This zone's ensemble.
    pub local: String,
    /// TLS to it (`[zookeeper.tls]`).
    pub local_tls: Option<zookeeper_client::TlsOptions>,
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
                    tls: server.client_tls.clone(),
                    session_timeout: Duration::from_millis(z.session_timeout_ms),
                    roots,
                    reconcile_every: Duration::from_secs(z.reconcile_interval_secs),
                },
                local: z.connect.clone(),
                local_tls: z.client_tls.clone(),
                own_paths: crate::zookeeper::own_paths(&z.roots, &cfg.zone),
                max_deletes: z.max_deletes_per_pass,
            })
        })
        .collect()
}

/// The `/status` entry of `d`, with its roots.
fn reported(d: &Direction) -> std::sync::Arc<crate::telemetry::status::ZkDirection> {
    let status = crate::telemetry::status::registry().zk_direction(&d.capture.origin);
    let roots = d
        .capture
        .roots
        .iter()
        .map(|r| format!("{} ({:?})", r.path, r.mode))
        .collect();
    status.update(|s| s.roots = roots);
    status
}

/// Creates drc's metadata root and this zone's `own` paths in `local` when missing.
async fn prepare(local: &zookeeper_client::Client, addr: &str, own: &[String]) -> Result<(), Error> {
    crate::zookeeper::ensure_path(local, addr, crate::zookeeper::META_ROOT).await?;
    for p in own {
        crate::zookeeper::ensure_path(local, addr, p).await?;
    }
    Ok(())
}

/// Runs a ZooKeeper direction until `shutdown`.
pub async fn run(d: Direction, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("ZooKeeper sync from zone {}", d.capture.origin);
    let status = reported(&d);
    parked(&what, &shutdown, |e| status.error(e), || session(&d, &shutdown)).await
}

async fn session(d: &Direction, shutdown: &Shutdown) -> Result<(), Error> {
    let c = &d.capture;
    let local = crate::zookeeper::connect(&d.local, d.local_tls.as_ref(), c.session_timeout).await?;
    prepare(&local, &d.local, &d.own_paths).await?;
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

/// This zone's ensemble published to Kafka: the capture of its own roots.
pub struct Publishing {
    pub capture: ZkCapture,
    pub kafka: KafkaConfig,
    pub own_paths: Vec<String>,
}

/// The publishing side of `cfg`'s ZooKeeper over Kafka.
pub fn publishing(cfg: &Config, z: &ZkConfig, k: &KafkaConfig) -> Publishing {
    Publishing {
        capture: ZkCapture {
            origin: cfg.zone.clone(),
            zone: "kafka".into(),
            connect: z.connect.clone(),
            tls: z.client_tls.clone(),
            session_timeout: Duration::from_millis(z.session_timeout_ms),
            roots: crate::zookeeper::direction_roots(&z.roots, &cfg.zone),
            reconcile_every: Duration::from_secs(z.reconcile_interval_secs),
        },
        kafka: k.clone(),
        own_paths: crate::zookeeper::own_paths(&z.roots, &cfg.zone),
    }
}

/// Publishes this zone's roots to Kafka until `shutdown`.
pub async fn run_publisher(p: Publishing, shutdown: Shutdown) -> Result<(), Error> {
    parked("publishing ZooKeeper", &shutdown, |_| {}, || publish(&p, &shutdown)).await
}

async fn publish(p: &Publishing, shutdown: &Shutdown) -> Result<(), Error> {
    let c = &p.capture;
    let local = crate::zookeeper::connect(&c.connect, c.tls.as_ref(), c.session_timeout).await?;
    for path in &p.own_paths {
        crate::zookeeper::ensure_path(&local, &c.connect, path).await?;
    }
    drop(local);
    tracing::info!(zone = %c.origin, topic = %p.kafka.zk_topic(&c.origin), roots = ?c.roots.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), "ZooKeeper publishing starting");
    let source = ZkSource::start(c.clone());
    let sink = ZkPublisher::open(&p.kafka, &c.origin, c.roots.clone()).await?;
    pipeline::run(source, sink, None, shutdown).await
}

/// Applies `d`'s origin's ZooKeeper topic to this zone's ensemble until `shutdown`.
pub async fn run_consumer(d: Direction, k: KafkaConfig, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("ZooKeeper sync from zone {} (Kafka)", d.capture.origin);
    let status = reported(&d);
    parked(&what, &shutdown, |e| status.error(e), || consume(&d, &k, &shutdown)).await
}

async fn consume(d: &Direction, k: &KafkaConfig, shutdown: &Shutdown) -> Result<(), Error> {
    use crate::zookeeper::sink::{position_path, stored_offset};
    let c = &d.capture;
    let local = crate::zookeeper::connect(&d.local, d.local_tls.as_ref(), c.session_timeout).await?;
    prepare(&local, &d.local, &d.own_paths).await?;
    // (the position node exists before any change's multi writes it)
    crate::zookeeper::ensure_path(&local, &d.local, &position_path(&c.origin)).await?;
    let topic = k.zk_topic(&c.origin);
    let offset = stored_offset(&local, &d.local, &c.origin, &topic).await?;
    tracing::info!(from = %c.origin, to = %c.zone, %topic, local_ensemble = %d.local, resume = ?offset, "ZooKeeper sync over Kafka starting");
    let at = offset.map(|offset| crate::kafka::source::Stored {
        topic: topic.clone(),
        offset,
        checkpoint: None,
    });
    let mut source: KafkaSource<ZkDelivery> =
        KafkaSource::open(k, topic.clone(), &c.zone, &c.origin, at, c.roots.clone()).await?;
    source.verify().await?;
    let status = crate::telemetry::status::registry().zk_direction(&c.origin);
    status.update(|s| s.state = "applying".into());
    let sink = ZkSink::new(
        local,
        &d.local,
        &c.origin,
        &c.zone,
        c.roots.clone(),
        d.max_deletes,
        status,
    )
    .over_kafka(topic);
    let dir = crate::telemetry::status::registry().direction(&c.origin);
    pipeline::run(source, sink, Some(&dir), shutdown).await
}
