//! The local side of a replicated table: columns, primary key and version column as
//! the *local* server has them, checked against each incoming row image. A table
//! missing here, or with other columns, is a definite error naming both column lists:
//! the transaction is not applied and the position does not move. drc puts nothing
//! in these tables (no trigger, no column): it only reads their metadata.

use super::sql::{ident, literal, table};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

#[derive(Debug, Clone)]
pub struct LocalTable {
    pub db: String,
    pub tbl: String,
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Data type of each column (`int`, `varchar`, `json`, ...), in table order.
    pub column_types: Vec<String>,
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
    /// INSERT/UPDATE trigger can make the order of writes within a target transaction
    /// matter.
    pub batchable: bool,
    /// The primary key is one AUTO_INCREMENT column.
    pub auto_increment_key: bool,
    /// The table has a foreign key or is referenced by one: its rows cannot wait
    /// apart from the others (`apply/parked.rs`).
    pub foreign_keys: bool,
    /// The smallest increment the version column stores, in µs (DATETIME(6): 1;
    /// DATETIME(3): 1,000; DATETIME: 1,000,000): what the journal adds when it raises
    /// a local write.
    pub version_step_us: u32,
}

/// MariaDB's information_schema does not wait for a table whose definition a
/// concurrent DDL statement holds (an exclusive metadata lock) when the session holds
/// metadata locks of its own, as drc's sessions do (their `GET_LOCK` claim): it skips
/// the table with warning 1684, and the table would look missing, or without a
/// primary key (its changes then skipped: lost; seen in CI under ALTER TABLE). A read
/// with that warning fails with it (transient: read again).
async fn not_skipped(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    if conn.get_warnings() == 0 {
        return Ok(());
    }
    let warnings: Vec<(String, u32, String)> = conn.query("SHOW WARNINGS").await?;
    match warnings.into_iter().find(|w| w.1 == 1684) {
        Some((_, code, message)) => Err(mysql_async::Error::Server(mysql_async::ServerError {
            code: code as u16,
            message,
            state: "HY000".into(),
        })),
        None => Ok(()),
    }
}

/// A metadata read that contradicts itself (a column marked as part of the primary
/// key but no key read, or a key column not among the columns): the table changed
/// between the reads; transient, read again.
fn inconsistent(db: &str, tbl: &str) -> mysql_async::Error {
    mysql_async::Error::Server(mysql_async::ServerError {
        code: 1684,
        message: format!("`{db}`.`{tbl}` changed while its definition was read (a concurrent ALTER TABLE)"),
        state: "HY000".into(),
    })
}

