//! The daemon's live state: per replication direction (origin zone → this zone) its
//! state, positions, lag and last error; pause/resume; the lag bookkeeping behind
//! `drc_replication_lag_seconds`. One registry per process ([`registry`]); the
//! transports and the applier write it, the admin endpoint reads it.
//!
//! Invariants: a paused direction stops only at a transaction boundary (no target
//! transaction is held open while paused); lag samples are taken when a heartbeat or
//! transaction is committed here, with this host's clock minus the origin's.

use super::metrics as m;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Microseconds since the epoch, this host's clock.
///
/// `DRC_FAKE_CLOCK_OFFSET_MS` (a test hook, never for production) shifts this clock by
/// that many milliseconds, as a zone whose clock is off would be: the heartbeats the
/// daemon writes, the lags it measures and the skew its peers estimate move with it.
pub fn now_us() -> i64 {
    static OFFSET_US: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET_US.get_or_init(|| {
        std::env::var("DRC_FAKE_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map_or(0, |ms| ms * 1000)
    });
    chrono::Utc::now().timestamp_micros() + offset
}

/// Counts an error of a direction (`drc_errors_total`) and returns what its report
/// shows: the message, when (RFC 3339), and the state (`waiting` when it is retried,
/// `failed` when not).
fn failure(e: &crate::error::Error) -> (String, String, String) {
    let kind = if e.is_transient() { "transient" } else { "definite" };
    metrics::counter!(m::ERRORS, "kind" => kind).increment(1);
    let state = if e.is_transient() { "waiting" } else { "failed" };
    (e.to_string(), chrono::Utc::now().to_rfc3339(), state.into())
}

/// What `GET /status` reports for one direction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectionState {
    pub from_zone: String,
    pub to_zone: String,
    /// `starting`, `applying`, `paused`, `waiting` (for a server or the broker), `stopped`, `failed`.
    pub state: String,
    pub paused: bool,
    /// Origin GTID state after the last applied transaction (the resume point).
    pub applied_gtid: Option<String>,
    /// GTID of the last applied transaction.
    pub last_gtid: Option<String>,
    /// Origin binlog file:offset of the resume point.
    pub applied_binlog: Option<String>,
    /// Kafka topic/partition/offset of the last applied message.
    pub kafka_position: Option<String>,
    /// The applied position as written with the rows; `applied_gtid`/`applied_binlog`
    /// are derived from it when the status is read (not on every transaction).
    #[serde(skip)]
    pub position: Option<crate::position::Checkpoint>,
    /// Kafka (topic, partition, offset) of the last applied message; `kafka_position`
    /// is derived from it when the status is read.
    #[serde(skip)]
    pub kafka: Option<crate::position::KafkaPosition>,
    /// Lag, seconds (last sample, or growing since the last sample when nothing arrives).
    pub lag_seconds: Option<f64>,
    /// Last heartbeat sequence of the origin applied here.
    pub heartbeat_seq: Option<u64>,
    pub transactions: u64,
    pub rows: u64,
    pub conflicts: u64,
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339).
    pub last_error_at: Option<String>,
}

/// One direction's shared state.
pub struct Direction {
    pub from_zone: String,
    /// Its metric handles.
    pub metrics: m::DirectionMetrics,
    pause: watch::Sender<bool>,
    state: Mutex<DirectionState>,
    /// (origin write time, time applied here) of the last lag sample, µs.
    last_sample: Mutex<Option<(i64, i64)>>,
}

