//! Errors grouped by what an operator does about them.
//!
//! * **Transient**: the network, a server restart, a timeout. The reader reconnects
//!   with backoff and resumes from its last checkpoint; nothing is lost or repeated.
//! * **Definite**: the data or the setup is wrong (corrupt binlog, purged binlog,
//!   missing privilege, bad config). Retrying cannot help: drc stops and the message
//!   says what is wrong, where, and how to fix it.

use crate::config::ConfigError;
use crate::reader::DecodeError;

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
}

impl Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }

    /// Classifies a mysql_async error from the connection to `addr`.
    pub fn from_mysql(addr: &str, wanted: &str, e: mysql_async::Error) -> Error {
        use mysql_async::Error as E;
        match &e {
            E::Server(s) if s.code == 1236 => Error::Purged {
                addr: addr.into(),
                wanted: wanted.into(),
                server_msg: s.message.clone(),
            },
            // access denied, unknown database, missing privilege: fix the setup
            E::Server(s) if [1044, 1045, 1142, 1227, 1049, 1698].contains(&s.code) => Error::Server {
                addr: addr.into(),
                what: format!(
                    "{} (error {}); check the user and grants in docs/OPERATIONS.md",
                    s.message, s.code
                ),
            },
            E::Server(s) => Error::Transient {
                addr: addr.into(),
                what: format!("server error {}: {}", s.code, s.message),
            },
            E::Url(_) => Error::Server {
                addr: addr.into(),
                what: e.to_string(),
            },
            _ => Error::Transient {
                addr: addr.into(),
                what: e.to_string(),
            },
        }
    }
}
