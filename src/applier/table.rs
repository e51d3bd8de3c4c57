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
    /// INSERT/UPDATE trigger can make the order of writes within a target transaction
    /// matter.
    pub batchable: bool,
}

impl LocalTable {
    pub async fn load(
        conn: &mut Conn,
        db: &str,
        tbl: &str,
        version_column: &str,
    ) -> Result<Option<LocalTable>, mysql_async::Error> {
        let cols: Vec<(String, String, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_KEY, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
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
                 + (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND EVENT_MANIPULATION IN ('INSERT', 'UPDATE'))",
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
        let version_type = cols
            .iter()
            .find(|c| Some(&c.0) == version.as_ref())
            .map(|c| c.2.to_ascii_lowercase())
            .unwrap_or_default();
        Ok(Some(LocalTable {
            db: db.to_string(),
            tbl: tbl.to_string(),
            columns,
            pk: pk_rows.iter().map(|r| r.0.clone()).collect(),
            pk_types: pk_rows.iter().map(|r| r.1.to_ascii_lowercase()).collect(),
            version,
            version_type,
            batchable: integer_key && other_constraints == Some(0),
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

    /// Name of the tombstone trigger: at most 64 characters.
    pub fn trigger_name(&self) -> String {
        let name = format!("drc_tombstone_{}", self.tbl);
        if name.len() <= 64 {
            name
        } else {
            format!("drc_tombstone_{:08x}", crc32fast::hash(self.tbl.as_bytes()))
        }
    }

    /// The AFTER DELETE trigger that records a tombstone for every delete, local or
    /// applied, in the deleting transaction. See docs/CONFLICTS.md.
    pub fn trigger_sql(&self) -> Option<String> {
        Some(format!(
            "CREATE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW {body}",
            trigger = table(&self.db, &self.trigger_name()),
            table = self.qualified(),
            body = self.trigger_body()?,
        ))
    }

    /// The trigger's statement. A delete's version is the applier's
    /// `@drc_delete_version` (the origin's delete time) or, for a local delete, the
    /// time of the delete (DATETIME/TIMESTAMP versions) and never less than the row's
    /// own version.
    pub fn trigger_body(&self) -> Option<String> {
        let version = ident(self.version.as_ref()?);
        if self.pk.is_empty() {
            return None;
        }
        let pk = self
            .pk
            .iter()
            .map(|c| format!("OLD.{}", ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let local = if matches!(self.version_type.as_str(), "datetime" | "timestamp") {
            format!("GREATEST(CAST(NOW(6) AS DECIMAL(30,6)), CAST(OLD.{version} AS DECIMAL(30,6)))")
        } else {
            format!("CAST(OLD.{version} AS DECIMAL(30,6))")
        };
        Some(format!(
            "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES ({db}, {tbl}, JSON_ARRAY({pk}), COALESCE(@drc_delete_version, {local})) \
             ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
            db = literal(&self.db),
            tbl = literal(&self.tbl),
        ))
    }
}

/// Installs the tombstone trigger on `t` if it is missing. DDL: call it outside an
/// apply transaction (it commits implicitly).
pub async fn ensure_trigger(conn: &mut Conn, t: &LocalTable) -> Result<bool, mysql_async::Error> {
    let Some(sql) = t.trigger_sql() else {
        return Ok(false);
    };
    let exists: Option<String> = conn
        .exec_first(
            "SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME = ?",
            (&t.db, t.trigger_name()),
        )
        .await?;
    match exists {
        Some(body) if Some(body.trim()) == t.trigger_body().as_deref().map(str::trim) => return Ok(false),
        Some(_) => {
            // an older drc's trigger: replace it
            conn.query_drop(format!("DROP TRIGGER IF EXISTS {}", table(&t.db, &t.trigger_name())))
                .await?;
        }
        None => {}
    }
    match conn.query_drop(sql).await {
        Ok(()) => Ok(true),
        // created meanwhile by another drc or an earlier attempt
        Err(mysql_async::Error::Server(e)) if e.code == 1359 => Ok(false),
        Err(e) => Err(e),
    }
}
