//! Redis directions: per peer, the peer's Redis captured as a replica
//! ([`RedisSource`]) → this zone's Redis ([`RedisSink`]); over Kafka, this zone's
//! Redis → [`RedisPublisher`] (topic `<prefix>redis.<zone>`), and per peer its topic
//! ([`KafkaSource`]) → [`RedisSink`]; and this zone's heartbeat key, from which the
//! peers measure the lag.
//!
//! # Resumption
//! The position is `drc:pos:<origin>` in this zone's Redis, written in the
//! MULTI/EXEC of every applied transaction; a session (re)starts the capture from it
//! (`PSYNC <replid> <offset>`), or with a full sync when there is none. A Redis
//! direction runs beside the MySQL ones and fails or waits on its own: a Redis
//! outage never holds MySQL replication back.

use super::tasks::parked;
use crate::config::{Config, RedisConfig};
use crate::error::Error;
use crate::kafka::redis::{Published, RedisPublisher};
use crate::kafka::source::KafkaSource;
use crate::kafka::KafkaConfig;
use crate::mysql::reader::checkpoint::CheckpointStore;
use crate::pipeline::{self, Shutdown};
use crate::redis::apply::{RedisApplier, Stored};
use crate::redis::endpoint::Endpoint;
use crate::redis::fullsync::Local;
use crate::redis::scope::Scope;
use crate::redis::sink::{Delivery, RedisSink};
use crate::redis::source::{CaptureSettings, RedisSource, HEARTBEAT_PREFIX};
use crate::redis::verify::Homes;
use crate::telemetry::status::RedisDirection;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// One Redis direction: the origin's Redis → this zone's.
#[derive(Clone)]
pub struct Direction {
    pub capture: CaptureSettings,
    /// This zone's Redis: the applier writes there, and a full sync reads its stream.
    pub local: Local,
}

/// The Redis directions of `cfg` (one per peer), and this zone's Redis.
pub fn directions(cfg: &Config, r: &RedisConfig) -> Result<(Vec<Direction>, Endpoint), String> {
    let local = r.server.endpoint(&cfg.base_dir, "redis")?;
    let scope = Scope::new(&r.databases, &r.keys);
    let mut out = Vec::new();
    for p in &cfg.peers {
        let Some(server) = &p.redis else { continue };
        out.push(Direction {
            capture: CaptureSettings {
                origin: p.zone.clone(),
                zone: cfg.zone.clone(),
                receivers: vec![cfg.zone.clone()],
                server: server.endpoint(&cfg.base_dir, "peers.redis")?,
                scope: scope.clone(),
                homes: Homes::new(&r.homes),
                conflicts: r.conflicts,
                counters: r.counters.clone(),
                interrupted: false,
            },
            local: Local {
                zone: cfg.zone.clone(),
                server: local.clone(),
            },
        });
    }
    Ok((out, local))
}

/// This zone's Redis published to Kafka.
pub struct Publishing {
    /// The capture of this zone's own Redis (`zone` = `kafka`, every peer a receiver).
    pub capture: CaptureSettings,
    pub kafka: KafkaConfig,
    /// The publisher's position store (`[reader] state_dir`/redis).
    pub state_dir: PathBuf,
}

/// The publishing side of `cfg`'s Redis over Kafka.
pub fn publishing(cfg: &Config, r: &RedisConfig, k: &KafkaConfig) -> Result<Publishing, String> {
    Ok(Publishing {
        capture: CaptureSettings {
            origin: cfg.zone.clone(),
            zone: "kafka".into(),
            receivers: cfg.peers.iter().map(|p| p.zone.clone()).collect(),
            server: r.server.endpoint(&cfg.base_dir, "redis")?,
            scope: Scope::new(&r.databases, &r.keys),
            homes: Homes::new(&r.homes),
            conflicts: r.conflicts,
            counters: r.counters.clone(),
            interrupted: false,
        },
        kafka: k.clone(),
        state_dir: cfg.state_dir().join("redis"),
    })
}

/// Publishes this zone's Redis to Kafka until `shutdown` (see [`parked`]).
pub async fn run_publisher(p: Publishing, shutdown: Shutdown) -> Result<(), Error> {
    let store = CheckpointStore::open(&p.state_dir)?;
    let status = crate::telemetry::status::registry().redis_publisher();
    let r = parked(
        "publishing Redis",
        &shutdown,
        |e| status.error(e),
        || publish(&p, &store, &status, &shutdown),
    )
    .await;
    store.flush()?;
    r
}

