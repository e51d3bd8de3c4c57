//! This zone's own Redis stream, read as a second replica of this zone's Redis: what
//! this zone wrote itself lately. A full sync reads it so as not to replace this
//! zone's recent writes ([`super::fullsync`]); later-write-wins reads it to know when
//! this zone last wrote a key ([`super::lww`]).
//!
//! # Invariants
//! * It is read only up to an end the caller took from the server
//!   (`master_repl_offset`, [`OwnStream::read_to`]) and acknowledged as read: this
//!   replica never holds the server's shutdown back.
//! * The clock is this zone's heartbeat (`SET drc:hb:<zone> <ms>`) last seen in the
//!   stream, exactly as a peer's capture of the same stream computes it.

use super::apply::RedisPos;
use super::fullsync::Local;
use super::replica::{Replica, Sync};
use super::stream::{Grouper, RedisTx};
use crate::error::Error;
use std::time::Duration;

/// The reading end of this zone's own stream.
pub struct OwnStream {
    replica: Replica,
    grouper: Grouper,
    hb_key: Vec<u8>,
    /// This zone's last heartbeat time (ms) before the point read.
    pub clock: i64,
    /// The stream's selected database is not known yet (read from an offset taken
    /// from the server, not from a position): nothing is handed on before a `SELECT`.
    db_unknown: bool,
    /// Which of the applier's transactions are read past (their arguments not kept):
    /// those a reader ignores whole.
    light: Light,
}

/// Which applier transactions [`OwnStream::read_to`] reads without their arguments.
#[derive(Debug, Clone, PartialEq)]
enum Light {
    None,
    /// Every one (later-write-wins ignores drc's writes).
    Applier,
    /// Those whose marker is this key: one origin's data (a full sync from that origin
    /// ignores its own data applied here, which is the snapshot itself: holding a
    /// batch of a million-member set's chunks whole would double the sync's memory).
    Marker(Vec<u8>),
}

fn transient(addr: &str, what: String) -> Error {
    Error::Transient {
        addr: addr.to_string(),
        what,
    }
}

impl OwnStream {
    /// This zone's stream after `from` (replid, offset, database, clock); `None` when
    /// its backlog no longer holds that point.
    pub async fn after(local: &Local, from: &RedisPos) -> Result<Option<OwnStream>, Error> {
        let (replica, sync) = Replica::connect(&local.server, Some((&from.replid, from.offset)))
            .await
            .map_err(|e| transient(&local.server.addr, format!("reading this zone's Redis stream: {e}")))?;
        Ok(match sync {
            Sync::Continue { .. } => Some(OwnStream {
                replica,
                grouper: Grouper::new(from.db),
                hb_key: [super::source::HEARTBEAT_PREFIX, local.zone.as_bytes()].concat(),
                clock: from.clock,
                db_unknown: false,
                light: Light::None,
            }),
            // (the connection is dropped before the server sends its snapshot)
            Sync::Full { .. } => None,
        })
    }

    /// The stream was continued from an offset whose selected database is not known:
    /// transactions are handed on only after the stream's next `SELECT`.
    pub fn db_unknown(&mut self) {
        self.db_unknown = true;
    }

    /// The applier's transactions are handed on without their commands' arguments
    /// (for a reader that skips every applier transaction).
    pub fn light_applier(&mut self) {
        self.light = Light::Applier;
    }

    /// The applier's transactions of the origin whose marker is `marker` are handed
    /// on without their commands' arguments after the marker.
    pub fn light_marker(&mut self, marker: Vec<u8>) {
        self.light = Light::Marker(marker);
    }

    /// Where it has read to: (replid, offset).
    pub fn at(&self) -> (&str, u64) {
        (&self.replica.replid, self.replica.offset)
    }

    /// Reads the stream up to `end` (this zone's `master_repl_offset`, taken by the
    /// caller), handing every transaction and the clock before it to `each`.
    pub async fn read_to(&mut self, end: u64, mut each: impl FnMut(&RedisTx, i64)) -> Result<(), Error> {
        while self.replica.offset < end {
            let light = match &self.light {
                Light::None => false,
                Light::Applier => self.grouper.in_applier_tx(),
                Light::Marker(m) => self.grouper.applier_marker() == Some(m.as_slice()),
            };
            let c = tokio::time::timeout(Duration::from_secs(10), self.replica.next_command_light(light))
                .await
                .map_err(|_| transient("", "this zone's Redis stream stalled".into()))?
                .map_err(|e| transient("", format!("reading this zone's Redis stream: {e}")))?;
            if self.db_unknown && c.name() == "SELECT" {
                self.db_unknown = false;
            }
            let Some(tx) = self.grouper.push(c) else { continue };
            if self.db_unknown {
                continue;
            }
            if let Some(ms) = heartbeat(&tx, &self.hb_key) {
                self.clock = ms;
                continue;
            }
            each(&tx, self.clock);
        }
        let read = self.replica.offset;
        self.replica.acknowledge_later(read);
        Ok(())
    }
}

/// A daemon's heartbeat: one `SET drc:hb:<zone> <ms>` (`key`) in database 0.
pub fn heartbeat(tx: &RedisTx, key: &[u8]) -> Option<i64> {
    match tx.commands.as_slice() {
        [(0, args)] if args.len() == 3 && args[0].eq_ignore_ascii_case(b"SET") && args[1] == key => {
            std::str::from_utf8(&args[2]).ok()?.parse().ok()
        }
        _ => None,
    }
}
