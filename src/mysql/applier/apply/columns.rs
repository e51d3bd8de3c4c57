//! Row images applied by column name, across schema changes run in one zone before the
//! other (docs/ARCHITECTURE.md, "Schema changes under traffic").
//!
//! An origin image and the local table can differ while a DBA runs the same ALTER in
//! each zone, minutes apart. The image is matched to the local table by name
//! (case-insensitively, as MySQL names columns):
//! * a local column the image lacks keeps its value (an update) or gets its default
//!   (an insert): the origin has no data for it yet;
//! * an image column the table lacks is left out only when that loses nothing: its
//!   value is NULL, or the literal default the origin's `ALTER TABLE … ADD COLUMN`
//!   gave it (read from the origin's binlog, [`crate::mysql::ddl`]), or this zone
//!   dropped the column (`drc.dropped_columns`, recorded by this zone's journal);
//! * otherwise the direction waits, in order, for the column to exist here (a
//!   transient error: the session restarts from its position and reads the table
//!   again), with a warning and `drc_schema_wait_seconds{table, column}` naming it.
//!
//! Invariant: nothing an origin wrote is dropped unless one of the three rules says
//! the target zone would hold the same value anyway.

use super::*;
use crate::model::Value;
use std::sync::Mutex;
use std::time::Instant;

/// Four names: (channel, db, table, column) or (channel, origin, db.table, column).
type Names = (String, String, String, String);

/// Literal defaults of columns origin zones added, by (channel, db, table, column in
/// lower case): kept across the sessions of the process (a wait restarts the session).
fn origin_defaults() -> &'static Mutex<HashMap<Names, String>> {
    static M: std::sync::OnceLock<Mutex<HashMap<Names, String>>> = std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}

/// Since when a direction has waited for a column, by (channel, origin, db.table, column).
fn waiting_since() -> &'static Mutex<HashMap<Names, Instant>> {
    static M: std::sync::OnceLock<Mutex<HashMap<Names, Instant>>> = std::sync::OnceLock::new();
    M.get_or_init(Default::default)
}

/// Whether `v` is the value the literal default `d` gives.
fn is_default(v: &Value, d: &str) -> bool {
    let text = match v {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(s) | Value::Text(s) => s.clone(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => return false,
        },
        Value::Enum { label: Some(l), .. } => l.clone(),
        _ => return false,
    };
    if text == d {
        return true;
    }
    match (parse_decimal(&text), parse_decimal(d)) {
        (Some(a), Some(b)) => matches!(v, Value::Int(_) | Value::UInt(_) | Value::Decimal(_)) && a == b,
        _ => false,
    }
}

