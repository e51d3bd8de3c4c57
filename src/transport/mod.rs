//! Transports: how one zone's transactions reach the appliers of the others.
//!
//! | file | role |
//! |---|---|
//! | [`direct`] | the applier's daemon reads the peer zone's binlog itself (no broker) |
//!
//! The contract is the reader's: a stream of [`crate::model::Transaction`] fragments
//! in commit order, restartable from a [`crate::position::Checkpoint`] that the
//! applier stores in the target database. The Kafka transport plugs in beside `direct`.

pub mod direct;
pub mod kafka;
pub mod wire;