async fn publish(
    p: &Publishing,
    store: &CheckpointStore,
    status: &Arc<RedisDirection>,
    shutdown: &Shutdown,
) -> Result<(), Error> {
    let (from, interrupted) = match crate::kafka::redis::load(store)? {
        None => (None, false),
        Some(Published::Snapshot) => (None, true),
        Some(Published::At(pos)) => (Some(pos), false),
    };
    let durable = Arc::new(AtomicU64::new(from.as_ref().map_or(0, |p| p.offset)));
    tracing::info!(
        zone = %p.capture.origin, redis = %p.capture.server.addr, topic = %p.kafka.redis_topic(&p.capture.origin),
        resume = %from.as_ref().map_or("a full sync".to_string(), |p| format!("{} {} (db {})", p.replid, p.offset, p.db)),
        "Redis publishing starting"
    );
    let mut capture = p.capture.clone();
    capture.interrupted = interrupted;
    let source = RedisSource::start(capture, from, durable.clone(), status.clone());
    let sink = RedisPublisher::open(&p.kafka, &p.capture.origin, store, durable, status.clone()).await?;
    pipeline::run(source, sink, None, shutdown).await
}

/// Applies `d`'s origin's Redis topic to this zone's Redis until `shutdown`.
pub async fn run_consumer(d: Direction, k: KafkaConfig, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("Redis replication from zone {} (Kafka)", d.capture.origin);
    let status = crate::telemetry::status::registry().redis_direction(&d.capture.origin);
    parked(&what, &shutdown, |e| status.error(e), || consume(&d, &k, &shutdown)).await
}

async fn consume(d: &Direction, k: &KafkaConfig, shutdown: &Shutdown) -> Result<(), Error> {
    let origin = &d.capture.origin;
    let status = crate::telemetry::status::registry().redis_direction(origin);
    let mut applier = RedisApplier::connect(&d.local.server).await?;
    let stored = applier.stored(origin).await?;
    let topic = k.redis_topic(origin);
    let at = stored.kafka().map(|offset| crate::kafka::source::Stored {
        topic: topic.clone(),
        offset,
        checkpoint: stored.position().map(|p| (p.replid.clone(), p.offset)),
    });
    tracing::info!(
        from = %origin, to = %d.capture.zone, %topic, local_redis = %d.local.server.addr,
        resume = %match &stored {
            Stored::Nothing => "the topic's start".to_string(),
            Stored::Snapshot(_) => "the start of the full sync under way".to_string(),
            Stored::At(p) => format!("{} {} (db {})", p.replid, p.offset, p.db),
        },
        "Redis sync over Kafka starting"
    );
    let mut source: KafkaSource<Delivery> = KafkaSource::open(k, topic, &d.capture.zone, origin, at, ()).await?;
    source.verify().await?;
    status.update(|s| s.state = "applying".into());
    let durable = Arc::new(AtomicU64::new(0));
    let sink = RedisSink::new(applier, &d.capture, stored.position(), d.local.clone(), durable, status);
    let dir = crate::telemetry::status::registry().direction(origin);
    pipeline::run(source, sink, Some(&dir), shutdown).await
}

/// Runs a Redis direction until `shutdown` (see [`parked`]).
pub async fn run(d: Direction, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("Redis replication from zone {}", d.capture.origin);
    let status = crate::telemetry::status::registry().redis_direction(&d.capture.origin);
    parked(&what, &shutdown, |e| status.error(e), || session(&d, &shutdown)).await
}

async fn session(d: &Direction, shutdown: &Shutdown) -> Result<(), Error> {
    let origin = &d.capture.origin;
    let status = crate::telemetry::status::registry().redis_direction(origin);
    let mut applier = RedisApplier::connect(&d.local.server).await?;
    let stored = applier.stored(origin).await?;
    let from = stored.position().cloned();
    let interrupted = matches!(stored, Stored::Snapshot(_));
    let durable = Arc::new(AtomicU64::new(from.as_ref().map_or(0, |p| p.offset)));
    tracing::info!(
        from = %origin, to = %d.capture.zone, origin_redis = %d.capture.server.addr, local_redis = %d.local.server.addr,
        resume = %from.as_ref().map_or("a full sync".to_string(), |p| format!("{} {} (db {})", p.replid, p.offset, p.db)),
        "Redis sync starting"
    );
    status.update(|s| s.state = "applying".into());
    let mut capture = d.capture.clone();
    capture.interrupted = interrupted;
    let source = RedisSource::start(capture, from, durable.clone(), status.clone());
    let sink = RedisSink::new(applier, &d.capture, stored.position(), d.local.clone(), durable, status);
    let dir = crate::telemetry::status::registry().direction(origin);
    pipeline::run(source, sink, Some(&dir), shutdown).await
}

/// A peer's heartbeat older than this (and than 3 heartbeats) is its daemon's absence:
/// this daemon writes it.
const STAND_IN_AFTER_MS: i64 = 1_000;

