//! The local side of a replicated table: columns, primary key and version column as
//! the *local* server has them, checked against each incoming row image. A table
//! missing here, or with other columns, is a definite error naming both column lists:
//! the transaction is not applied and the position does not move.

use super::sql::{ident, literal, table};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Debug, Clone)]
pub struct LocalTable {
    pub db: String,
    pub tbl: String,
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Primary-key columns in key order.
    pub pk: Vec<String>,
    /// The version column, when the table has the configured one.
    pub version: Option<String>,
    /// Data type of each primary-key column (e.g. `int`, `bigint`, `varchar`).
    pub pk_types: Vec<String>,
    /// Data type of the version column (`datetime`, `timestamp`, `bigint`, ...).
    pub version_type: String,
    /// Rows may be applied in batches (see `Applier::apply_batch`): every key column
    /// is an integer, and no unique key but the primary key, no foreign key and no
    /// INSERT/UPDATE trigger (but drc's own, which the applier's writes skip) can make
    /// the order of writes within a target transaction matter.
    pub batchable: bool,
    /// The primary key is one AUTO_INCREMENT column.
    pub auto_increment_key: bool,
    /// The smallest increment the version column stores, in µs (DATETIME(6): 1;
    /// DATETIME(3): 1,000; DATETIME: 1,000,000): what the version guards add.
    pub version_step_us: u32,
}

