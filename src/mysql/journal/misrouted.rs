//! Misrouted writes of global-zone tables (`[replication.global_tables]`): a write of
//! such a table in a zone that is not its home is undone here, by this zone's journal,
//! from the binlog's own images — an update goes back to its before image (the row the
//! home zone last wrote here), a delete is put back, an insert of a key the home zone
//! does not have is deleted. Each undo is conditional on the row still being the
//! misrouted write (its key and content): if the home zone's change of the row arrived
//! meanwhile, it stands. The undo is a journal transaction: the other zones skip it
//! (`apply/global.rs`), they reported the misrouted write itself when it reached them.
//!
//! Limits: several misrouted writes of one key are undone together only within one
//! transaction (fragment); across transactions each is undone on its own condition,
//! so a key written wrongly twice before the journal caught up may keep the first
//! wrong write (reported as `home_write_stands`). A misrouted delete racing a delete
//! of the same row by the home zone (the home's delete applied here finds nothing,
//! then the undo puts the row back) leaves the row here; the conflict entry names it.

use super::JournalSink;
use crate::error::Error;
use crate::model::{RowChange, RowImage, Transaction, Value};
use crate::mysql::applier::sql::{bind, ident};
use crate::mysql::applier::table::LocalTable;
use crate::telemetry::metrics as m;
use mysql_async::prelude::Queryable;
use mysql_async::Value as MyValue;
use std::sync::Arc;

impl JournalSink {
    /// Undoes `rows`, local writes of global-zone tables (with their homes), in one
    /// transaction (fragment): the writes of one key are undone together, from the
    /// first one's before image to the last one's after image (an insert then an
    /// update, a delete then an insert), and each key is reported once.
    pub(super) async fn undo_misrouted(
        &mut self,
        tx: &Transaction,
        rows: Vec<(RowChange, String)>,
    ) -> Result<(), Error> {
        // chains: a write continues the chain whose key (where its last write left
        // the row, or removed it) is the key the write starts from
        let mut chains: Vec<(RowChange, String, Vec<Option<Value>>)> = Vec::new();
        for (r, home) in rows {
            let Some(t) = self.global_table(&r.db, &r.table).await? else {
                continue;
            };
            let key = |img: &RowImage| t.pk.iter().map(|c| img.get(c).cloned()).collect::<Vec<_>>();
            let Some(from) = r.before.as_ref().or(r.after.as_ref()).map(key) else {
                continue;
            };
            let to = r.after.as_ref().or(r.before.as_ref()).map(key).unwrap_or_default();
            match chains
                .iter_mut()
                .rev()
                .find(|(c, _, k)| c.db == r.db && c.table == r.table && *k == from)
            {
                Some((c, _, k)) => {
                    c.after = r.after.clone();
                    c.op = r.op;
                    *k = to;
                }
                None => chains.push((r, home, to)),
            }
        }
        for (r, home, _) in chains {
            self.undo_one(tx, &r, &home).await?;
        }
        Ok(())
    }

