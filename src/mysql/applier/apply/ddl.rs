//! The DDL policy (`[replication.ddl_home]`): the schema changes of a database whose
//! home is the origin zone are run here, marked as drc's (`ddl::mark`), so no
//! reader ships them back or on; destructive DDL is never run; DDL of a database run
//! in a zone that is not its home is reported and not run.
//!
//! # Invariants
//! * A statement marked as applied by drc is never applied again (loop suppression:
//!   a DDL has no BEGIN/COMMIT, so it cannot carry the marker row; it carries a
//!   comment in its text, which both flavors keep in the binlog).
//! * A DDL is not transactional: it runs outside any target transaction, and the
//!   position moves with the next applied transaction. After a crash between the two
//!   it runs again; the errors of a change already made (table/column/index exists,
//!   or is already gone) count as applied.

use super::*;
use crate::mysql::ddl::{self, DdlKind};

/// Errors of a schema change that is already in place.
const ALREADY_APPLIED: &[u16] = &[
    1050, // table exists
    1060, // duplicate column
    1061, // duplicate key name
    1091, // cannot drop: does not exist
    1146, // table does not exist (a RENAME already made)
];

impl Applier {
    /// The statements of `tx` to run here under the DDL policy; reports the others.
    pub(super) fn ddl_to_apply(&self, origin: &str, tx: &Transaction) -> Vec<crate::model::Statement> {
        if self.s.ddl_home.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for c in &tx.changes {
            let Change::Statement(st) = c else { continue };
            if ddl::applied_from(&st.sql).is_some() {
                continue; // applied by a drc applier: never again
            }
            let d = ddl::classify(&st.db, &st.sql);
            if d.kind == DdlKind::Other {
                continue;
            }
            let homes: Vec<&String> = d.databases.iter().filter_map(|db| self.s.ddl_home.get(db)).collect();
            if homes.is_empty() {
                continue; // manual: the DBA runs it in every zone
            }
            let action = if homes.iter().any(|h| *h != origin) {
                tracing::warn!(origin, sql = %st.sql, "DDL run in zone {origin}, which is not the home zone of its database ([replication.ddl_home]): not applied here; run schema changes in the home zone");
                "misplaced"
            } else if d.kind == DdlKind::Destructive {
                tracing::warn!(origin, sql = %st.sql, "destructive DDL (DROP TABLE, TRUNCATE, DROP COLUMN) is never replicated: run it in this zone yourself");
                "skipped_destructive"
            } else {
                out.push(st.clone());
                continue;
            };
            metrics::counter!(m::DDL, "from_zone" => origin.to_string(), "to_zone" => self.s.zone.clone(), "action" => action)
                .increment(1);
        }
        out
    }

    /// Runs the home zone's schema changes here, marked as drc's.
    pub(super) async fn apply_ddl(
        &mut self,
        origin: &str,
        statements: &[crate::model::Statement],
    ) -> Result<(), Error> {
        for st in statements {
            if !st.db.is_empty() {
                self.conn
                    .query_drop(format!("USE {}", ident(&st.db)))
                    .await
                    .map_err(|e| mysql_err(&self.s, "selecting the DDL's database", e))?;
            }
            let action = match self.conn.query_drop(ddl::mark(origin, &st.sql)).await {
                Ok(()) => "applied",
                Err(mysql_async::Error::Server(e)) if ALREADY_APPLIED.contains(&e.code) => {
                    tracing::info!(origin, sql = %st.sql, error = %e.message, "DDL of the home zone already in place here");
                    "already_applied"
                }
                Err(e) => {
                    return Err(mysql_err(
                        &self.s,
                        &format!("running the DDL of zone {origin} `{}`", st.sql),
                        e,
                    ))
                }
            };
            tracing::info!(origin, sql = %st.sql, action, "DDL of the home zone");
            metrics::counter!(m::DDL, "from_zone" => origin.to_string(), "to_zone" => self.s.zone.clone(), "action" => action)
                .increment(1);
        }
        // the tables' metadata is read again
        self.tables.clear();
        self.loaded.clear();
        self.dropped.clear();
        Ok(())
    }
}
