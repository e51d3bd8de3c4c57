//! Replication positions as types: never ad-hoc strings.
//!
//! * [`GtidSet`]: a MySQL executed-GTID set (`uuid[:tag]:intervals`), what a MySQL
//!   replica sends in `COM_BINLOG_DUMP_GTID`.
//! * [`MariaGtidPos`]: a MariaDB GTID position (`domain-server-seq` per domain), what a
//!   MariaDB replica puts in `@slave_connect_state`.
//! * [`FilePos`]: a binlog file name and byte offset.
//! * [`Gtid`]: the identity of one transaction, in either flavor.
//! * [`Checkpoint`]: everything a reader needs to resume after a transaction: the file
//!   position and, when the server has GTIDs, the GTID state including that transaction.
//!
//! Every type parses and formats the same text the servers use (`parse(format(x)) == x`,
//! property-tested), so a DBA can copy a position from `SHOW MASTER STATUS` /
//! `@@gtid_binlog_pos` / `@@gtid_executed` onto the command line and back.

/// Serializes a position type as its server text form (Display / FromStr), so a
/// saved checkpoint reads like what `SHOW MASTER STATUS` prints.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_text;

mod file;
mod mariadb;
mod mysql;

pub use file::FilePos;
pub use mariadb::{MariaGtid, MariaGtidPos};
pub use mysql::{GtidSet, MysqlGtid};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A position string that does not parse. The message names the offending text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} {text:?}: {why}")]
pub struct ParseError {
    pub kind: &'static str,
    pub text: String,
    pub why: String,
}

impl ParseError {
    pub(crate) fn new(kind: &'static str, text: &str, why: impl Into<String>) -> Self {
        ParseError {
            kind,
            text: text.to_string(),
            why: why.into(),
        }
    }
}

/// The identity of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gtid {
    Mysql(MysqlGtid),
    Maria(MariaGtid),
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::Mysql(g) => g.fmt(f),
            Gtid::Maria(g) => g.fmt(f),
        }
    }
}

impl std::str::FromStr for Gtid {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.contains(':') {
            s.parse().map(Gtid::Mysql)
        } else {
            s.parse().map(Gtid::Maria)
        }
    }
}

/// The GTID state of a stream: which transactions have been seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flavor", content = "set", rename_all = "lowercase")]
pub enum GtidState {
    /// MySQL: the set of all GTIDs seen (executed set).
    Mysql(GtidSet),
    /// MariaDB: the last GTID seen per replication domain.
    Mariadb(MariaGtidPos),
}

impl GtidState {
    /// Records that `gtid` has been seen. A GTID of the other flavor is a broken
    /// invariant of the caller (one server speaks one flavor) and is ignored.
    pub fn add(&mut self, gtid: &Gtid) {
        match (self, gtid) {
            (GtidState::Mysql(set), Gtid::Mysql(g)) => set.add(g),
            (GtidState::Mariadb(pos), Gtid::Maria(g)) => pos.update(*g),
            _ => {}
        }
    }

    /// True when `gtid` is already part of this state (a replay would be a duplicate).
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match (self, gtid) {
            (GtidState::Mysql(set), Gtid::Mysql(g)) => set.contains(g),
            (GtidState::Mariadb(pos), Gtid::Maria(g)) => pos.contains(g),
            _ => false,
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::Mysql(s) => s.fmt(f),
            GtidState::Mariadb(p) => p.fmt(f),
        }
    }
}

/// Where a reader resumes: the point right after the last transaction it handed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// File and offset of the end of the last complete transaction. The file name is
    /// empty when only the GTID state is known (a reader started from a GTID); a
    /// GTID-mode resume does not need it.
    pub file: FilePos,
    /// GTID state including that transaction, when the server logs GTIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<GtidState>,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.gtid, self.file.file.is_empty()) {
            (Some(g), true) => write!(f, "gtid={g}"),
            (Some(g), false) => write!(f, "{} gtid={g}", self.file),
            (None, _) => write!(f, "{}", self.file),
        }
    }
}

/// Where a transaction was read from a Kafka topic: stored in `drc.applied` with the
/// rows, so the consumer resumes after the last applied message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl serde::Serialize for KafkaPosition {
    /// `[topic, partition, offset]` in `/status` (the format since the Kafka transport).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.topic, self.partition, self.offset).serialize(s)
    }
}
