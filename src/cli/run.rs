//! `drc run --config FILE`: the zone daemon (direct transport). For every peer zone it
//! reads the peer's binlog and applies the peer's own transactions here.
//! `drc init --config FILE`: creates the drc schema and drc's triggers (tombstones, version guards).

use drc::applier::apply::{Applier, ApplierSettings};
use drc::config::Config;
use drc::config::TransportKind;
use drc::error::Error;
use drc::reader::live::{LiveSettings, StartSpec};
use drc::transport::direct::{self, Direction};
use drc::transport::kafka;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The zone daemon's config file.
    #[arg(long)]
    config: PathBuf,
}

fn settings(cfg: &Config, path: &std::path::Path) -> Result<Arc<ApplierSettings>, Error> {
    let r = cfg.replication.as_ref().ok_or_else(|| {
        Error::Config(drc::config::ConfigError {
            path: path.display().to_string(),
            what: "no [replication] section: say which databases replicate".into(),
        })
    })?;
    Ok(Arc::new(ApplierSettings {
        zone: cfg.zone.clone(),
        databases: r.databases.clone(),
        version_column: r.version_column.clone(),
        id_ranges: cfg.id_ranges.clone(),
        range_policy: r.range_policy,
        addr: cfg.mysql.addr(),
        channel: r.channel.clone(),
        unversioned: r.unversioned.clone(),
    }))
}

fn cfg_err(path: &std::path::Path, what: String) -> Error {
    Error::Config(drc::config::ConfigError {
        path: path.display().to_string(),
        what,
    })
}

pub async fn init(a: RunArgs) -> i32 {
    let r = async {
        let cfg = Config::load(&a.config)?;
        let s = settings(&cfg, &a.config)?;
        let opts = cfg.mysql.opts(&cfg.base_dir).map_err(|e| cfg_err(&a.config, e))?;
        let mut ap = Applier::connect(opts, s).await?;
        ap.init_schema().await?;
        let n = ap.ensure_triggers(false).await?;
        println!(
            "zone {}: drc schema ready on {}; {n} trigger(s) created",
            cfg.zone,
            cfg.mysql.addr()
        );
        Ok::<(), Error>(())
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

pub async fn run(a: RunArgs) -> i32 {
    match daemon(a).await {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

async fn daemon(a: RunArgs) -> Result<(), Error> {
    let mut shutdown_signal = std::pin::pin!(super::tail::shutdown_signal());
    let cfg = Config::load(&a.config)?;
    if cfg.peers.is_empty() {
        return Err(cfg_err(
            &a.config,
            "no [[peers]]: name the zones to replicate from".into(),
        ));
    }
    let s = settings(&cfg, &a.config)?;
    let local_opts = cfg.mysql.opts(&cfg.base_dir).map_err(|e| cfg_err(&a.config, e))?;
    let start = StartSpec::parse(&cfg.reader.start).map_err(|e| cfg_err(&a.config, e))?;
    // Metrics and the admin endpoint first: a DBA sees the daemon even while it waits.
    // (the recorder before any metric handle is taken: handles taken earlier are no-ops)
    let prometheus = drc::ops::metrics::install().map_err(|e| cfg_err(&a.config, format!("metrics: {e}")))?;
    drc::ops::status::registry().set_zone(&cfg.zone);
    for p in &cfg.peers {
        drc::ops::status::registry().direction(&p.zone);
    }
    let mut admin_task = None;
    if let Some(admin) = &cfg.admin {
        let token = admin.token(&cfg.base_dir).map_err(|e| cfg_err(&a.config, e))?;
        if token.is_none() {
            tracing::warn!("[admin] has no token: POST /pause and /resume are refused");
        }
        let listener = tokio::net::TcpListener::bind(&admin.listen).await.map_err(|e| {
            cfg_err(
                &a.config,
                format!(
                    "[admin] listen = {:?}: cannot listen: {e} (another daemon on this port?)",
                    admin.listen
                ),
            )
        })?;
        tracing::info!(listen = %admin.listen, "admin endpoint: /metrics /status /pause /resume");
        admin_task = Some(tokio::spawn(drc::ops::admin::serve(listener, prometheus, token)));
    }
    // Schema and triggers first (DDL: before any apply transaction).
    let mut backoff = Duration::from_millis(200);
    loop {
        let r = async {
            let mut ap = Applier::connect(local_opts.clone(), s.clone()).await?;
            ap.init_schema().await?;
            ap.ensure_triggers(false).await
        }
        .await;
        match r {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(created = n, "drc triggers installed");
                }
                break;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "local server not reachable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    match cfg.transport {
        TransportKind::Direct => {
            for p in &cfg.peers {
                let peer_mysql = p.mysql.as_ref().expect("validated: direct peers have [peers.mysql]");
                let d = Direction {
                    origin: p.zone.clone(),
                    reader: LiveSettings::from_config(&cfg, &p.zone, peer_mysql).map_err(|e| cfg_err(&a.config, e))?,
                    start: start.clone(),
                    applier_opts: local_opts.clone(),
                    applier: s.clone(),
                };
                tasks.spawn(direct::run(d, stop_rx.clone()));
            }
        }
        TransportKind::Kafka => {
            let k = cfg.kafka.clone().expect("validated: kafka transport has [kafka]");
            let producer = kafka::ProducerSide {
                kafka: k.clone(),
                reader: LiveSettings::from_config(&cfg, &cfg.zone, &cfg.mysql).map_err(|e| cfg_err(&a.config, e))?,
                start: start.clone(),
                state_dir: cfg.state_dir(),
            };
            tasks.spawn(kafka::run_producer(producer, stop_rx.clone()));
            for p in &cfg.peers {
                let c = kafka::ConsumerSide {
                    kafka: k.clone(),
                    origin: p.zone.clone(),
                    applier_opts: local_opts.clone(),
                    applier: s.clone(),
                };
                tasks.spawn(kafka::run_consumer(c, stop_rx.clone()));
            }
        }
    }
    // Heartbeats into this zone (the peers measure the lag from them).
    let every = Duration::from_millis(cfg.replication.as_ref().map_or(1000, |r| r.heartbeat_ms));
    tasks.spawn(drc::ops::heartbeat::run(
        local_opts.clone(),
        cfg.zone.clone(),
        s.channel_key(&cfg.zone),
        every,
        stop_rx.clone(),
    ));
    let stall_watch = tokio::spawn(drc::ops::status::registry().stall_watch(every));
    // Tables created later get their triggers within seconds.
    let keeper = {
        let (opts, s, mut stop) = (local_opts.clone(), s.clone(), stop_rx.clone());
        tokio::spawn(async move {
            // one connection, kept while it works (not a new session every 2 s)
            let mut conn: Option<Applier> = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|x| *x) => return,
                }
                if conn.is_none() {
                    conn = Applier::connect(opts.clone(), s.clone()).await.ok();
                }
                if let Some(ap) = conn.as_mut() {
                    if let Err(e) = ap.ensure_triggers(true).await {
                        tracing::warn!(error = %e, "cannot install drc triggers");
                        conn = None;
                    }
                }
            }
        })
    };
    tracing::info!(zone = %cfg.zone, peers = cfg.peers.len(), "drc running");
    let result = tokio::select! {
        _ = &mut shutdown_signal => { tracing::info!("stopping on signal"); Ok(()) }
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => Err(e),
            _ => Ok(()),
        },
    };
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    keeper.abort();
    stall_watch.abort();
    if let Some(t) = admin_task {
        t.abort();
    }
    result
}
