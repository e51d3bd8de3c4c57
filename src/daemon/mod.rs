//! The daemon (`drc run`): the one place that turns the config into pipelines and
//! starts them. Nothing below imports it.
//!
//! | file | role |
//! |---|---|
//! | this file | start order: metrics and admin, drc schema, journal, directions, heartbeats, retention |
//! | [`journal`] | this zone's own binlog → journal sink (tombstones, raises) |
//! | [`topology`] | config → each part's settings |
//! | [`direct`] | a direction without broker: binlog source → channel → applier sink |
//! | [`kafka`] | binlog source → Kafka sink; per peer, Kafka source → applier sink |
//! | [`redis`] | per peer, its Redis as a replica → this zone's Redis (over Kafka: this zone's Redis → its topic, per peer its topic → this zone's Redis); the Redis heartbeat key |
//! | [`zookeeper`] | per peer, its ensemble's mirrored roots → this zone's ensemble |
//! | [`tasks`] | the supervisor: named tasks, shutdown, panics as errors |
//!
//! Tasks and what each owns (docs/ARCHITECTURE.md, "The daemon"): one direction per
//! peer (its position: `drc.applied`), the Kafka producer (its position: the reader
//! checkpoint in `[reader] state_dir`), the journal (its position: `drc.journal`), the
//! heartbeat writer, the stall watch and the admin endpoint. All take the same
//! [`Shutdown`].

pub mod direct;
pub mod journal;
pub mod kafka;
pub mod redis;
pub mod tasks;
pub mod topology;
pub mod zookeeper;

use crate::config::{Config, TransportKind};
use crate::error::Error;
use crate::mysql::applier::apply::Applier;
use crate::mysql::reader::live::StartSpec;
use crate::pipeline::ShutdownTrigger;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tasks::Tasks;
use topology::{applier_settings, cfg_err, live_settings};

/// `drc init`: creates (or upgrades) the drc schema and removes the triggers an older
/// drc put on the application's tables; returns how many it removed.
pub async fn init(cfg: &Config, path: &Path) -> Result<usize, Error> {
    let s = applier_settings(cfg, path)?;
    let opts = cfg.mysql.opts(&cfg.base_dir).map_err(|e| cfg_err(path, e))?;
    let mut ap = Applier::connect(opts, s).await?;
    ap.init_schema().await?;
    let dropped = ap.drop_legacy_triggers().await?;
    if let (TransportKind::Kafka, Some(k)) = (cfg.transport, &cfg.kafka) {
        // this zone's topic and its peers' (one partition each): a first start then
        // neither publishes into nor reads a topic that is still being created
        // (a broker away now is no reason to fail: the daemon creates them too)
        for zone in std::iter::once(&cfg.zone).chain(cfg.peers.iter().map(|p| &p.zone)) {
            if let Err(e) = crate::kafka::ensure_topic(k, &k.topic(zone)).await {
                tracing::warn!(error = %e, topic = k.topic(zone), "could not create the topic now; the daemons create it when they start");
            }
        }
    }
    Ok(dropped)
}

