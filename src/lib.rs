//! # drc — Data Replication Center
//!
//! Active-active replication between MySQL/MariaDB zones. Data flows
//! `reader -> transport -> applier` (see docs/ARCHITECTURE.md); this map names every
//! module in one line.
//!
//! | module | role |
//! |---|---|
//! | [`applier`] | last-writer-wins decisions and per-zone ID ranges (the SQL applier is being built) |
//! | [`config`] | the strict, documented TOML config of one zone daemon |
//! | [`model`] | the event model: [`model::Transaction`], [`model::RowChange`], [`model::Value`] |
//! | [`position`] | positions as types: MySQL GTID sets, MariaDB GTID positions, file/offset |
//! | [`reader`] | binlog reader: file framing, live replica stream, decoding, transaction assembly, checkpoints |
//! | [`output`] | the JSON-lines `change_event` v1 format (`schemas/change_event.v1.json`) |
//! | [`transport`] | how transactions travel between zones: direct (no broker) |
//! | [`ops`] | operator tools: `drc check` (server readiness) |
//! | [`error`] | errors grouped by what to do about them (transient vs definite) |
//!
//! Planned (see the issues): `transport` (direct, Kafka), `applier` (last-writer-wins,
//! ID ranges, exactly-once positions), `sync` (Redis, ZooKeeper), `ops` metrics and admin API.

pub mod applier;
pub mod config;
pub mod error;
pub mod model;
pub mod ops;
pub mod output;
pub mod position;
pub mod reader;
pub mod transport;
