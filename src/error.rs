//! Errors grouped by what an operator does about them.
//!
//! * **Transient**: the network, a server restart, a timeout. The pipeline restarts
//!   the direction with backoff and it resumes from its durable position; nothing is
//!   lost or repeated.
//! * **Definite**: the data or the setup is wrong (corrupt binlog, purged binlog,
//!   missing privilege, bad config). Retrying cannot help: drc stops and the message
//!   says what is wrong, where, and how to fix it.
//!
//! This module is the bottom layer: it imports nothing of drc. Errors of a server
//! are classified where the server's client lives (MySQL: [`crate::mysql::error`]).

/// A config problem, with the file and the key to fix.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {what}")]
pub struct ConfigError {
    pub path: String,
    pub what: String,
}

/// A problem with a binlog's content. Always definite: re-reading gives the same.
#[derive(Debug, thiserror::Error)]
#[error("{file} at offset {offset}: {what}")]
pub struct DecodeError {
    pub file: String,
    pub offset: u64,
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The binlog the reader needs is gone from the server.
    #[error("{addr}: the binlog needed to resume from {wanted} is no longer on the server ({server_msg}). drc will not skip ahead: re-seed the peer zones from a consistent copy and restart with a new position (--from now), or restore the purged binlogs")]
    Purged {
        addr: String,
        wanted: String,
        server_msg: String,
    },
    /// The server is not set up the way drc needs.
    #[error("{addr}: {what}")]
    Server { addr: String, what: String },
    /// The reader's local state (sled) cannot be used.
    #[error("state directory {dir}: {what}")]
    State { dir: String, what: String },
    /// Network or server restart; retried.
    #[error("{addr}: {what}")]
    Transient { addr: String, what: String },
    /// Writing our own output failed (closed pipe, full disk).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// A task of the daemon panicked (a bug in drc: the message names the task).
    #[error("task {task} panicked: {what}; drc stopped (please report it with the log)")]
    Panicked { task: String, what: String },
}

impl Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }
}