impl Direction {
    /// Edits the reported state.
    pub fn update(&self, f: impl FnOnce(&mut DirectionState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    pub fn snapshot(&self) -> DirectionState {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(cp) = &s.position {
            s.applied_gtid = cp.gtid.as_ref().map(|g| g.to_string());
            s.applied_binlog = Some(cp.file.to_string());
        }
        s.kafka_position = s
            .kafka
            .as_ref()
            .map(|k| format!("{}/{}@{}", k.topic, k.partition, k.offset));
        s
    }

    pub fn set_state(&self, state: &str) {
        self.update(|s| s.state = state.to_string());
    }

    /// Records an error (and counts it).
    pub fn error(&self, e: &crate::error::Error) {
        let (what, at, state) = failure(e);
        self.update(|s| {
            s.last_error = Some(what);
            s.last_error_at = Some(at);
            s.state = state;
        });
    }

    pub fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
        self.metrics.paused.set(if paused { 1.0 } else { 0.0 });
        self.update(|s| s.paused = paused);
    }

    /// True while the direction is paused.
    pub fn is_paused(&self) -> bool {
        *self.pause.borrow()
    }

    /// Waits while the direction is paused (call at a transaction boundary).
    pub async fn wait_if_paused(&self) {
        let mut rx = self.pause.subscribe();
        if !*rx.borrow() {
            return;
        }
        let before = self.snapshot().state;
        self.set_state("paused");
        tracing::info!(from = %self.from_zone, "direction paused; waiting for resume");
        let _ = rx.wait_for(|p| !*p).await;
        self.set_state(&before);
        tracing::info!(from = %self.from_zone, "direction resumed");
    }

    /// A lag sample: the origin wrote at `origin_us` (its clock), applied here now.
    pub fn observe_lag(&self, origin_us: i64) {
        let now = now_us();
        let lag = (now - origin_us) as f64 / 1e6;
        self.metrics.lag.set(lag);
        self.metrics.lag_histogram.record(lag.max(0.0));
        *self.last_sample.lock().unwrap_or_else(|e| e.into_inner()) = Some((origin_us, now));
        self.update(|s| s.lag_seconds = Some(lag));
    }

    /// The lag measured at the last sample, seconds.
    pub fn last_lag(&self) -> Option<f64> {
        self.last_sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(o, at)| (at - o) as f64 / 1e6)
    }

    /// When nothing arrived for `stall`, the lag is at least the age of the last
    /// origin write seen: the gauge grows instead of freezing.
    fn refresh_stalled(&self, stall: Duration) {
        let Some((origin, at)) = *self.last_sample.lock().unwrap_or_else(|e| e.into_inner()) else {
            return;
        };
        let now = now_us();
        if now - at > stall.as_micros() as i64 {
            let lag = (now - origin) as f64 / 1e6;
            self.metrics.lag.set(lag);
            self.update(|s| s.lag_seconds = Some(lag));
        }
    }
}

/// What `GET /status` reports for one Redis direction (origin zone's Redis → this
/// zone's Redis).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisDirectionState {
    pub from_zone: String,
    pub to_zone: String,
    /// `starting`, `syncing` (a full sync), `applying`, `waiting` (for a server), `failed`.
    pub state: String,
    /// The origin position after the last applied transaction: `<replid> <offset> <db>`.
    pub position: Option<String>,
    /// Lag from the origin's heartbeat key, seconds.
    pub lag_seconds: Option<f64>,
    pub transactions: u64,
    pub commands: u64,
    pub full_syncs: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// What `GET /status` reports for one ZooKeeper direction (origin zone's ensemble →
/// this zone's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZkDirectionState {
    pub from_zone: String,
    pub to_zone: String,
    /// `starting`, `reading` (a full read of the roots), `applying`, `waiting`, `failed`.
    pub state: String,
    pub roots: Vec<String>,
    /// Origin mtime of the last node applied after an event, to its application.
    pub lag_seconds: Option<f64>,
    pub nodes_written: u64,
    pub nodes_deleted: u64,
    pub reconciles: u64,
    pub conflicts: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// A state `GET /status` reports, with its last error.
pub trait Reported: Clone + Default + Serialize {
    fn failed(&mut self, what: String, at: String, state: String);
}

impl Reported for RedisDirectionState {
    fn failed(&mut self, what: String, at: String, state: String) {
        self.last_error = Some(what);
        self.last_error_at = Some(at);
        self.state = state;
    }
}

impl Reported for ZkDirectionState {
    fn failed(&mut self, what: String, at: String, state: String) {
        self.last_error = Some(what);
        self.last_error_at = Some(at);
        self.state = state;
    }
}

/// One direction's reported state (Redis, ZooKeeper).
pub struct Tracked<S> {
    state: Mutex<S>,
}

pub type RedisDirection = Tracked<RedisDirectionState>;
pub type ZkDirection = Tracked<ZkDirectionState>;

impl<S: Reported> Tracked<S> {
    pub fn new(s: S) -> Self {
        Tracked { state: Mutex::new(s) }
    }

