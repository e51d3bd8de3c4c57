//! The applier's view of the local tables: metadata read once and cached (again
//! when row images differ from it), renames followed (`drc.renamed`), and the tables
//! of replicated databases that cannot replicate here, skipped rather than stopping
//! the daemon ([`Unfit`]: no primary key, no version column, missing after the wait).

use super::*;

/// Why changes of a table of a replicated database are skipped here (never a stop:
/// issue 13). Counted in `drc_skipped_rows_total` by reason, logged at WARN with the
/// fix, and checked again every [`UNFIT_RECHECK`], so a fixed table replicates again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// drc identifies rows by their primary key.
    NoPrimaryKey,
    /// last-writer-wins compares the version column (or list it in `unversioned`).
    NoVersionColumn,
    /// Not in this zone after `missing_table_wait` (and not listed in `tables`).
    MissingHere,
}

/// How often a skipped table is looked at again.
pub const UNFIT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

impl Unfit {
    pub fn label(self) -> &'static str {
        match self {
            Unfit::NoPrimaryKey => "no_primary_key",
            Unfit::NoVersionColumn => "no_version_column",
            Unfit::MissingHere => "missing_here",
        }
    }

    /// What is wrong with `db`.`tbl`, and what fixes it.
    fn message(self, s: &ApplierSettings, db: &str, tbl: &str) -> String {
        match self {
            Unfit::NoPrimaryKey => format!("table `{db}`.`{tbl}` has no primary key; drc replicates only tables with one (add one, or list the table in [replication] exclude_tables)"),
            Unfit::NoVersionColumn => format!("table `{db}`.`{tbl}` has no version column `{}`; add it (e.g. `{} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)`), or list it in [replication] unversioned (origin wins, no conflict resolution)", s.version_column, s.version_column),
            Unfit::MissingHere => format!("replicated table `{db}`.`{tbl}` does not exist in zone {} (waited {}s): create it like in the origin zone (the changes skipped meanwhile are lost here: copy them with drc seed), or list it in [replication] exclude_tables", s.zone, s.missing_table_wait.as_secs()),
        }
    }
}

impl Applier {
    pub(super) async fn table(&mut self, db: &str, tbl: &str) -> Result<Arc<LocalTable>, Error> {
        match self.load_table(db, tbl).await? {
            Ok(t) => Ok(t),
            Err(why) => Err(definite(&self.s, why.message(&self.s, db, tbl))),
        }
    }

    /// The table's metadata (cached), or why its changes are skipped here. A table
    /// missing here is a transient error while it is waited for.
    pub(super) async fn load_table(&mut self, db: &str, tbl: &str) -> Result<Result<Arc<LocalTable>, Unfit>, Error> {
        if let Some(t) = self.tables.get(&(db.to_string(), tbl.to_string())) {
            return Ok(Ok(t.clone()));
        }
        let mut t = LocalTable::load(&mut self.conn, db, tbl, &self.s.version_column)
            .await
            .map_err(|e| mysql_err(&self.s, "reading table metadata", e))?;
        if t.is_none() {
            // renamed here (the journal records this zone's RENAMEs): the origin's
            // change goes to the table's new name
            if let Some(to) = self.renamed_to(db, tbl).await? {
                t = LocalTable::load(&mut self.conn, db, &to, &self.s.version_column)
                    .await
                    .map_err(|e| mysql_err(&self.s, "reading table metadata", e))?;
            }
        }
        let mut t = match t {
            Some(t) => {
                missing_since()
                    .lock()
                    .expect("missing tables")
                    .remove(&self.missing_key(db, tbl));
                t
            }
            None => return self.missing_table(db, tbl).map(Err),
        };
        if t.pk.is_empty() {
            return Ok(Err(Unfit::NoPrimaryKey));
        }
        let global = self.s.global_home(db, tbl).is_some();
        if t.version.is_none() && !global && !self.s.unversioned.iter().any(|u| *u == format!("{db}.{tbl}")) {
            return Ok(Err(Unfit::NoVersionColumn));
        }
        if global {
            t.batchable = false; // one-way, origin wins: decided row by row (`global.rs`)
        }
        let t = Arc::new(t);
        self.tables.insert((db.to_string(), tbl.to_string()), t.clone());
        self.loaded
            .insert((db.to_string(), tbl.to_string()), std::time::Instant::now());
        Ok(Ok(t))
    }

