//! Per-table schema waits: a row from an origin with a column this zone's table lacks
//! (and a value that would be lost: [`Applier::conform`]) does not stop the
//! direction. The table's rows from that origin are *parked* — written into
//! `drc.parked`, one entry per origin transaction and table (the whole transaction
//! context, in the Kafka wire encoding), in the same applier transaction as the rest
//! of that origin transaction and its position — and every later row of the table
//! from that origin is parked behind them, in order, while the other tables go on.
//! Between transactions (at most once a second) the applier tries the oldest parked
//! entry of each waiting table again: once the table has the column (the DBA ran the
//! ALTER here), the entries are applied in order, each in an applier transaction that
//! also deletes it, and the table leaves the parked set.
//!
//! Invariants: a parked table's rows from that origin are never applied out of order
//! (the batch and deferral paths refuse parked tables, the row loop parks them); a
//! crash loses nothing (entries commit with the position that passed them; the set
//! is read back from `drc.parked` at the first transaction of a session). A
//! transaction touching a parked table and another one is applied in two parts: the
//! other tables now, the parked table's rows later (docs/ARCHITECTURE.md).

use super::*;
use std::time::{Duration, Instant};

/// How often the parked tables are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// (origin, database, table) of a parked table.
pub(super) type ParkedTable = (String, String, String);

impl Applier {
    /// Reads the parked tables back (once per session).
    pub(super) async fn load_parked(&mut self) -> Result<(), Error> {
        if self.parked_loaded {
            return Ok(());
        }
        let rows: Vec<(String, String, String)> = self
            .conn
            .exec(
                "SELECT DISTINCT origin, db, tbl FROM `drc`.`parked` WHERE channel = ?",
                (&self.s.channel,),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.parked", e))?;
        self.parked = rows.into_iter().collect();
        self.parked_loaded = true;
        Ok(())
    }

    /// `r`'s table waits from now on: its rows from `origin` are parked.
    pub(super) fn start_parking(&mut self, origin: &str, r: &RowChange, column: &str) {
        let (db, tbl) = (r.db.to_string(), r.tbl_name().to_string());
        if self.parked.insert((origin.to_string(), db.clone(), tbl.clone())) {
            tracing::warn!(origin, table = %format!("{db}.{tbl}"), column, "a row from zone {origin} has column `{column}` that `{db}`.`{tbl}` lacks here (and its value is not NULL or the column's default): the table waits — its rows from {origin} are kept in drc.parked, in order, and applied once it has the column (run the origin's ALTER TABLE here, or drop the column there); the other tables go on");
        }
    }

    /// Whether `r`'s table waits, from `origin` (or, with `None`, from any origin).
    pub(super) fn is_parked(&self, origin: Option<&str>, r: &RowChange) -> bool {
        self.parked
            .iter()
            .any(|(o, d, t)| origin.is_none_or(|x| x == o) && *d == *r.db && *t == *r.tbl_name())
    }

    /// Parks the rows of `tx` in `rows` (all of one table, parked already) in the open
    /// applier transaction.
    pub(super) async fn park(&mut self, origin: &str, tx: &Transaction, rows: Vec<Change>) -> Result<(), Error> {
        let Some(Change::Row(first)) = rows.first() else {
            return Ok(());
        };
        let (db, tbl) = (first.db.to_string(), first.tbl_name().to_string());
        let n = rows.len();
        let entry = Transaction {
            changes: rows,
            ..tx.clone()
        };
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`parked` (channel, origin, db, tbl, journal, tx) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    &self.s.channel,
                    origin,
                    &db,
                    &tbl,
                    u8::from(!self.counting),
                    crate::model::wire::encode(&entry),
                ),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.parked", e))?;
        metrics::counter!(m::PARKED_ROWS, "from_zone" => origin.to_string(), "to_zone" => self.s.zone.clone(), "table" => format!("{db}.{tbl}"))
            .increment(n as u64);
        Ok(())
    }

    /// Tries the parked tables of `origin` again (between transactions, at most every
    /// [`RETRY_EVERY`]): applies what now fits, in order.
    pub(super) async fn retry_parked(&mut self, origin: &str) -> Result<(), Error> {
        if self.open.is_some() || self.group.is_some() || self.parked.is_empty() {
            return Ok(());
        }
        if self.parked_tried.is_some_and(|at| at.elapsed() < RETRY_EVERY) {
            return Ok(());
        }
        self.parked_tried = Some(Instant::now());
        let tables: Vec<ParkedTable> = self.parked.iter().filter(|p| p.0 == origin).cloned().collect();
        for (o, db, tbl) in tables {
            loop {
                self.begin(&o).await?;
                let next: Option<(u64, u8, Vec<u8>)> = self
                    .conn
                    .exec_first(
                        "SELECT id, journal, tx FROM `drc`.`parked` WHERE channel = ? AND origin = ? AND db = ? AND tbl = ? ORDER BY id LIMIT 1 FOR UPDATE",
                        (&self.s.channel, &o, &db, &tbl),
                    )
                    .await
                    .map_err(|e| mysql_err(&self.s, "reading drc.parked", e))?;
                let Some((id, journal, bytes)) = next else {
                    self.rollback().await;
                    self.parked.remove(&(o.clone(), db.clone(), tbl.clone()));
                    tracing::info!(origin = %o, table = %format!("{db}.{tbl}"), "the parked rows of a table are applied: it replicates directly again");
                    break;
                };
                let tx = crate::model::wire::decode(&bytes).map_err(|e| {
                    definite(
                        &self.s,
                        format!("drc.parked entry {id} of `{db}`.`{tbl}` cannot be decoded: {e}"),
                    )
                })?;
                self.wait_column = None;
                // decided as when it arrived: a journal transaction's rows by its rules
                let counting = std::mem::replace(&mut self.counting, journal == 0);
                let mut applied = Ok(());
                for c in &tx.changes {
                    if let Change::Row(r) = c {
                        applied = self.apply_row(&o, &tx, r).await;
                        if applied.is_err() {
                            break;
                        }
                    }
                }
                self.counting = counting;
                if let Err(e) = applied {
                    self.rollback().await;
                    if self.wait_column.take().is_some() {
                        break; // still waiting: nothing of the entry was written
                    }
                    return Err(e);
                }
                self.conn
                    .exec_drop("DELETE FROM `drc`.`parked` WHERE id = ?", (id,))
                    .await
                    .map_err(|e| mysql_err(&self.s, "writing drc.parked", e))?;
                self.commit().await?;
            }
        }
        Ok(())
    }
}