impl LocalTable {
    pub async fn load(
        conn: &mut Conn,
        db: &str,
        tbl: &str,
        version_column: &str,
    ) -> Result<Option<LocalTable>, mysql_async::Error> {
        type Col = (String, String, String, String, Option<u32>);
        let cols: Vec<Col> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_KEY, DATA_TYPE, EXTRA, DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (db, tbl),
            )
            .await?;
        if cols.is_empty() {
            return Ok(None);
        }
        let pk_rows: Vec<(String, String)> = conn
            .exec(
                "SELECT k.COLUMN_NAME, c.DATA_TYPE FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c \
                 ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
                 WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.CONSTRAINT_NAME = 'PRIMARY' ORDER BY k.ORDINAL_POSITION",
                (db, tbl),
            )
            .await?;
        let other_constraints: Option<u64> = conn
            .exec_first(
                "SELECT (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY') \
                 + (SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)) \
                 + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION IN ('INSERT', 'UPDATE') AND TRIGGER_NAME NOT LIKE 'drc\\_%')",
                (db, tbl, db, tbl, db, tbl, db, tbl),
            )
            .await?;
        let columns: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
        let integer_key = !pk_rows.is_empty()
            && pk_rows.iter().all(|r| {
                matches!(
                    r.1.to_ascii_lowercase().as_str(),
                    "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
                )
            });
        let version = columns.iter().find(|c| c.eq_ignore_ascii_case(version_column)).cloned();
        let version_col = cols.iter().find(|c| Some(&c.0) == version.as_ref());
        let version_type = version_col.map(|c| c.2.to_ascii_lowercase()).unwrap_or_default();
        // the smallest step the column can store: 1 µs for DATETIME(6), 1 s for DATETIME
        let version_step_us = 10u32.pow(6 - version_col.and_then(|c| c.4).unwrap_or(6).min(6));
        let auto_increment_key = pk_rows.len() == 1
            && cols
                .iter()
                .any(|c| c.0 == pk_rows[0].0 && c.3.to_ascii_lowercase().contains("auto_increment"));
        Ok(Some(LocalTable {
            db: db.to_string(),
            tbl: tbl.to_string(),
            columns,
            pk: pk_rows.iter().map(|r| r.0.clone()).collect(),
            pk_types: pk_rows.iter().map(|r| r.1.to_ascii_lowercase()).collect(),
            version,
            version_type,
            batchable: integer_key && other_constraints == Some(0),
            auto_increment_key,
            version_step_us,
        }))
    }

    pub fn qualified(&self) -> String {
        table(&self.db, &self.tbl)
    }

    /// `` `a` = ? AND `b` = ? `` over the primary key.
    pub fn pk_where(&self) -> String {
        self.pk
            .iter()
            .map(|c| format!("{} = ?", ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `JSON_OBJECT('a', `a`, ...)` over all columns: the server's canonical text of a
    /// row (tie-breaks, the conflict log).
    pub fn json_object(&self) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{}, {}", literal(c), ident(c)))
            .collect();
        format!("JSON_OBJECT({})", parts.join(", "))
    }

    /// `JSON_ARRAY(?, ?)` over the primary key (the tombstone key text).
    pub fn pk_json_params(&self) -> String {
        format!("JSON_ARRAY({})", vec!["?"; self.pk.len()].join(", "))
    }

    /// True for a single integer primary key (the kind ID ranges apply to).
    pub fn integer_pk(&self) -> bool {
        self.pk_types.len() == 1
            && matches!(
                self.pk_types[0].as_str(),
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
            )
    }

    /// The triggers drc keeps on this table (docs/CONFLICTS.md, "Local writes"): the
    /// tombstone of every delete, and for DATETIME/TIMESTAMP versions the two that
    /// keep a local write from going back in version. None without a version column
    /// or a primary key.
    pub fn triggers(&self) -> Vec<Trigger> {
        let Some(vcol) = self.version.as_ref() else {
            return Vec::new();
        };
        if self.pk.is_empty() {
            return Vec::new();
        }
        let version = ident(vcol);
        let key = |row: &str| {
            self.pk
                .iter()
                .map(|c| format!("{row}.{}", ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (db, tbl) = (literal(&self.db), literal(&self.tbl));
        let clock = matches!(self.version_type.as_str(), "datetime" | "timestamp");
        let step = self.version_step_us;
        let deleted = if clock {
            format!("GREATEST(CAST(NOW(6) AS DECIMAL(30,6)), CAST(OLD.{version} AS DECIMAL(30,6)))")
        } else {
            format!("CAST(OLD.{version} AS DECIMAL(30,6))")
        };
        let mut out = vec![Trigger {
            name: self.trigger_name("tombstone"),
            event: "AFTER DELETE",
            body: format!(
                "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES ({db}, {tbl}, JSON_ARRAY({pk}), \
                 COALESCE(@drc_delete_version, {deleted})) ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                pk = key("OLD"),
            ),
        }];
        if clock {
            out.push(Trigger {
                name: self.trigger_name("update"),
                event: "BEFORE UPDATE",
                body: format!(
                    "IF @drc_applier IS NULL THEN IF NEW.{version} <= OLD.{version} THEN \
                     SET NEW.{version} = GREATEST(NOW(6), OLD.{version} + INTERVAL {step} MICROSECOND); END IF; END IF"
                ),
            });
            // Nested IFs, each condition evaluated only when the one around it holds:
            // the applier's writes (most of the rows a zone writes) stop at the first,
            // which reads no table, and cost what an empty trigger costs; a condition
            // holding a subquery costs as much even when an AND before it is false
            // (measured: 100,000 rows in multi-row INSERTs, 307k rows/s nested vs 145k).
            // A key the server is about to generate (AUTO_INCREMENT, still 0 here) was
            // never deleted: no lookup either.
            let tombstone = format!(
                "SELECT version FROM `drc`.`tombstones` WHERE db = {db} AND tbl = {tbl} AND pk = JSON_ARRAY({pk})",
                pk = key("NEW"),
            );
            // A REPLACE deletes the existing row after this trigger ran (tombstone
            // `GREATEST(NOW(6), its version)`) and then inserts: an explicit-key insert
            // whose version is the statement time (the column default, within one step
            // of NOW(6)) gets NOW(6) + one step, so with the replaced row not ahead of
            // this zone's clock the new row is greater than that tombstone. A version
            // the application sets in the past (a backfill) is left alone. The body
            // never names its own table (after a RENAME TABLE every INSERT would fail
            // with "table doesn't exist": a trigger's tables open with the statement).
            let mut guard = format!(
                "IF CAST(NEW.{version} AS DECIMAL(30,6)) <= ({tombstone}) THEN \
                 SET NEW.{version} = CAST(({tombstone}) AS DATETIME(6)) + INTERVAL {step} MICROSECOND; END IF; \
                 IF NEW.{version} <= NOW(6) AND NEW.{version} > NOW(6) - INTERVAL {step} MICROSECOND THEN \
                 SET NEW.{version} = NOW(6) + INTERVAL {step} MICROSECOND; END IF"
            );
            if self.auto_increment_key {
                guard = format!("IF NEW.{} <> 0 THEN {guard}; END IF", ident(&self.pk[0]));
            }
            out.push(Trigger {
                name: self.trigger_name("insert"),
                event: "BEFORE INSERT",
                body: format!("IF @drc_applier IS NULL THEN {guard}; END IF"),
            });
        }
        out
    }

    /// `drc_<what>_<table>`, at most 64 characters.
    fn trigger_name(&self, what: &str) -> String {
        let name = format!("drc_{what}_{}", self.tbl);
        if name.len() <= 64 {
            name
        } else {
            format!("drc_{what}_{:08x}", crc32fast::hash(self.tbl.as_bytes()))
        }
    }
}

/// A trigger drc installs on a replicated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub name: String,
    /// `AFTER DELETE`, `BEFORE UPDATE`, `BEFORE INSERT`.
    pub event: &'static str,
    pub body: String,
}

/// Installs drc's triggers on `t` where missing or different (an older drc's),
/// returning how many were created. DDL: call it outside an apply transaction (it
/// commits implicitly).
pub async fn ensure_triggers(conn: &mut Conn, t: &LocalTable) -> Result<usize, mysql_async::Error> {
    let wanted = t.triggers();
    if wanted.is_empty() {
        return Ok(0);
    }
    // the bodies drc's triggers of this table have now, in one read
    let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    let mut params: Vec<mysql_async::Value> = vec![t.db.as_str().into()];
    params.extend(names.iter().map(|n| (*n).into()));
    let present: Vec<(String, String)> = conn
        .exec(
            format!(
                "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME IN ({})",
                vec!["?"; names.len()].join(", ")
            ),
            params,
        )
        .await?;
    let mut created = 0;
    for trig in wanted {
        let exists = present.iter().find(|(n, _)| *n == trig.name).map(|(_, b)| b.as_str());
        if exists.map(str::trim) == Some(trig.body.trim()) {
            continue;
        }
        // CREATE OR REPLACE swaps an older drc's trigger in one step: no window in
        // which a delete records no tombstone
        let sql = format!(
            "CREATE OR REPLACE TRIGGER {} {} ON {} FOR EACH ROW {}",
            table(&t.db, &trig.name),
            trig.event,
            t.qualified(),
            trig.body
        );
        conn.query_drop(sql).await?;
        created += 1;
    }
    Ok(created)
}
