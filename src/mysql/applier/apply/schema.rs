//! drc's own schema (`schemas/drc_meta.sql`) and its triggers, installed and kept.

use super::*;

/// The drc schema, statement by statement.
pub const META_SQL: &str = include_str!("../../../../schemas/drc_meta.sql");

/// The statements of `schemas/drc_meta.sql`: comment lines dropped, split at a `;`
/// that ends a line.
pub fn meta_statements() -> Vec<String> {
    let text: Vec<&str> = META_SQL.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
    text.join("\n")
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Applier {
    /// Creates the drc schema (idempotent).
    pub async fn init_schema(&mut self) -> Result<(), Error> {
        let statements = meta_statements();
        for stmt in statements {
            self.conn
                .query_drop(stmt)
                .await
                .map_err(|e| mysql_err(&self.s, "creating the drc schema", e))?;
        }
        // Columns added after the first release of the schema.
        for (col, def) in [
            ("kafka_topic", "VARCHAR(255) NULL"),
            ("kafka_partition", "INT NULL"),
            ("kafka_offset", "BIGINT NULL"),
            ("hb_seq", "BIGINT UNSIGNED NULL"),
            ("hb_ts_us", "BIGINT NULL"),
            ("hb_applied_us", "BIGINT NULL"),
        ] {
            let have: Option<String> = self
                .conn
                .exec_first(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'drc' AND TABLE_NAME = 'applied' AND COLUMN_NAME = ?",
                    (col,),
                )
                .await
                .map_err(|e| mysql_err(&self.s, "reading drc.applied", e))?;
            if have.is_none() {
                match self
                    .conn
                    .query_drop(format!("ALTER TABLE `drc`.`applied` ADD COLUMN {col} {def}"))
                    .await
                {
                    // another drc added it meanwhile
                    Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                    r => r.map_err(|e| mysql_err(&self.s, "upgrading drc.applied", e))?,
                }
            }
        }
        Ok(())
    }

    /// Installs drc's triggers (tombstones; local writes never go back in version) on
    /// every table of the replicated databases that has the version column and a
    /// primary key, replacing any that differ (an older drc's). Returns how many were
    /// created. With `only_missing` (the trigger keeper, every 2 s) only tables that
    /// lack some of them are read: one information_schema query per database instead
    /// of five per table.
    pub async fn ensure_triggers(&mut self, only_missing: bool) -> Result<usize, Error> {
        let mut created = 0;
        for db in self.s.databases.clone() {
            let tables: Vec<String> = if only_missing {
                self.conn
                    .exec(
                        "SELECT c.TABLE_NAME FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = ? AND c.COLUMN_NAME = ? \
                         AND EXISTS (SELECT 1 FROM information_schema.TABLE_CONSTRAINTS k WHERE k.TABLE_SCHEMA = c.TABLE_SCHEMA \
                         AND k.TABLE_NAME = c.TABLE_NAME AND k.CONSTRAINT_TYPE = 'PRIMARY KEY') \
                         AND (SELECT COUNT(*) FROM information_schema.TRIGGERS g WHERE g.EVENT_OBJECT_SCHEMA = c.TABLE_SCHEMA \
                         AND g.EVENT_OBJECT_TABLE = c.TABLE_NAME AND g.TRIGGER_NAME LIKE 'drc\\_%') \
                         < IF(c.DATA_TYPE IN ('datetime', 'timestamp'), 3, 1)",
                        (db.as_str(), self.s.version_column.as_str()),
                    )
                    .await
                    .map_err(|e| mysql_err(&self.s, "listing tables without drc's triggers", e))?
            } else {
                self.conn
                    .exec(
                        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
                        (db.as_str(),),
                    )
                    .await
                    .map_err(|e| mysql_err(&self.s, "listing tables", e))?
            };
            for t in tables {
                if let Some(lt) = LocalTable::load(&mut self.conn, &db, &t, &self.s.version_column)
                    .await
                    .map_err(|e| mysql_err(&self.s, "reading table metadata", e))?
                {
                    created += ensure_triggers(&mut self.conn, &lt)
                        .await
                        .map_err(|e| mysql_err(&self.s, "creating drc's triggers", e))?;
                }
            }
        }
        Ok(created)
    }
}
