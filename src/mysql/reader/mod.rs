//! The binlog reader: from a server's binlog to committed, zone-tagged transactions.
//!
//! | file | role |
//! |---|---|
//! | [`file`] | offline framing of binlog files (`drc binlog dump`) |
//! | [`live`] | the replica connection: resume, reconnect, purge detection (`drc binlog tail`) |
//! | [`assembler`] | events → transactions (grouping, fragments, checkpoints) |
//! | [`rows`] | ROWS events → row changes (the hot path) |
//! | [`cells`] | one cell's bytes → an exact [`crate::model::Value`] (the common types) |
//! | [`values`] | mysql_common's generic cell → a `Value` (JSON, GEOMETRY, ...), charsets |
//! | [`schema`] | table schemas from TABLE_MAP metadata |
//! | [`checkpoint`] | the reader's resume position in its sled state directory |

pub mod assembler;
pub mod cells;
pub mod checkpoint;
pub mod file;
pub mod live;
pub mod rows;
pub mod schema;
pub mod source;
pub mod values;

pub use assembler::{Assembler, DecodeError, EventPos, Limits};