    /// Looks at every table of `tx`'s rows not known yet (or skipped and due for a
    /// new look): a table that does not fit is skipped from now on, with a warning;
    /// then counts the rows skipped.
    pub(super) async fn screen(&mut self, origin: &str, tx: &Transaction) -> Result<(), Error> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for c in &tx.changes {
            let Change::Row(r) = c else { continue };
            if seen.iter().any(|&(d, t)| d == &*r.db && t == &*r.table) {
                continue;
            }
            seen.push((&r.db, &r.table));
            if !self.s.replicates(&r.db, &r.table) {
                continue;
            }
            if let Some((_, since)) = self.unfit.get(&*r.db).and_then(|m| m.get(&*r.table)) {
                if since.elapsed() < UNFIT_RECHECK {
                    continue;
                }
            } else if self.tables.contains_key(&(r.db.to_string(), r.table.to_string())) {
                continue;
            }
            let mut verdict = self.load_table(&r.db, &r.table).await?;
            let known_unfit = self.unfit.get(&*r.db).is_some_and(|m| m.contains_key(&*r.table));
            if verdict.is_err() && !known_unfit {
                // skipping loses the table's rows: a verdict is confirmed by a second
                // read before it counts (a definition caught mid-ALTER is not one)
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                verdict = self.load_table(&r.db, &r.table).await?;
            }
            match verdict {
                Ok(_) => {
                    if let Some(m) = self.unfit.get_mut(&*r.db) {
                        if m.remove(&*r.table).is_some() {
                            tracing::info!(origin, table = %format!("{}.{}", r.db, r.table), "table replicates again");
                        }
                    }
                }
                Err(why) => {
                    tracing::warn!(origin, table = %format!("{}.{}", r.db, r.table), reason = why.label(), "skipping its changes: {}", why.message(&self.s, &r.db, &r.table));
                    self.unfit
                        .entry(r.db.to_string())
                        .or_default()
                        .insert(r.table.to_string(), (why, std::time::Instant::now()));
                }
            }
        }
        if self.unfit.is_empty() {
            return Ok(());
        }
        for c in &tx.changes {
            let Change::Row(r) = c else { continue };
            if let Some((why, _)) = self.unfit.get(&*r.db).and_then(|m| m.get(&*r.table)) {
                metrics::counter!(m::SKIPPED_ROWS, "from_zone" => origin.to_string(), "to_zone" => self.s.zone.clone(), "table" => format!("{}.{}", r.db, r.table), "reason" => why.label())
                    .increment(1);
            }
        }
        Ok(())
    }

    /// Whether changes of `db`.`tbl` are skipped here (see [`Unfit`]).
    pub(super) fn is_unfit(&self, db: &str, tbl: &str) -> bool {
        !self.unfit.is_empty() && self.unfit.get(db).is_some_and(|m| m.contains_key(tbl))
    }

    fn missing_key(&self, db: &str, tbl: &str) -> String {
        format!("{} {db}.{tbl}", self.s.channel)
    }

    /// A replicated table missing here: the direction waits for it (transient, the
    /// session restarts from its position) up to `missing_table_wait`, then skips its
    /// changes; a table listed in `[replication] tables` is waited for however long.
    fn missing_table(&self, db: &str, tbl: &str) -> Result<Unfit, Error> {
        let key = self.missing_key(db, tbl);
        let mut m = missing_since().lock().expect("missing tables");
        let since = *m.entry(key.clone()).or_insert_with(std::time::Instant::now);
        let waited = since.elapsed();
        let listed = self.s.tables.matches(db, tbl);
        if waited < self.s.missing_table_wait || listed {
            let limit = if listed {
                format!(
                    "{}s; it is listed in [replication] tables, so it is waited for however long",
                    waited.as_secs()
                )
            } else {
                format!(
                    "{}s of {}s, then its changes are skipped",
                    waited.as_secs(),
                    self.s.missing_table_wait.as_secs()
                )
            };
            return Err(Error::Transient {
                addr: self.s.addr.clone(),
                what: format!(
                    "replicated table `{db}`.`{tbl}` does not exist in zone {}: waiting for it ({limit}; run the RENAME or CREATE TABLE of the origin zone here); nothing of this transaction was applied",
                    self.s.zone,
                ),
            });
        }
        Ok(Unfit::MissingHere)
    }

    /// The name this zone's `db`.`tbl` was renamed to (following renames), if any.
    async fn renamed_to(&mut self, db: &str, tbl: &str) -> Result<Option<String>, Error> {
        let mut name = tbl.to_string();
        let mut seen = vec![name.clone()];
        loop {
            let to: Option<String> = self
                .conn
                .exec_first(
                    "SELECT renamed_to FROM `drc`.`renamed` WHERE db = ? AND tbl = ?",
                    (db, name.as_str()),
                )
                .await
                .map_err(|e| mysql_err(&self.s, "reading drc.renamed", e))?;
            match to {
                Some(to) if !seen.contains(&to) => {
                    seen.push(to.clone());
                    name = to;
                }
                _ => break,
            }
        }
        Ok((name != tbl).then_some(name))
    }
}

/// Since when a replicated table has been missing, per channel and table (kept across
/// the sessions of a direction).
fn missing_since() -> &'static std::sync::Mutex<HashMap<String, std::time::Instant>> {
    static M: std::sync::OnceLock<std::sync::Mutex<HashMap<String, std::time::Instant>>> = std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}
