//! Redis sync (issue 14), being built: what exists so far is the capture side — the
//! reader of RDB snapshots ([`rdb`]), the payload of a replica's full sync, streamed
//! with bounded memory, and the replica connection ([`replica`]: PSYNC, the snapshot,
//! the command stream with its offsets, continuation from an offset), both tested
//! against real redis-servers (`tests/redis_rdb.rs`, `tests/redis_replica.rs`), and
//! the grouping of the stream into origin transactions with the applier's marked
//! ([`stream`]), and their exactly-once application with the position in the same
//! MULTI/EXEC ([`apply`], `tests/redis_apply.rs`). The
//! pipeline source and sink, the applier and the wiring into the daemon come next
//! (docs/ARCHITECTURE.md, "Redis").

pub mod apply;
pub mod rdb;
pub mod replica;
pub mod snapshot;
pub mod stream;
