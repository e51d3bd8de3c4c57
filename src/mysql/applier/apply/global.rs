//! Global-zone tables (`[replication.global_tables]`): data with one writer, its home
//! zone, read everywhere. Changes from the home zone are applied as they are (origin
//! wins, no last-writer-wins: there is one writer). A change of such a table from
//! another zone is a misrouted write: it is not applied (the row goes to
//! `drc.conflicts` as `misrouted_write`, quarantined, counted in
//! `drc_conflicts_total{kind="misrouted_write"}`), so it never reaches a third zone;
//! the zone that made it undoes it (its journal: `journal/misrouted.rs`), and the
//! undo, a journal transaction, is skipped here.

use super::*;

impl Applier {
    pub(super) async fn apply_global(
        &mut self,
        origin: &str,
        home: &str,
        tx: &Transaction,
        t: &LocalTable,
        r: &RowChange,
    ) -> Result<(), Error> {
        if origin == home {
            return self.apply_unversioned(origin, tx, t, r).await;
        }
        if crate::mysql::is_journal_transaction(tx) {
            // the origin's journal undoing a misrouted write there (reported there,
            // and here when the write itself arrived)
            return Ok(());
        }
        let Some(img) = r.after.as_ref().or(r.before.as_ref()) else {
            return Ok(());
        };
        let key = self.key_values(t, img)?;
        self.log_conflict(
            &Subject {
                origin,
                tx,
                t,
                key: &key,
                row: img,
            },
            (None, None),
            "misrouted_write",
            "quarantined",
            Some(format!(
                "`{}`.`{}` is a global-zone table written only in zone {home}; zone {origin} wrote it ({:?})",
                t.db, t.tbl, r.op
            )),
            Some(None),
        )
        .await?;
        self.stats.quarantined += 1;
        Ok(())
    }
}