/// Runs the zone daemon until `stop` resolves (a signal) or a task fails.
pub async fn run(cfg: Config, path: &Path, stop: impl Future<Output = ()>) -> Result<(), Error> {
    let mut stop = std::pin::pin!(stop);
    if cfg.peers.is_empty() {
        return Err(cfg_err(path, "no [[peers]]: name the zones to replicate from".into()));
    }
    let s = applier_settings(&cfg, path)?;
    let local_opts = cfg.mysql.opts(&cfg.base_dir).map_err(|e| cfg_err(path, e))?;
    let start = StartSpec::parse(&cfg.reader.start).map_err(|e| cfg_err(path, e))?;
    let (trigger, shutdown) = ShutdownTrigger::new();
    let mut tasks = Tasks::default();
    // Metrics and the admin endpoint first: a DBA sees the daemon even while it waits.
    // (the recorder before any metric handle is taken: handles taken earlier are no-ops)
    let prometheus = crate::telemetry::metrics::install().map_err(|e| cfg_err(path, format!("metrics: {e}")))?;
    let registry = crate::telemetry::status::registry();
    registry.set_zone(&cfg.zone);
    for p in &cfg.peers {
        registry.direction(&p.zone);
    }
    if let Some(admin) = &cfg.admin {
        let token = admin.token(&cfg.base_dir).map_err(|e| cfg_err(path, e))?;
        if token.is_none() {
            tracing::warn!("[admin] has no token: POST /pause and /resume are refused");
        }
        let listener = tokio::net::TcpListener::bind(&admin.listen).await.map_err(|e| {
            cfg_err(
                path,
                format!(
                    "[admin] listen = {:?}: cannot listen: {e} (another daemon on this port?)",
                    admin.listen
                ),
            )
        })?;
        let tls = admin.server_tls(&cfg.base_dir).map_err(|e| cfg_err(path, e))?;
        let loopback = admin.listen_addr().is_ok_and(|a| a.ip().is_loopback());
        if tls.is_none() && !loopback {
            tracing::warn!(listen = %admin.listen, "the admin endpoint listens beyond this host without TLS: the pause/resume token and /status cross the network in clear; set [admin] tls_cert and tls_key (docs/OPERATIONS.md)");
        }
        tracing::info!(listen = %admin.listen, https = tls.is_some(), "admin endpoint: /metrics /status /pause /resume");
        let sd = shutdown.clone();
        let audit = crate::ops::audit::path(&cfg);
        tracing::info!(audit_log = %audit.display(), "mutating admin calls are audited");
        tasks.spawn("admin endpoint", async move {
            crate::ops::admin::serve(listener, prometheus, token, audit, tls, sd)
                .await
                .map_err(Error::Output)
        });
    }
    // Schema first, and an older drc's triggers removed (DDL: before any apply transaction).
    let mut backoff = Duration::from_millis(200);
    loop {
        let r = async {
            let mut ap = Applier::connect(local_opts.clone(), s.clone()).await?;
            ap.init_schema().await?;
            ap.drop_legacy_triggers().await
        };
        let r = tokio::select! {
            r = r => r,
            _ = &mut stop => return tasks.run_until(async {}, trigger).await,
        };
        match r {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        dropped = n,
                        "an older drc's triggers removed from the application's tables"
                    );
                }
                break;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "local server not reachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                trigger.trigger();
                return Err(e);
            }
        }
    }
    // The journal of this zone's own binlog: tombstones of local deletes, raises of
    // local writes that went back in version (docs/CONFLICTS.md).
    let (progress, journal_progress) = tokio::sync::watch::channel(None);
    let mut journal_reader = live_settings(&cfg, &cfg.zone, &cfg.mysql).map_err(|e| cfg_err(path, e))?;
    journal_reader.replica_server_id = cfg.reader.journal_server_id();
    tasks.spawn(
        "journal",
        journal::run(
            journal::JournalSide {
                reader: journal_reader,
                start: start.clone(),
                opts: local_opts.clone(),
                applier: s.clone(),
                progress,
            },
            shutdown.clone(),
        ),
    );
    match cfg.transport {
        TransportKind::Direct => {
            for p in &cfg.peers {
                let peer_mysql = p.mysql.as_ref().expect("validated: direct peers have [peers.mysql]");
                let d = direct::Direction {
                    origin: p.zone.clone(),
                    reader: live_settings(&cfg, &p.zone, peer_mysql).map_err(|e| cfg_err(path, e))?,
                    start: start.clone(),
                    applier_opts: local_opts.clone(),
                    applier: s.clone(),
                    journal: journal_progress.clone(),
                };
                tasks.spawn(
                    format!("direction from zone {}", p.zone),
                    direct::run(d, shutdown.clone()),
                );
            }
        }
        TransportKind::Kafka => {
            let k = cfg.kafka.clone().expect("validated: kafka transport has [kafka]");
            let producer = kafka::ProducerSide {
                kafka: k.clone(),
                reader: live_settings(&cfg, &cfg.zone, &cfg.mysql).map_err(|e| cfg_err(path, e))?,
                start: start.clone(),
                state_dir: cfg.state_dir(),
            };
            tasks.spawn("kafka producer", kafka::run_producer(producer, shutdown.clone()));
            for p in &cfg.peers {
                let c = kafka::ConsumerSide {
                    kafka: k.clone(),
                    origin: p.zone.clone(),
                    applier_opts: local_opts.clone(),
                    applier: s.clone(),
                    journal: journal_progress.clone(),
                };
                tasks.spawn(
                    format!("direction from zone {}", p.zone),
                    kafka::run_consumer(c, shutdown.clone()),
                );
            }
        }
    }
    // Redis: per peer its Redis → this zone's, beside MySQL (docs/REDIS.md); over
    // Kafka this zone's Redis → its topic, and per peer its topic → this zone's Redis.
    if let Some(r) = &cfg.redis {
        let (dirs, local) = redis::directions(&cfg, r).map_err(|e| cfg_err(path, e))?;
        let peer_redis = dirs
            .iter()
            .map(|d| (d.capture.server.clone(), d.capture.origin.clone()))
            .collect();
        if let (TransportKind::Kafka, Some(k)) = (cfg.transport, &cfg.kafka) {
            let p = redis::publishing(&cfg, r, k).map_err(|e| cfg_err(path, e))?;
            crate::telemetry::status::registry().redis_publisher();
            tasks.spawn("Redis publisher", redis::run_publisher(p, shutdown.clone()));
        }
        for d in dirs {
            crate::telemetry::status::registry().redis_direction(&d.capture.origin);
            if r.verify_interval_secs > 0 {
                tasks.spawn(
                    format!("Redis anti-entropy with zone {}", d.capture.origin),
                    redis::anti_entropy(
                        d.clone(),
                        crate::redis::verify::Homes::new(&r.homes),
                        Duration::from_secs(r.verify_interval_secs),
                        shutdown.clone(),
                    ),
                );
            }
            let name = format!("Redis direction from zone {}", d.capture.origin);
            match (cfg.transport, &cfg.kafka) {
                (TransportKind::Kafka, Some(k)) => {
                    tasks.spawn(name, redis::run_consumer(d, k.clone(), shutdown.clone()))
                }
                _ => tasks.spawn(name, redis::run(d, shutdown.clone())),
            }
        }
        tasks.spawn(
            "Redis heartbeat writer",
            redis::heartbeats(
                (local, cfg.zone.clone()),
                peer_redis,
                Duration::from_millis(r.heartbeat_ms),
                shutdown.clone(),
            ),
        );
    }
    // ZooKeeper: per peer its ensemble's mirrored roots → this zone's (docs/ZOOKEEPER.md).
    if let Some(z) = &cfg.zookeeper {
        let kafka = cfg.kafka.as_ref().filter(|_| cfg.transport == TransportKind::Kafka);
        if let Some(k) = kafka {
            tasks.spawn(
                "ZooKeeper publisher",
                zookeeper::run_publisher(zookeeper::publishing(&cfg, z, k), shutdown.clone()),
            );
        }
        for d in zookeeper::directions(&cfg, z) {
            let name = format!("ZooKeeper direction from zone {}", d.capture.origin);
            match kafka {
                Some(k) => tasks.spawn(name, zookeeper::run_consumer(d, k.clone(), shutdown.clone())),
                None => tasks.spawn(name, zookeeper::run(d, shutdown.clone())),
            }
        }
    }
    // Heartbeats into this zone (the peers measure the lag from them).
    let every = Duration::from_millis(cfg.replication.as_ref().map_or(1000, |r| r.heartbeat_ms));
    tasks.spawn(
        "heartbeat writer",
        crate::mysql::heartbeat::run(
            local_opts.clone(),
            cfg.zone.clone(),
            s.channel_key(&cfg.zone),
            every,
            shutdown.clone(),
        ),
    );
    // Retention of drc.tombstones and drc.conflicts.
    if let Some(r) = &cfg.replication {
        tasks.spawn(
            "retention",
            crate::mysql::retention::run(
                local_opts.clone(),
                crate::mysql::retention::Retention {
                    zone: cfg.zone.clone(),
                    databases: r.databases.clone(),
                    origins: cfg.peers.iter().map(|p| s.channel_key(&p.zone)).collect(),
                    tombstone_age: Duration::from_secs(r.tombstone_retention_secs),
                    conflict_age: (r.conflict_retention_secs > 0)
                        .then(|| Duration::from_secs(r.conflict_retention_secs)),
                    every: Duration::from_secs(r.retention_interval_secs),
                },
                shutdown.clone(),
            ),
        );
    }
    let sd = shutdown.clone();
    tasks.spawn("stall watch", async move {
        tokio::select! {
            _ = registry.stall_watch(every) => {}
            _ = sd.wait() => {}
        }
        Ok(())
    });
    tracing::info!(zone = %cfg.zone, peers = cfg.peers.len(), "drc running");
    tasks.run_until(stop, trigger).await
}