impl Applier {
    /// Remembers the literal defaults of the columns an origin's DDL statement adds.
    pub(super) fn note_origin_ddl(&self, st: &crate::model::Statement) {
        let changes = match crate::mysql::ddl::column_changes(&st.db, &st.sql) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(sql = %st.sql, error = %e, "origin statement not parsed for column defaults");
                return;
            }
        };
        let mut m = origin_defaults().lock().expect("origin defaults");
        for c in changes {
            if let crate::mysql::ddl::ColumnChange::Added {
                db,
                tbl,
                column,
                default: Some(d),
            } = c
            {
                m.insert((self.s.channel.clone(), db, tbl, column.to_lowercase()), d);
            }
        }
    }

    /// The columns of `t` dropped in this zone (`drc.dropped_columns`), lower case.
    async fn dropped_here(&mut self, t: &LocalTable) -> Result<Vec<String>, Error> {
        let k = (t.db.clone(), t.tbl.clone());
        if let Some(d) = self.dropped.get(&k) {
            return Ok(d.clone());
        }
        let cols: Vec<String> = self
            .conn
            .exec(
                "SELECT col FROM `drc`.`dropped_columns` WHERE db = ? AND tbl = ?",
                (&t.db, &t.tbl),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.dropped_columns", e))?;
        let cols: Vec<String> = cols.into_iter().map(|c| c.to_lowercase()).collect();
        self.dropped.insert(k, cols.clone());
        Ok(cols)
    }

    /// `img` as `t` can take it, matched by column name; `None` when it has exactly
    /// `t`'s columns. An image column `t` lacks whose value would be lost makes the
    /// direction wait (a transient error naming the table and column).
    pub(super) async fn conform(
        &mut self,
        origin: &str,
        t: &LocalTable,
        img: &RowImage,
    ) -> Result<Option<RowImage>, Error> {
        if self.check_image(t, img).is_ok() {
            return Ok(None);
        }
        let mut columns: Vec<Arc<str>> = Vec::with_capacity(img.columns.len());
        let mut values = Vec::with_capacity(img.values.len());
        for (c, v) in img.columns.iter().zip(&img.values) {
            if let Some(local) = t.columns.iter().find(|l| l.eq_ignore_ascii_case(c)) {
                columns.push(Arc::from(local.as_str()));
                values.push(v.clone());
                continue;
            }
            let lower = c.to_lowercase();
            if matches!(v, Value::Null) || self.dropped_here(t).await?.contains(&lower) {
                continue;
            }
            let default = origin_defaults()
                .lock()
                .expect("origin defaults")
                .get(&(self.s.channel.clone(), t.db.clone(), t.tbl.clone(), lower))
                .cloned();
            if default.is_some_and(|d| is_default(v, &d)) {
                continue;
            }
            return Err(self.column_wait(origin, t, c));
        }
        for k in t.pk.iter().chain(t.version.iter()) {
            if !columns.iter().any(|c| **c == **k) {
                return Err(definite(
                    &self.s,
                    format!(
                        "`{}`.`{}`: the origin row has no column `{k}`, a key or version column here; the tables differ in more than a schema change in progress",
                        t.db, t.tbl
                    ),
                ));
            }
        }
        self.column_waits_over(origin, t);
        Ok(Some(RowImage {
            columns: columns.into(),
            positions: None,
            values,
        }))
    }

    fn column_wait(&mut self, origin: &str, t: &LocalTable, column: &str) -> Error {
        self.wait_column = Some(column.to_string());
        let table = format!("{}.{}", t.db, t.tbl);
        let key = (
            self.s.channel.clone(),
            origin.to_string(),
            table.clone(),
            column.to_string(),
        );
        let since = *waiting_since()
            .lock()
            .expect("column waits")
            .entry(key)
            .or_insert_with(Instant::now);
        let waited = since.elapsed().as_secs_f64();
        metrics::gauge!(m::SCHEMA_WAIT, "zone" => self.s.zone.clone(), "origin" => origin.to_string(),
            "table" => table.clone(), "column" => column.to_string())
        .set(waited.max(0.001));
        Error::Transient {
            addr: self.s.addr.clone(),
            what: format!(
                "a row from zone {origin} has column `{column}` that `{table}` lacks in zone {} (and its value is not NULL or the column's default): waiting for it ({waited:.0}s; run the origin's ALTER TABLE here, or drop the column here if it was dropped on purpose); changes from {origin} resume in order once it exists",
                self.s.zone
            ),
        }
    }

    /// The waits of `t` are over (a row of it applied by name).
    fn column_waits_over(&self, origin: &str, t: &LocalTable) {
        let table = format!("{}.{}", t.db, t.tbl);
        let mut w = waiting_since().lock().expect("column waits");
        w.retain(|(ch, o, tb, column), _| {
            let over = *ch == self.s.channel && o == origin && *tb == table;
            if over {
                metrics::gauge!(m::SCHEMA_WAIT, "zone" => self.s.zone.clone(), "origin" => origin.to_string(),
                    "table" => table.clone(), "column" => column.clone())
                .set(0.0);
                tracing::info!(origin, table = %table, column = %column, "schema wait over: the column exists here now");
            }
            !over
        });
    }

    /// The local table of `r`; read again (at most once a second) when `r`'s images
    /// have other columns than the cached metadata: a schema change in progress, maybe
    /// in this zone since the metadata was read.
    pub(super) async fn fresh_table(&mut self, r: &RowChange) -> Result<Arc<LocalTable>, Error> {
        let t = self.table(&r.db, &r.tbl_name()).await?;
        let differs = [&r.before, &r.after]
            .into_iter()
            .flatten()
            .any(|img| self.check_image(&t, img).is_err());
        let k = (r.db.to_string(), r.tbl_name().to_string());
        if !differs
            || self
                .loaded
                .get(&k)
                .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1))
        {
            return Ok(t);
        }
        self.tables.remove(&k);
        self.dropped.remove(&k);
        self.table(&r.db, &r.tbl_name()).await
    }

    /// `r` with its images conformed to `t` ([`Applier::conform`]).
    pub(super) async fn conform_change<'r>(
        &mut self,
        origin: &str,
        t: &LocalTable,
        r: &'r RowChange,
    ) -> Result<std::borrow::Cow<'r, RowChange>, Error> {
        let before = match &r.before {
            Some(b) => self.conform(origin, t, b).await?,
            None => None,
        };
        let after = match &r.after {
            Some(a) => self.conform(origin, t, a).await?,
            None => None,
        };
        if before.is_none() && after.is_none() {
            return Ok(std::borrow::Cow::Borrowed(r));
        }
        let mut c = r.clone();
        if before.is_some() {
            c.before = before;
        }
        if after.is_some() {
            c.after = after;
        }
        Ok(std::borrow::Cow::Owned(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_by_text_or_number() {
        assert!(is_default(&Value::Int(7), "7"));
        assert!(is_default(&Value::Decimal("7.00".into()), "7"));
        assert!(is_default(&Value::Text("x'y".into()), "x'y"));
        assert!(is_default(&Value::Bytes(b"ab".to_vec()), "ab"));
        assert!(!is_default(&Value::Text("7.0".into()), "7"), "text compares as text");
        assert!(!is_default(&Value::Int(8), "7"));
        assert!(!is_default(&Value::Null, "7"));
        assert!(
            !is_default(&Value::Double(7.0), "7"),
            "an approximate value is never assumed"
        );
    }
}
