//! drc's own schema (`schemas/drc_meta.sql`), created and upgraded; and the removal of
//! the triggers an older drc put on the application's tables (drc now keeps nothing
//! in the application's schemas).

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
        // Columns added after the first release of the schema (`ADD COLUMN IF NOT
        // EXISTS` is MariaDB's: the column is looked up first).
        for (tbl, col, def) in [
            ("applied", "kafka_topic", "VARCHAR(255) NULL"),
            ("applied", "kafka_partition", "INT NULL"),
            ("applied", "kafka_offset", "BIGINT NULL"),
            ("applied", "hb_seq", "BIGINT UNSIGNED NULL"),
            ("applied", "hb_ts_us", "BIGINT NULL"),
            ("applied", "hb_applied_us", "BIGINT NULL"),
            ("marker", "journal_file", "VARCHAR(255) NULL"),
            ("marker", "journal_pos", "BIGINT UNSIGNED NULL"),
            ("parked", "channel", "VARCHAR(128) NOT NULL DEFAULT ''"),
            ("parked", "journal", "TINYINT NOT NULL DEFAULT 0"),
        ] {
            let have: Option<String> = self
                .conn
                .exec_first(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'drc' AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                    (tbl, col),
                )
                .await
                .map_err(|e| mysql_err(&self.s, "reading drc's schema", e))?;
            if have.is_none() {
                match self
                    .conn
                    .query_drop(format!("ALTER TABLE `drc`.`{tbl}` ADD COLUMN {col} {def}"))
                    .await
                {
                    // another drc added it meanwhile
                    Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                    r => r.map_err(|e| mysql_err(&self.s, &format!("upgrading drc.{tbl}"), e))?,
                }
            }
        }
        Ok(())
    }

    /// Removes the triggers an older drc installed on the application's tables
    /// (`drc_tombstone_*`, `drc_update_*`, `drc_insert_*`: tombstones and version
    /// guards, now the journal's work) in the replicated databases. Returns how many
    /// were dropped. DDL: call it outside an apply transaction.
    pub async fn drop_legacy_triggers(&mut self) -> Result<usize, Error> {
        let mut dropped = 0;
        for db in self.s.databases.clone() {
            let names: Vec<String> = self
                .conn
                .exec(
                    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? \
                     AND (TRIGGER_NAME LIKE 'drc\\_tombstone\\_%' OR TRIGGER_NAME LIKE 'drc\\_update\\_%' OR TRIGGER_NAME LIKE 'drc\\_insert\\_%')",
                    (db.as_str(),),
                )
                .await
                .map_err(|e| mysql_err(&self.s, "listing an older drc's triggers", e))?;
            for name in names {
                self.conn
                    .query_drop(format!(
                        "DROP TRIGGER IF EXISTS {}",
                        super::super::sql::table(&db, &name)
                    ))
                    .await
                    .map_err(|e| mysql_err(&self.s, "dropping an older drc's trigger", e))?;
                tracing::info!(db = %db, trigger = %name, "dropped an older drc's trigger");
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}
