//! The applier: writes origin transactions into the local MySQL with last-writer-wins,
//! ID-range checks and loop markers, recording the origin position in the same target
//! transaction.
//!
//! | file | role |
//! |---|---|
//! | [`lww`] | the last-writer-wins decision for one row (pure, property-tested) |
//! | [`id_range`] | per-zone primary-key ranges |
//! | [`apply`] | origin transactions → target transactions (marker, rows, position), group commit, batches |
//! | [`table`] | local table metadata (drc puts nothing in the application's tables) |
//! | [`sql`] | identifier quoting, value binding, version arithmetic |
//! | [`version`] | versions as DATETIME values; the version of a delete, the same in every zone |

pub mod apply;
pub mod id_range;
pub mod lww;
pub mod sink;
pub mod sql;
pub mod table;
pub mod version;
