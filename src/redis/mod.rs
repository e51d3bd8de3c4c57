//! Redis sync (issue 14), being built: what exists so far is the reader of RDB
//! snapshots ([`rdb`]), the payload of a replica's full sync, streamed with bounded
//! memory and checked against snapshots written by a real redis-server
//! (`tests/redis_rdb.rs`). The replica connection (PSYNC), the command stream, the
//! applier and the wiring into the daemon come next (docs/ARCHITECTURE.md, "Redis").

pub mod rdb;
