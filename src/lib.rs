//! # drc — Data Replication Center
//!
//! Active-active replication between MySQL/MariaDB zones. Every sync is the same few
//! parts ([`pipeline`]): a source, a bounded channel, a sink that owns the durable
//! position, one run loop per direction; [`daemon`] wires them from the config
//! (docs/ARCHITECTURE.md). Layers, bottom to top — a module imports only from its
//! own layer's leaves or from lower layers (checked by `testenv/layers.sh`):
//!
//! | layer | module | role |
//! |---|---|---|
//! | 0 | [`error`] | errors grouped by what to do about them (transient vs definite) |
//! | 0 | [`position`] | positions as types: MySQL GTID sets, MariaDB GTID positions, file/offset, Kafka offset |
//! | 0 | [`model`] | the event model: [`model::Transaction`], [`model::RowChange`], [`model::Value`] |
//! | 0 | [`telemetry`] | every metric name, per-direction status, pause/resume, rate-limited logs |
//! | 1 | [`pipeline`] | `Source`, `Sink`, bounded channel, run loop, restart-on-transient, `Shutdown` |
//! | 2 | [`mysql`] | binlog reader (source), applier (sink: last-writer-wins, ID ranges, exactly-once positions), journal (sink of the zone's own binlog: tombstones, raises, renames), claims, heartbeats, error classifier |
//! | 2 | [`kafka`] | Kafka client config, wire format, producer (sink), consumer (source) |
//! | 2 | [`output`] | the JSON-lines `change_event` v1 format (`schemas/change_event.v1.json`) |
//! | 3 | [`config`] | the strict, documented TOML config of one zone daemon; composes the parts' settings |
//! | 4 | [`ops`] | operator tools: `drc check`, admin HTTP endpoint, fencing |
//! | 5 | [`daemon`] | turns the config into pipelines, starts and supervises them |
//!
//! Room is kept, by name, for `redis` and `zookeeper` at layer 2 (issues 14, 15):
//! each a source and a sink on the same [`pipeline`] shape, wired by [`daemon`].

pub mod config;
pub mod daemon;
pub mod error;
pub mod kafka;
pub mod model;
pub mod mysql;
pub mod ops;
pub mod output;
pub mod pipeline;
pub mod position;
pub mod redis;
pub mod telemetry;
pub mod tls;
pub mod zookeeper;