    pub fn update(&self, f: impl FnOnce(&mut S)) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn snapshot(&self) -> S {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records an error.
    pub fn error(&self, e: &crate::error::Error) {
        let (what, at, state) = failure(e);
        self.update(|s| s.failed(what, at, state));
    }
}

/// The process-wide registry.
#[derive(Default)]
pub struct Registry {
    zone: Mutex<String>,
    directions: Mutex<BTreeMap<String, Arc<Direction>>>,
    redis: Mutex<BTreeMap<(String, String), Arc<RedisDirection>>>,
    zookeeper: Mutex<BTreeMap<String, Arc<ZkDirection>>>,
    producer: Mutex<Option<serde_json::Value>>,
}

pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

impl Registry {
    pub fn set_zone(&self, zone: &str) {
        *self.zone.lock().unwrap_or_else(|e| e.into_inner()) = zone.to_string();
    }

    /// The direction `from` → this zone (created on first use).
    pub fn direction(&self, from: &str) -> Arc<Direction> {
        let to = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut d = self.directions.lock().unwrap_or_else(|e| e.into_inner());
        d.entry(from.to_string())
            .or_insert_with(|| {
                Arc::new(Direction {
                    from_zone: from.to_string(),
                    metrics: m::DirectionMetrics::new(from, &to),
                    pause: watch::Sender::new(false),
                    state: Mutex::new(DirectionState {
                        from_zone: from.to_string(),
                        to_zone: to,
                        state: "starting".into(),
                        ..Default::default()
                    }),
                    last_sample: Mutex::new(None),
                })
            })
            .clone()
    }

    pub fn directions(&self) -> Vec<Arc<Direction>> {
        self.directions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The Redis direction `from` → this zone (created on first use).
    pub fn redis_direction(&self, from: &str) -> Arc<RedisDirection> {
        let to = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.redis_entry(from, to)
    }

    /// This zone's Redis → Kafka (the publisher; `to_zone` is `kafka`).
    pub fn redis_publisher(&self) -> Arc<RedisDirection> {
        let zone = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.redis_entry(&zone, "kafka".into())
    }

    fn redis_entry(&self, from: &str, to: String) -> Arc<RedisDirection> {
        let mut d = self.redis.lock().unwrap_or_else(|e| e.into_inner());
        d.entry((from.to_string(), to.clone()))
            .or_insert_with(|| {
                Arc::new(RedisDirection::new(RedisDirectionState {
                    from_zone: from.to_string(),
                    to_zone: to,
                    state: "starting".into(),
                    ..Default::default()
                }))
            })
            .clone()
    }

    /// The ZooKeeper direction `from` → this zone (created on first use).
    pub fn zk_direction(&self, from: &str) -> Arc<ZkDirection> {
        let to = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut d = self.zookeeper.lock().unwrap_or_else(|e| e.into_inner());
        d.entry(from.to_string())
            .or_insert_with(|| {
                Arc::new(ZkDirection::new(ZkDirectionState {
                    from_zone: from.to_string(),
                    to_zone: to,
                    state: "starting".into(),
                    ..Default::default()
                }))
            })
            .clone()
    }

    /// The Kafka producer's state (`GET /status` → `publishing`).
    pub fn set_producer(&self, v: serde_json::Value) {
        *self.producer.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    }

    /// Lags measured here, by origin zone: what this zone's heartbeat carries.
    pub fn lags(&self) -> BTreeMap<String, f64> {
        self.directions()
            .iter()
            .filter_map(|d| d.last_lag().map(|l| (d.from_zone.clone(), l)))
            .collect()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let zone = self.zone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let directions: Vec<DirectionState> = self.directions().iter().map(|d| d.snapshot()).collect();
        let redis: Vec<RedisDirectionState> = self
            .redis
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|d| d.snapshot())
            .collect();
        let zookeeper: Vec<ZkDirectionState> = self
            .zookeeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|d| d.snapshot())
            .collect();
        serde_json::json!({
            "zone": zone,
            "directions": directions,
            "redis": redis,
            "zookeeper": zookeeper,
            "publishing": self.producer.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        })
    }

    /// Keeps the lag gauges growing while directions are stalled (runs forever).
    pub async fn stall_watch(&self, heartbeat: Duration) {
        let stall = (heartbeat * 2).max(Duration::from_millis(500));
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            for d in self.directions() {
                d.refresh_stalled(stall);
            }
        }
    }
}
