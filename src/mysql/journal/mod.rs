//! The journal: drc's reader of its **own** zone's binlog, which keeps last-writer-wins
//! whole without putting anything in the application's tables (no trigger, no
//! column). What triggers did inside the application's writes, the journal does
//! after the fact, from the binlog, in binlog order:
//!
//! * **Tombstones of local deletes.** A delete's version is computed from the delete
//!   event by every zone alike ([`crate::mysql::applier::version::delete_version`]:
//!   its time, never less than the row it removed), so nothing about it has to be
//!   shipped; the journal records it in `drc.tombstones` for this zone's own appliers.
//! * **Local writes never go back in version.** A local update whose new version is
//!   not greater than the row it replaced (a statement time taken before a lock wait,
//!   a clock behind), and a local insert not greater than the key's tombstone, are
//!   raised to that version plus the column's smallest step — only if the row is still
//!   that write (its version unchanged). If it moved on, the next write of the key the
//!   journal meets owes the raise (a local write's floor includes it; an applier write
//!   not above it is raised). The raise is a local write like any other and is
//!   shipped; the other zones take the first write as a *successor* (its before image
//!   is their row: `lww::decide`) and then the raise.
//! * **Renames.** A `RENAME TABLE` (or `ALTER TABLE … RENAME`) of a replicated table
//!   is recorded in `drc.renamed`: the other zones keep writing the old name until the
//!   DBA renames there too, and this zone's appliers apply those changes to the new
//!   name ([`crate::mysql::ddl`]).
//! * **The window.** An applier transaction decides against the tombstones committed
//!   when it began: its loop-marker row carries the journal position it saw
//!   (`drc.marker.journal_file/pos`, the *watermark*). When the journal meets an
//!   applier transaction, the inserts it made into tables with a local delete after
//!   its watermark are checked against the tombstones: an insert the tombstone beats
//!   (a row resurrected by a late older update) is deleted again, if it is still that
//!   insert; if the row moved on, the key's next writes are judged the same way. At
//!   the start of every applier session the applier waits until the journal has read
//!   the local binlog to its end (`daemon::journal::barrier`), so the window is the
//!   journal's steady-state lag, not a daemon's downtime.
//!
//! # Resumption
//! The position (`drc.journal`: local binlog file/offset and GTID state) is written
//! in the same transaction as the tombstones and raises it covers; everything the
//! journal does is idempotent (tombstones keep the greatest, raises and undos are
//! conditional on the row's exact version), so re-reading after a crash repeats
//! nothing harmful. The pending decisions (owed raises, resurrected keys) are rows of
//! `drc.journal_pending`, written in the same transaction as the position, and read
//! back at start. A first start pins "now": deletes before it were recorded by the
//! triggers of an older drc, or never concerned drc.
//!
//! # Loops
//! Journal transactions start by bumping the `drc.journal` row; the journal skips
//! them (its writes never go back in version). The other zones apply journal
//! transactions (the raises; the tombstone rows in them are local and ignored), which
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

/// The home zone of a global-zone table pattern as the journal judges this zone's
/// writes (`drc.global_homes`): `home` from `since` on, `prev` before (`None`: not
/// judged).
#[derive(Debug, Clone)]
pub struct HomeSince {
    pub home: String,
    pub prev: Option<String>,
    pub since: FilePos,
}

impl HomeSince {
    /// The home of a write at `at`.
    pub fn at(&self, at: &FilePos) -> Option<&str> {
        if *at >= self.since {
            Some(&self.home)
        } else {
            self.prev.as_deref()
        }
    }
}

/// The homes of `global` (pattern, home) for the journal `channel`, one per entry: a
/// pattern whose configured home differs from the stored one (or is new) gets a new
/// `since`, this zone's binlog end now; patterns no longer configured are forgotten.
pub async fn global_homes(
    conn: &mut Conn,
    channel: &str,
    global: &[(String, String)],
    addr: &str,
) -> Result<Vec<HomeSince>, Error> {
    let err = |e| crate::mysql::error::classify(addr, "reading drc.global_homes", e);
    type Row = (String, String, Option<String>, String, u64);
    let stored: Vec<Row> = conn
        .exec(
            "SELECT pattern, home, prev_home, since_file, since_pos FROM `drc`.`global_homes` WHERE channel = ?",
            (channel,),
        )
        .await
        .map_err(err)?;
    let mut homes = Vec::new();
    // where a home that changes takes effect: this zone's binlog end, read once
    let mut end: Option<FilePos> = None;
    for (pattern, home) in global {
        let old = stored.iter().find(|r| &r.0 == pattern);
        if let Some((_, h, prev, file, pos)) = old.filter(|r| &r.1 == home) {
            homes.push(HomeSince {
                home: h.clone(),
                prev: prev.clone(),
                since: FilePos::new(file, *pos),
            });
            continue;
        }
        let since = match &end {
            Some(e) => e.clone(),
            None => {
                let e = crate::mysql::reader::live::master_status(conn)
                    .await
                    .map_err(err)?
                    .unwrap_or_else(|| FilePos::new(String::new(), 0));
                end.insert(e).clone()
            }
        };
        let prev = old.map(|r| r.1.clone());
        conn.exec_drop(
            "REPLACE INTO `drc`.`global_homes` (channel, pattern, home, prev_home, since_file, since_pos) VALUES (?, ?, ?, ?, ?, ?)",
            (channel, pattern, home, &prev, &since.file, since.pos),
        )
        .await
        .map_err(err)?;
        if let Some(prev) = &prev {
            tracing::info!(pattern, from = %prev, to = %home, %since, "global-zone table home moved: this zone's writes from here on belong to the new home");
        }
        homes.push(HomeSince {
            home: home.clone(),
            prev,
            since,
        });
    }
    for (pattern, ..) in &stored {
        if !global.iter().any(|(p, _)| p == pattern) {
            conn.exec_drop(
                "DELETE FROM `drc`.`global_homes` WHERE channel = ? AND pattern = ?",
                (channel, pattern),
            )
            .await
            .map_err(err)?;
        }
    }
    Ok(homes)
}
