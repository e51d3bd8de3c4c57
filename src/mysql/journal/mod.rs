//! The journal: drc's reader of its **own** zone's binlog, which keeps last-writer-wins
//! whole without putting anything in the application's tables (no trigger, no
//! column). What triggers did inside the application's writes, the journal does
//! after the fact, from the binlog, in binlog order:
//!
//! * **Tombstones of local deletes.** A local delete of a row of version `r` records
//!   the tombstone `X = max(r, t)`, `t` an upper bound of the delete's time (MySQL 8:
//!   the exact commit time; MariaDB: the reader's arrival clock while caught up, else
//!   the end of the event's second), never above the version of a write of the same
//!   key later in the same transaction (delete-then-insert stays an insert that wins).
//!   The tombstone row is written in a journal transaction, which is shipped to the
//!   other zones like the application's: their appliers apply it as a delete of
//!   version `X` (`Applier::apply_tombstone`).
//! * **Local writes never go back in version.** A local update whose new version is
//!   not greater than the row it replaced (a statement time taken before a lock wait,
//!   a clock behind), and a local insert not greater than the key's tombstone, are
//!   raised: the row, if it still has a version `<=` the replaced one, gets that
//!   version plus the column's smallest step. The raise is a local write like any
//!   other and is shipped; the other zones take the first write as a *successor*
//!   (its before image is their row: `lww::decide`) and then the raise.
//! * **The window.** An applier transaction decides against the tombstones committed
//!   when it began: its loop-marker row carries the journal position it saw
//!   (`drc.marker.journal_file/pos`, the *watermark*). When the journal meets an
//!   applier transaction, the inserts it made into tables with a local delete after
//!   its watermark are checked against the tombstones: an insert the tombstone beats
//!   (a row resurrected by a late older update) is deleted again.
//!
//! # Resumption
//! The position (`drc.journal`: local binlog file/offset and GTID state) is written
//! in the same transaction as the tombstones and raises it covers; everything the
//! journal does is idempotent (tombstones keep the greatest, raises and undos are
//! conditional on the row's version), so re-reading after a crash repeats nothing
//! harmful. A first start pins "now": deletes before it were recorded by the triggers
//! of an older drc, or never concerned drc.
//!
//! # Loops
//! Journal transactions start by bumping the `drc.journal` row; the journal skips
//! them (its writes never go back in version) and every applier transaction (they
//! are the other zones' writes). The other zones apply journal transactions, which
//! do not count as applied origin transactions.

pub mod sink;

use crate::error::Error;
use crate::position::{Checkpoint, FilePos, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub use crate::mysql::is_journal_transaction;
pub use sink::JournalSink;

/// The stored position of the journal `channel` (`zone` or `zone/channel`).
pub async fn position(conn: &mut Conn, channel: &str, addr: &str) -> Result<Option<Checkpoint>, Error> {
    let row: Option<(Option<String>, String, u64)> = conn
        .exec_first(
            "SELECT gtid, file, pos FROM `drc`.`journal` WHERE channel = ?",
            (channel,),
        )
        .await
        .map_err(|e| crate::mysql::error::classify(addr, "reading drc.journal", e))?;
    Ok(row.map(|(gtid, file, pos)| Checkpoint {
        file: FilePos::new(file, pos),
        gtid: gtid.and_then(|g| serde_json::from_str::<GtidState>(&g).ok()),
    }))
}

/// Records `cp` as the journal's position when none is stored yet (a first start:
/// a restart before the first journalled transaction resumes from the same place).
pub async fn pin(conn: &mut Conn, channel: &str, cp: &Checkpoint, addr: &str) -> Result<(), Error> {
    let gtid = cp
        .gtid
        .as_ref()
        .map(|g| serde_json::to_string(g).expect("gtid serializes"));
    conn.exec_drop(
        "INSERT IGNORE INTO `drc`.`journal` (channel, gtid, file, pos) VALUES (?, ?, ?, ?)",
        (channel, gtid, &cp.file.file, cp.file.pos),
    )
    .await
    .map_err(|e| crate::mysql::error::classify(addr, "writing drc.journal", e))
}
