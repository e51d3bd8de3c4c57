//! The command stream of a Redis server as origin transactions: what one
//! `MULTI … EXEC` (a client's transaction, or the effects of a script, which Redis 7
//! replicates wrapped the same way) or one command changed, with the database of each
//! command (`SELECT` in the stream) and the replication offset after it.
//!
//! Loops: drc's applier writes a peer's transaction as `MULTI`, `SELECT 0`, `SET
//! drc:pos:<origin> <position>`, the commands, `EXEC` (the position key is the marker
//! and the exactly-once record at once). A transaction whose first write is a key
//! under [`MARKER_PREFIX`] (or [`MARK_PREFIX`]: drc's repairs) in database 0 is the
//! applier's: it is marked, and never
//! shipped back. `PING` and `REPLCONF` carry nothing. A position in the stream is
//! (replid, offset, selected database) ([`Grouper::new`]). `FLUSHALL`, `FLUSHDB` and
//! `SWAPDB` are marked refused: drc never propagates them (the caller alerts).

use super::replica::StreamCommand;

/// Keys of drc's applier positions (one per origin): `drc:pos:<origin>`.
pub const MARKER_PREFIX: &[u8] = b"drc:pos:";
/// Keys of drc's other marked writes (repairs: `drc:mark:repair`).
pub const MARK_PREFIX: &[u8] = b"drc:mark:";

/// One origin transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTx {
    /// (database, command and arguments), in order.
    pub commands: Vec<(u64, Vec<Vec<u8>>)>,
    /// The replication offset after the transaction.
    pub offset: u64,
    /// Written by drc's applier (a peer's transaction): not to be shipped.
    pub applier: bool,
    /// A command drc never propagates, named.
    pub refused: Option<String>,
}

/// What one argument costs in memory besides its bytes: its `Vec` (24 bytes) and the
/// allocator's rounding. A million 7-byte set members held as arguments take about
/// 39 MB, not 7: batches are sized by what they hold.
const ARG_OVERHEAD: usize = 32;

impl RedisTx {
    /// About how many bytes of memory its commands hold (arguments and their
    /// vectors), for sizing batches and messages.
    pub fn bytes(&self) -> usize {
        self.commands
            .iter()
            .flat_map(|(_, c)| c.iter())
            .map(|a| a.len() + ARG_OVERHEAD)
            .sum()
    }
}

/// Groups stream commands into [`RedisTx`]s.
#[derive(Debug, Default)]
pub struct Grouper {
    db: u64,
    open: Option<RedisTx>,
}

impl Grouper {
    /// A grouper continuing a stream whose selected database is `db`: a position in
    /// the stream is (replid, offset, database), since a continuation (`+CONTINUE`)
    /// does not repeat the `SELECT` made before its offset.
    pub fn new(db: u64) -> Self {
        Grouper { db, open: None }
    }

    /// The database the stream has selected (part of a position).
    pub fn db(&self) -> u64 {
        self.db
    }

    /// The open transaction is drc's applier's (its first write was drc's marker).
    pub fn in_applier_tx(&self) -> bool {
        self.open.as_ref().is_some_and(|t| t.applier)
    }

    /// The key of the open applier transaction's marker (`drc:pos:<origin>` or
    /// `drc:mark:...`): whose data drc is applying.
    pub fn applier_marker(&self) -> Option<&[u8]> {
        let tx = self.open.as_ref().filter(|t| t.applier)?;
        tx.commands.first().and_then(|(_, a)| a.get(1)).map(|k| k.as_slice())
    }

    /// No transaction is open (between origin transactions).
    pub fn idle(&self) -> bool {
        self.open.is_none()
    }

    /// Feeds one command; returns a transaction when one is complete.
    pub fn push(&mut self, c: StreamCommand) -> Option<RedisTx> {
        let name = c.name();
        match name.as_str() {
            "PING" | "REPLCONF" => None,
            "SELECT" => {
                if let Some(db) = c.args.get(1).and_then(|d| std::str::from_utf8(d).ok()?.parse().ok()) {
                    self.db = db;
                }
                None
            }
            "MULTI" => {
                self.open = Some(RedisTx {
                    commands: Vec::new(),
                    offset: c.offset,
                    applier: false,
                    refused: None,
                });
                None
            }
            "EXEC" => {
                let mut tx = self.open.take()?;
                tx.offset = c.offset;
                Some(tx)
            }
            _ => {
                let db = self.db;
                let single = self.open.is_none();
                let tx = self.open.get_or_insert_with(|| RedisTx {
                    commands: Vec::new(),
                    offset: c.offset,
                    applier: false,
                    refused: None,
                });
                if tx.commands.is_empty()
                    && db == 0
                    && name == "SET"
                    && c.args
                        .get(1)
                        .is_some_and(|k| k.starts_with(MARKER_PREFIX) || k.starts_with(MARK_PREFIX))
                {
                    tx.applier = true;
                }
                if matches!(name.as_str(), "FLUSHALL" | "FLUSHDB" | "SWAPDB") {
                    tx.refused = Some(name);
                }
                tx.commands.push((db, c.args));
                tx.offset = c.offset;
                if single {
                    return self.open.take();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(offset: u64, args: &[&str]) -> StreamCommand {
        StreamCommand {
            args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
            offset,
        }
    }

    #[test]
    fn commands_group_into_transactions_with_their_databases_and_offsets() {
        let mut g = Grouper::default();
        let mut out = Vec::new();
        for c in [
            cmd(10, &["PING"]),
            cmd(20, &["SELECT", "3"]),
            cmd(30, &["SET", "a", "1"]),
            cmd(40, &["MULTI"]),
            cmd(50, &["INCR", "n"]),
            cmd(60, &["SELECT", "4"]),
            cmd(70, &["DEL", "b"]),
            cmd(80, &["EXEC"]),
            cmd(90, &["FLUSHDB"]),
        ] {
            out.extend(g.push(c));
        }
        let args = |v: &[&str]| v.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].commands, vec![(3, args(&["SET", "a", "1"]))]);
        assert_eq!(out[0].offset, 30);
        assert_eq!(
            out[1].commands,
            vec![(3, args(&["INCR", "n"])), (4, args(&["DEL", "b"]))]
        );
        assert_eq!(out[1].offset, 80);
        assert!(!out[1].applier);
        assert_eq!(out[2].refused.as_deref(), Some("FLUSHDB"));
    }

    #[test]
    fn the_appliers_transactions_are_marked() {
        let mut g = Grouper::default();
        let mut out = Vec::new();
        for c in [
            cmd(1, &["MULTI"]),
            cmd(2, &["SELECT", "0"]),
            cmd(3, &["SET", "drc:pos:a", "replid:77"]),
            cmd(4, &["SELECT", "2"]),
            cmd(5, &["SET", "k", "v"]),
            cmd(6, &["EXEC"]),
            // an application's write of a key that only looks like the marker, in
            // another database, or not first: not the applier's
            cmd(7, &["MULTI"]),
            cmd(8, &["SET", "x", "1"]),
            cmd(9, &["SET", "drc:pos:a", "2"]),
            cmd(10, &["EXEC"]),
        ] {
            out.extend(g.push(c));
        }
        assert!(out[0].applier);
        assert!(!out[1].applier);
    }
}
