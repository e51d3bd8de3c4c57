//! Redis sync (issue 14): each zone's Redis keeps the configured keyspaces in step
//! with its peers' (docs/REDIS.md). The same shape as MySQL: a source ([`source`]: drc
//! as a replica of the origin's Redis — [`replica`] speaks PSYNC, [`rdb`] streams the
//! full sync's snapshot, [`snapshot`] turns it into chunks ([`fullsync`] applies
//! them without undoing this zone's recent writes, and sweeps what the origin
//! deleted), [`stream`] groups the
//! command stream into origin transactions, [`scope`] decides what is synced), a
//! sink ([`sink`] over [`apply`]: one MULTI/EXEC per origin transaction with the
//! origin position in it), the run loop of `src/pipeline/`, wired in
//! `src/daemon/redis.rs`; [`verify`] compares two zones' keys (`drc redis verify`) and
//! repairs keys with a home zone.

pub mod apply;
pub mod endpoint;
pub mod fullsync;
pub mod lww;
pub mod own;
pub mod rdb;
pub mod replica;
pub mod scope;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod stream;
pub mod verify;
pub mod wire;