impl LocalTable {
    /// The table's definition from information_schema; `None` when it does not
    /// exist. A read disturbed by a concurrent DDL is an error (transient), never a
    /// wrong definition: a table read without its primary key would have its changes
    /// skipped.
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
        not_skipped(conn).await?;
        if cols.is_empty() {
            return Ok(None);
        }
        // the key's order from KEY_COLUMN_USAGE, its types from `cols` (a join with
        // COLUMNS can come back empty while an ALTER TABLE runs, without a warning)
        let pk_names: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                (db, tbl),
            )
            .await?;
        not_skipped(conn).await?;
        // COLUMNS marks the key's columns PRI (and, in a table without a primary key,
        // a NOT NULL unique key's: then STATISTICS has no index PRIMARY)
        let marked_pri = cols.iter().filter(|c| c.1 == "PRI").count();
        if !pk_names.is_empty() && pk_names.len() != marked_pri {
            return Err(inconsistent(db, tbl));
        }
        if pk_names.is_empty() && marked_pri > 0 {
            let primary: u64 = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'",
                    (db, tbl),
                )
                .await?
                .unwrap_or(0);
            not_skipped(conn).await?;
            if primary > 0 {
                return Err(inconsistent(db, tbl));
            }
        }
        let mut pk_rows: Vec<(String, String)> = Vec::with_capacity(pk_names.len());
        for k in pk_names {
            let c = cols.iter().find(|c| c.0 == k).ok_or_else(|| inconsistent(db, tbl))?;
            pk_rows.push((k, c.2.clone()));
        }
        // other unique keys and triggers, and foreign keys (either way): one round trip
        let (other_constraints, fks): (u64, u64) = conn
            .exec_first(
                "SELECT (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY') \
                 + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION IN ('INSERT', 'UPDATE')), \
                 (SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?))",
                (db, tbl, db, tbl, db, tbl, db, tbl),
            )
            .await?
            .unwrap_or((0, 0));
        not_skipped(conn).await?;
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
            column_types: cols.iter().map(|c| c.2.to_ascii_lowercase()).collect(),
            columns,
            pk: pk_rows.iter().map(|r| r.0.clone()).collect(),
            pk_types: pk_rows.iter().map(|r| r.1.to_ascii_lowercase()).collect(),
            version,
            version_type,
            batchable: integer_key && other_constraints == 0 && fks == 0,
            auto_increment_key,
            foreign_keys: fks > 0,
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

    /// `` AND `c` <=> ? `` for every column of `img` but the version column and those
    /// a bound value cannot be compared with exactly (JSON, spatial), and the values:
    /// "the row is still this write" (its content), for the journal's conditional
    /// writes.
    pub fn same_content(&self, img: &crate::model::RowImage) -> Result<(String, Vec<mysql_async::Value>), String> {
        let (mut sql, mut params) = (String::new(), Vec::new());
        for (c, ty) in self.columns.iter().zip(&self.column_types) {
            if Some(c) == self.version.as_ref() || ty == "json" || is_spatial(ty) {
                continue;
            }
            let Some(v) = img.get(c) else { continue };
            if matches!(v, crate::model::Value::JsonDiff(_)) {
                continue;
            }
            sql += &format!(" AND {} <=> ?", ident(c));
            params.push(super::sql::bind(v)?);
        }
        Ok((sql, params))
    }

    /// `JSON_OBJECT('a', `a`, ...)` over all columns: the server's canonical text of a
    /// row (tie-breaks, the conflict log). Byte columns (binary, blobs, BIT, spatial)
    /// are given as HEX: their bytes need not be text.
    pub fn json_object(&self) -> String {
        let parts: Vec<String> = self
            .columns
            .iter()
            .zip(&self.column_types)
            .map(|(c, ty)| {
                let bytes = is_bytes(ty) || ty == "bit" || is_spatial(ty);
                if bytes {
                    format!("{}, HEX({})", literal(c), ident(c))
                } else {
                    format!("{}, {}", literal(c), ident(c))
                }
            })
            .collect();
        format!("JSON_OBJECT({})", parts.join(", "))
    }

    /// `JSON_ARRAY(?, ?)` over the primary key (the tombstone key text).
    /// Byte-typed key columns (BINARY, VARBINARY, blobs) go in as HEX: JSON holds text,
    /// and the server makes NULL of bytes that are not (a tombstone with no key).
    pub fn pk_json_params(&self) -> String {
        let parts: Vec<&str> = self
            .pk_types
            .iter()
            .map(|ty| if is_bytes(ty) { "HEX(?)" } else { "?" })
            .collect();
        format!("JSON_ARRAY({})", parts.join(", "))
    }

    /// True for a single integer primary key (the kind ID ranges apply to).
    pub fn integer_pk(&self) -> bool {
        self.pk_types.len() == 1
            && matches!(
                self.pk_types[0].as_str(),
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
            )
    }
}

/// A shadow table of an online schema change tool: pt-online-schema-change's
/// `_<table>_new` / `_<table>_old`, gh-ost's `_<table>_gho` / `_<table>_ghc` /
/// `_<table>_del`. It exists in one zone only while the tool runs.
pub fn is_shadow_table(tbl: &str) -> bool {
    tbl.starts_with('_')
        && tbl.len() > 5
        && ["_new", "_old", "_gho", "_ghc", "_del"]
            .iter()
            .any(|s| tbl.ends_with(s))
}

/// `"db.table"` patterns of `[replication] tables` / `exclude_tables`: `*` matches
/// any run of characters, `?` one character.
#[derive(Debug, Clone, Default)]
pub struct TablePatterns(Vec<wildmatch::WildMatch>);

impl TablePatterns {
    pub fn new(patterns: &[String]) -> Self {
        TablePatterns(patterns.iter().map(|p| wildmatch::WildMatch::new(p)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, db: &str, tbl: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let name = format!("{db}.{tbl}");
        self.0.iter().any(|w| w.matches(&name))
    }
}

/// A spatial column type (`geometry`, `point`, ...).
fn is_spatial(ty: &str) -> bool {
    matches!(
        ty,
        "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

/// A column type holding bytes rather than text.
fn is_bytes(ty: &str) -> bool {
    matches!(
        ty,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn shadow_tables_of_pt_osc_and_gh_ost() {
        for t in [
            "_orders_new",
            "_orders_old",
            "_orders_gho",
            "_orders_ghc",
            "_orders_del",
        ] {
            assert!(super::is_shadow_table(t), "{t}");
        }
        for t in ["orders", "orders_new", "_new", "_orders", "news"] {
            assert!(!super::is_shadow_table(t), "{t}");
        }
    }

    #[test]
    fn table_patterns() {
        let p = super::TablePatterns::new(&["shop.order_*".into(), "shop.users".into()]);
        assert!(p.matches("shop", "order_items") && p.matches("shop", "users"));
        assert!(!p.matches("shop", "orders") && !p.matches("shop", "users2") && !p.matches("other", "users"));
        assert!(!super::TablePatterns::default().matches("shop", "users"));
    }
}