/// Writes `SET drc:hb:<zone> <ms since the epoch>` into this zone's Redis (database
/// 0, `own`: server and zone) every `every` until `shutdown`. The heartbeat is the clock of
/// the zone's writes (later-write-wins, docs/REDIS.md) and the peers' lag measure.
///
/// It also stands in for a peer's daemon that is down (`peers`: server and zone of each
/// peer's Redis): a peer heartbeat older than [`STAND_IN_AFTER_MS`] (and
/// `3 × every`) is written by this daemon, so that the writes made in that zone
/// meanwhile carry their real time rather than the time its daemon stopped. An
/// unreachable Redis is retried quietly (the lag gauges grow meanwhile).
pub async fn heartbeats(
    own: (Endpoint, String),
    peers: Vec<(Endpoint, String)>,
    every: Duration,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let stale = STAND_IN_AFTER_MS.max(3 * every.as_millis() as i64);
    let mut targets: Vec<(Endpoint, Vec<u8>, bool, Option<redis::aio::MultiplexedConnection>)> =
        std::iter::once((own.0, own.1, false))
            .chain(peers.into_iter().map(|(u, z)| (u, z, true)))
            .map(|(u, z, stand_in)| (u, [HEARTBEAT_PREFIX, z.as_bytes()].concat(), stand_in, None))
            .collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    let mut standing_in = vec![false; targets.len()];
    // the value this daemon last wrote as a stand-in: seeing it again is not the
    // zone's daemon being back
    let mut wrote: Vec<Option<i64>> = vec![None; targets.len()];
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return Ok(()),
        }
        for (i, (server, key, stand_in, con)) in targets.iter_mut().enumerate() {
            if con.is_none() {
                *con = server.connection().await.ok();
            }
            let Some(c) = con.as_mut() else { continue };
            let ms = crate::telemetry::status::now_us() / 1000;
            let r = async {
                if *stand_in {
                    let mut p = redis::pipe();
                    p.cmd("SELECT").arg(0).ignore().cmd("GET").arg(key.as_slice());
                    let (last,): (Option<i64>,) = p.query_async(c).await?;
                    let absent = last.is_none_or(|l| ms - l > stale) || (last.is_some() && last == wrote[i]);
                    if absent != standing_in[i] {
                        standing_in[i] = absent;
                        let zone = String::from_utf8_lossy(&key[HEARTBEAT_PREFIX.len()..]).into_owned();
                        match absent {
                            true => tracing::warn!(zone = %zone, "zone {zone}'s daemon writes no Redis heartbeat: this daemon writes it meanwhile (the clock of that zone's writes)"),
                            false => tracing::info!(zone = %zone, "zone {zone}'s daemon writes its Redis heartbeat again"),
                        }
                    }
                    if !absent {
                        wrote[i] = None;
                        return Ok(());
                    }
                    wrote[i] = Some(ms);
                }
                let mut p = redis::pipe();
                p.cmd("SELECT").arg(0).ignore().cmd("SET").arg(key.as_slice()).arg(ms).ignore();
                p.query_async::<()>(c).await
            }
            .await;
            match r {
                Ok(()) => warned &= *stand_in,
                Err(e) => {
                    if !warned && !*stand_in {
                        tracing::warn!(error = %e, "cannot write the Redis heartbeat key; retrying");
                        warned = true;
                    }
                    *con = None;
                }
            }
        }
    }
}

/// Anti-entropy against one peer every `every` (`[redis] verify_interval_secs`):
/// [`crate::redis::verify::verify`] with repair of keys with a home zone; what stays
/// different is counted (`drc_redis_verify_differences`) and logged. A pass that fails
/// (a server away) is logged and tried again at the next interval.
pub async fn anti_entropy(d: Direction, homes: Homes, every: Duration, shutdown: Shutdown) -> Result<(), Error> {
    use crate::telemetry::metrics as m;
    let origin = d.capture.origin.clone();
    let labels = [("from_zone", origin.clone()), ("to_zone", d.capture.zone.clone())];
    let differences = metrics::gauge!(m::REDIS_VERIFY_DIFFERENCES, &labels);
    let repaired = metrics::counter!(m::REDIS_VERIFY_REPAIRED, &labels);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return Ok(()),
        }
        let pass = async {
            let mut local = crate::redis::verify::Side::connect(&d.capture.zone, &d.local.server).await?;
            let mut peer = crate::redis::verify::Side::connect(&origin, &d.capture.server).await?;
            crate::redis::verify::verify(
                &mut local,
                &mut peer,
                &d.capture.scope,
                &homes,
                Duration::from_secs(2),
                true,
            )
            .await
        };
        let report = tokio::select! {
            r = pass => r,
            _ = shutdown.wait() => return Ok(()),
        };
        match report {
            Ok(r) => {
                let fixed = r.differences.iter().filter(|x| x.repaired).count();
                let left: Vec<&str> = r
                    .differences
                    .iter()
                    .filter(|x| !x.repaired)
                    .map(|x| x.key.as_str())
                    .collect();
                repaired.increment(fixed as u64);
                differences.set(left.len() as f64);
                if !left.is_empty() || fixed > 0 {
                    tracing::warn!(
                        peer = %origin, repaired = fixed, differ = left.len(),
                        examples = ?&left[..left.len().min(5)],
                        "Redis anti-entropy: keys differ from zone {origin}'s (keys with a home repaired; give the others' patterns a home in [redis.homes], or settle them by writing them once)"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(peer = %origin, error = %e, "Redis anti-entropy pass failed; trying again at the next interval")
            }
        }
    }
}
