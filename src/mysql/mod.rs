//! MySQL/MariaDB: the binlog [`reader`] (a pipeline source), the [`applier`] (a
//! pipeline sink that owns `drc.applied`), the [`journal`] (a pipeline sink of the
//! zone's own binlog that owns `drc.journal`: tombstones and raises of local writes,
//! where triggers were), the zone's [`heartbeat`] writer, the [`retention`] of
//! drc's growing tables, the parser of DDL
//! statements both read ([`ddl`]), and the one classifier of the client's errors
//! ([`error`]). Nothing here imports the
//! daemon, the config file or another kind of data.

pub mod applier;
pub mod claim;
pub mod ddl;
pub mod drain;
pub mod error;
pub mod heartbeat;
pub mod journal;
pub mod reader;
pub mod retention;
pub mod verify;

use crate::model::{Change, Delivered, Transaction};

/// True for a transaction an applier wrote: it touches `drc`.`marker`, which every
/// applier transaction writes first (loop suppression, docs/ARCHITECTURE.md).
pub fn is_applier_transaction(tx: &Transaction) -> bool {
    tx.changes
        .iter()
        .any(|c| matches!(c, Change::Row(r) if &*r.db == "drc" && &*r.table == "marker"))
}

/// The journal position an applier transaction's marker row carries (its
/// watermark: `drc.marker.journal_file/pos`), from the marker's after image.
pub fn marker_watermark(img: &crate::model::RowImage) -> Option<crate::position::FilePos> {
    use crate::model::Value;
    let file = match img.get("journal_file")? {
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return None,
    };
    let pos = match img.get("journal_pos")? {
        Value::UInt(p) => *p,
        Value::Int(p) => *p as u64,
        _ => return None,
    };
    Some(crate::position::FilePos::new(file, pos))
}

/// True for a transaction drc's journal wrote (it touches `drc`.`journal`, which
/// every journal transaction writes first): the journal skips it; the other zones
/// apply it without counting it as an origin transaction.
pub fn is_journal_transaction(tx: &Transaction) -> bool {
    tx.changes
        .iter()
        .any(|c| matches!(c, Change::Row(r) if &*r.db == "drc" && &*r.table == "journal"))
}

/// A transaction fragment is a pipeline item: a transaction is the unit.
impl crate::pipeline::Item for Transaction {
    fn opens(&self) -> bool {
        self.fragment == 0
    }
    fn closes(&self) -> bool {
        self.last
    }
    fn weight(&self) -> usize {
        self.changes.len().max(1)
    }
}

impl crate::pipeline::Item for Delivered {
    fn opens(&self) -> bool {
        self.tx.opens()
    }
    fn closes(&self) -> bool {
        self.tx.closes()
    }
    fn weight(&self) -> usize {
        self.tx.weight()
    }
}