    /// Undoes `r` (a chain of writes of one key, as one change) and reports it.
    async fn undo_one(&mut self, tx: &Transaction, r: &RowChange, home: &str) -> Result<(), Error> {
        let Some(t) = self.global_table(&r.db, &r.table).await? else {
            return Ok(());
        };
        let (before, after) = (r.before.as_ref(), r.after.as_ref());
        let undone = match (before, after) {
            (None, Some(a)) => self.delete_if_still(&t, a).await?,
            (Some(b), Some(a)) => self.restore_if_still(&t, b, a).await?,
            (Some(b), None) => self.put_back(&t, b).await?,
            (None, None) => return Ok(()),
        };
        let resolution = if undone { "undone" } else { "home_write_stands" };
        let img = after.or(before).expect("an image");
        let mut p: Vec<MyValue> = vec![resolution.into(), t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(self.key_params(&t, img)?);
        p.extend([
            self.s.zone.as_str().into(),
            self.s.zone.as_str().into(),
            tx.gtid.as_ref().map(|g| g.to_string()).into(),
            serde_json::to_string(img).expect("row serializes").into(),
            format!(
                "`{}`.`{}` is a global-zone table written only in zone {home}; this zone wrote it ({:?}); {}",
                t.db,
                t.tbl,
                r.op,
                if undone {
                    "undone by the journal: the row is again what the home zone wrote"
                } else {
                    "the row had changed since (the home zone's write stands)"
                }
            )
            .into(),
        ]);
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO `drc`.`conflicts` (kind, resolution, db, tbl, pk, origin_zone, local_zone, origin_gtid, incoming_row, detail) \
                     VALUES ('misrouted_write', ?, ?, ?, {}, ?, ?, ?, ?, ?)",
                    t.pk_json_params()
                ),
                p,
            )
            .await
            .map_err(|e| self.err("logging a conflict", e))?;
        metrics::counter!(m::CONFLICTS, "from_zone" => self.s.zone.clone(), "to_zone" => self.s.zone.clone(), "kind" => "misrouted_write")
            .increment(1);
        self.misrouted
            .add((format!("{}.{}", t.db, t.tbl), home.to_string(), resolution), 1);
        if let Some(summary) = self.misrouted.due(std::time::Instant::now()) {
            for ((table, home, resolution), count) in summary {
                tracing::warn!(table, home_zone = home, resolution, count, "misrouted writes of a global-zone table in this zone (detail in drc.conflicts): the application writes it outside its home zone; fix its routing");
            }
        }
        Ok(())
    }

    /// The table's metadata (cached); `None` when it is gone or has no primary key.
    async fn global_table(&mut self, db: &str, tbl: &str) -> Result<Option<Arc<LocalTable>>, Error> {
        let k = (db.to_string(), tbl.to_string());
        if let Some(t) = self.global_tables.get(&k) {
            return Ok(t.clone());
        }
        let t = LocalTable::load(&mut self.conn, db, tbl, &self.s.version_column)
            .await
            .map_err(|e| self.err("reading table metadata", e))?
            .filter(|t| !t.pk.is_empty())
            .map(Arc::new);
        self.global_tables.insert(k, t.clone());
        Ok(t)
    }

    /// `WHERE` the key of `img` and its content: "the row is still this write".
    fn still(&self, t: &LocalTable, img: &RowImage) -> Result<(String, Vec<MyValue>), Error> {
        let (same, same_params) = t.same_content(img).map_err(|what| self.bad(what))?;
        let mut p = self.key_params(t, img)?;
        p.extend(same_params);
        Ok((format!("{}{same}", t.pk_where()), p))
    }

    /// The columns of `img` this table has, and their values.
    fn columns_of(&self, t: &LocalTable, img: &RowImage) -> Result<(Vec<String>, Vec<MyValue>), Error> {
        let mut cols = Vec::new();
        let mut params = Vec::new();
        for c in &t.columns {
            match img.get(c) {
                None | Some(Value::JsonDiff(_)) => {}
                Some(v) => {
                    cols.push(ident(c));
                    params.push(bind(v).map_err(|what| self.bad(what))?);
                }
            }
        }
        Ok((cols, params))
    }

    async fn delete_if_still(&mut self, t: &LocalTable, a: &RowImage) -> Result<bool, Error> {
        let (cond, p) = self.still(t, a)?;
        self.begin().await?;
        self.conn
            .exec_drop(format!("DELETE FROM {} WHERE {cond}", t.qualified()), p)
            .await
            .map_err(|e| self.err(&format!("undoing a misrouted write of `{}`.`{}`", t.db, t.tbl), e))?;
        Ok(self.conn.affected_rows() > 0)
    }

    async fn restore_if_still(&mut self, t: &LocalTable, b: &RowImage, a: &RowImage) -> Result<bool, Error> {
        let (cols, mut p) = self.columns_of(t, b)?;
        let set = cols.iter().map(|c| format!("{c} = ?")).collect::<Vec<_>>().join(", ");
        let (cond, cp) = self.still(t, a)?;
        p.extend(cp);
        self.begin().await?;
        let r = self
            .conn
            .exec_drop(format!("UPDATE {} SET {set} WHERE {cond}", t.qualified()), p)
            .await;
        match r {
            Ok(()) => Ok(self.conn.affected_rows() > 0),
            // a key-changing update whose old key was written again since: the old
            // key's row stands, the misrouted new key goes
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => self.delete_if_still(t, a).await,
            Err(e) => Err(self.err(&format!("undoing a misrouted write of `{}`.`{}`", t.db, t.tbl), e)),
        }
    }

    async fn put_back(&mut self, t: &LocalTable, b: &RowImage) -> Result<bool, Error> {
        let (cols, p) = self.columns_of(t, b)?;
        let marks = vec!["?"; cols.len()].join(", ");
        self.begin().await?;
        let r = self
            .conn
            .exec_drop(
                format!("INSERT INTO {} ({}) VALUES ({marks})", t.qualified(), cols.join(", ")),
                p,
            )
            .await;
        match r {
            Ok(()) => Ok(true),
            // the key was written again since (by the home zone): that row stands
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => Ok(false),
            Err(e) => Err(self.err(&format!("undoing a misrouted delete of `{}`.`{}`", t.db, t.tbl), e)),
        }
    }
}
