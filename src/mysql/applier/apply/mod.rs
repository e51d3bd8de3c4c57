//! Applies origin transactions to the local server. See the module doc of
//! [`crate::mysql::applier`] and docs/CONFLICTS.md.
//!
//! # Exactly once
//! An origin transaction is applied inside one target transaction: it opens on
//! fragment 0 by bumping the loop marker (`drc.marker`), applies every row with
//! last-writer-wins, and on the last fragment writes the origin position into
//! `drc.applied` and commits. With [`Applier::apply_grouped`] several complete origin
//! transactions share the target transaction (group commit) and the position written
//! is the last one's. A crash at any instant leaves either nothing or everything of
//! the (group of) transactions, position included; the reader resumes from
//! `drc.applied`. A transaction whose GTID the stored position already contains is
//! skipped (a duplicate delivery).
//!
//! # Batches
//! Runs of inserts and key-preserving updates of a batchable table (see
//! [`LocalTable::batchable`]) are applied with one locking read and multi-row
//! statements, with exactly the decisions of the row path: only rows whose decision
//! is a plain insert or overwrite take the batch path, the rest go row by row. Within
//! a group, the rows of batchable transactions are applied per table and per key
//! (chains). docs/ARCHITECTURE.md, "Applying fast", states why the result is the
//! same as row by row; a differential test checks it.
//!
//! # Loops
//! A transaction that writes `drc.marker` was written by an applier: it is never
//! applied (counted as suppressed), so a change never returns to its origin zone. A
//! DDL statement the applier ran carries a comment instead (`ddl.rs`).
//!
//! # Files
//! `group.rs` group commit · `row.rs` the row path · `batch.rs` the batch path ·
//! `conflicts.rs` the conflict log and ID ranges · `tombstone.rs` tombstones and
//! truncates · `columns.rs` schema changes under traffic · `tables.rs` table
//! metadata and the tables skipped here · `ddl.rs` the DDL policy · `heartbeat.rs`
//! peers' heartbeats · `position.rs` `drc.applied` · `schema.rs` the drc schema.

use super::id_range::{RangePolicy, ZoneRanges};
use super::lww::{decide, Action, Conflict, Incoming, Local};
use super::sql::{bind, ident, inline, parse_decimal, version_of};
use super::table::{LocalTable, TablePatterns};
use crate::error::Error;
use crate::model::{Change, Op, RowChange, RowImage, Transaction};
use crate::position::{Checkpoint, FilePos, GtidState};
use crate::telemetry::metrics as m;
use crate::telemetry::status::{registry, Direction};
use crate::telemetry::summary::CountSummary;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value as MyValue};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

mod batch;
mod columns;
mod conflicts;
mod ddl;
mod global;
mod group;
mod heartbeat;
mod load;
mod parked;
mod position;
mod row;
mod schema;
mod tables;
#[cfg(test)]
mod tests;
mod tombstone;

use batch::*;
use conflicts::*;
pub use position::{channel_key, LOOP_MARKER};
pub use row::format_decimal;
use row::*;
pub use schema::{meta_statements, META_SQL};
pub use tables::{Unfit, UNFIT_RECHECK};

/// What the applier needs to know.
#[derive(Debug, Clone)]
pub struct ApplierSettings {
    /// This zone.
    pub zone: String,
    /// Databases replicated between zones (changes elsewhere are ignored).
    pub databases: Vec<String>,
    /// Name of the version column every replicated table has.
    pub version_column: String,
    /// Key ranges of every zone.
    pub id_ranges: BTreeMap<String, ZoneRanges>,
    pub range_policy: RangePolicy,
    /// Address of the local server, for messages.
    pub addr: String,
    /// Name of this replication channel when several daemons apply into one server
    /// (tests, or separate database groups): positions are kept per origin and channel.
    pub channel: String,
    /// `db.table` names replicated without a version column (origin wins).
    pub unversioned: Vec<String>,
    /// How long a change for a table missing here waits for it before it is a
    /// definite error (a RENAME or CREATE run in the origin zone, not yet here).
    pub missing_table_wait: std::time::Duration,
    /// Changes of online schema change tools' shadow tables are not replicated.
    pub skip_shadow_tables: bool,
    /// When not empty, only these tables of `databases` replicate; a listed table
    /// missing here is waited for, never skipped.
    pub tables: TablePatterns,
    /// Tables of `databases` never replicated.
    pub exclude_tables: TablePatterns,
    /// Databases whose schema changes are replicated from a home zone (see `ddl`).
    pub ddl_home: BTreeMap<String, String>,
    /// Global-zone tables and their home zone (see `global`).
    /// `[replication.global_tables]`: pattern text, pattern, home zone.
    pub global_tables: Vec<(String, TablePatterns, String)>,
}

impl ApplierSettings {
    /// The home zone of `db`.`tbl` when it is a global-zone table.
    pub fn global_home(&self, db: &str, tbl: &str) -> Option<&str> {
        self.global_index(db, tbl).map(|i| self.global_tables[i].2.as_str())
    }

    /// Which `global_tables` entry `db`.`tbl` falls under, if any.
    pub fn global_index(&self, db: &str, tbl: &str) -> Option<usize> {
        self.global_tables.iter().position(|(_, p, _)| p.matches(db, tbl))
    }

    /// Whether changes of `db`.`tbl` are replicated: a replicated database, not drc's
    /// schema, not an online schema change tool's shadow table (when skipped).
    pub fn replicates(&self, db: &str, tbl: &str) -> bool {
        db != "drc"
            && self.databases.iter().any(|d| d == db)
            && !(self.skip_shadow_tables && super::table::is_shadow_table(tbl))
            && (self.tables.is_empty() || self.tables.matches(db, tbl))
            && !self.exclude_tables.matches(db, tbl)
    }

    /// Key of the origin in `drc.applied` / `drc.marker`: `a`, or `a/<channel>`.
    pub fn channel_key(&self, origin: &str) -> String {
        channel_key(&self.channel, origin)
    }
}

/// Counters since start (metrics come with the operations issue).
#[derive(Debug, Default, Clone)]
pub struct ApplyStats {
    pub transactions: u64,
    pub rows: u64,
    pub conflicts: u64,
    pub quarantined: u64,
    pub duplicates_skipped: u64,
    pub loops_suppressed: u64,
}

/// What happened to one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rows applied; `committed` on the last fragment.
    Applied { committed: bool },
    /// Written by an applier (loop) or already applied: nothing done.
    Skipped,
}

/// What `apply_inner` did with a fragment.
enum Step {
    Done(Outcome),
    /// A complete transaction whose rows can wait for the group's batches: the caller
    /// hands it to the group (it owns the transaction).
    Defer,
}

enum SkipReason {
    Loop,
    Duplicate,
}

pub struct Applier {
    conn: Conn,
    s: Arc<ApplierSettings>,
    /// How far the journal had read this zone's binlog when this session began
    /// (`daemon::journal::barrier`): every local delete committed before that has its
    /// tombstone.
    journal_through: Option<FilePos>,
    tables: HashMap<(String, String), Arc<LocalTable>>,
    /// Whether this server takes `LOAD DATA LOCAL` (see `load`); None until asked.
    local_infile: Option<bool>,
    /// Columns dropped in this zone, per table (`drc.dropped_columns`, lower case).
    dropped: HashMap<(String, String), Vec<String>>,
    /// When each table's metadata was read (read again when an image differs from it).
    loaded: HashMap<(String, String), std::time::Instant>,
    /// Origin zone of the open target transaction.
    open: Option<String>,
    /// Rest of the current origin transaction is skipped.
    skipping: Option<SkipReason>,
    /// Kafka position of the fragment being applied (written with the position).
    transport_position: Option<crate::position::KafkaPosition>,
    /// Applied GTID state per origin (mirror of drc.applied).
    applied: HashMap<String, Option<GtidState>>,
    pub stats: ApplyStats,
    /// `stats.rows` already counted in the rows metric.
    rows_reported: u64,
    /// Status and metric handles per origin.
    directions: HashMap<String, Arc<Direction>>,
    /// Counted in the open target transaction, reported to the metrics when it
    /// commits (a rolled-back group is applied again and must not count twice):
    /// rows written in batches, conflicts by kind, ID-range violations.
    uncommitted: Uncounted,
    /// Origin transactions applied in the open target transaction, not yet committed
    /// (group commit, see [`Applier::apply_grouped`]).
    group: Option<Group>,
    /// Inside an origin transaction whose last fragment has not been applied yet.
    partial: bool,
    /// The current origin transaction counts as an applied transaction (a journal
    /// transaction, tombstones and raises of the origin's journal, does not).
    counting: bool,
    /// Committed conflicts not yet summarised in the log, by (origin, table, kind,
    /// resolution): one line per group at most every 10 s, not one per row.
    conflict_log: CountSummary<(String, String, String, String)>,
    /// Tables of replicated databases whose changes this zone skips, by database and
    /// table (see [`Unfit`]), with when that was decided (checked again after
    /// [`UNFIT_RECHECK`]).
    unfit: HashMap<String, HashMap<String, (Unfit, std::time::Instant)>>,
    /// Tables whose rows from an origin wait for a schema change here (`parked.rs`),
    /// whether they were read back this session, when they were last tried.
    parked: std::collections::HashSet<parked::ParkedTable>,
    parked_loaded: bool,
    parked_tried: Option<std::time::Instant>,
    /// Set by a row that must wait for a column (`columns.rs`): the caller parks it.
    wait_column: Option<String>,
}

impl Drop for Applier {
    /// The conflicts counted since the last summary are logged when the applier goes.
    fn drop(&mut self) {
        let rest = self.conflict_log.take();
        if !rest.is_empty() {
            group::log_conflicts(rest);
        }
    }
}

#[derive(Default)]
struct Uncounted {
    batched_rows: u64,
    loaded_rows: u64,
    /// (table, kind, resolution) of each logged conflict.
    conflicts: Vec<(String, String, String)>,
    id_range_violations: u64,
}

/// Kafka topic, partition and offset of a message.
type TransportPosition = Option<crate::position::KafkaPosition>;

/// Complete origin transactions applied in the open target transaction.
struct Group {
    origin: String,
    started: std::time::Instant,
    txs: Vec<Pending>,
    /// Transactions whose rows wait to be applied in batches (see `apply_deferred`).
    deferred: Vec<Transaction>,
    deferred_rows: usize,
}

/// An applied origin transaction waiting for the group's commit.
struct Pending {
    gtid: Option<String>,
    commit_ts_us: i64,
    cp: Checkpoint,
    transport: TransportPosition,
    /// Counts as an applied origin transaction (not a journal transaction).
    counted: bool,
}

/// The session every drc writer of the local server uses (applier, journal): UTC,
/// utf8mb4, NO_AUTO_VALUE_ON_ZERO, strict, READ COMMITTED (so a row lock on a missing
/// key takes no gap lock).
pub fn session_opts(opts: Opts) -> Opts {
    mysql_async::OptsBuilder::from_opts(opts)
        .stmt_cache_size(512)
        .init(vec![
            "SET NAMES utf8mb4",
            "SET SESSION time_zone = '+00:00'",
            "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        ])
        .into()
}

fn definite(s: &ApplierSettings, what: String) -> Error {
    Error::Server {
        addr: s.addr.clone(),
        what,
    }
}

fn mysql_err(s: &ApplierSettings, context: &str, e: mysql_async::Error) -> Error {
    match e {
        // A table renamed or dropped, a column gone, under the applier's feet (a DDL
        // run in this zone): the session restarts from its position and reads the
        // tables again; a table still missing then waits (`missing_table_wait`).
        mysql_async::Error::Server(ref se) if matches!(se.code, 1146 | 1054) => Error::Transient {
            addr: s.addr.clone(),
            what: format!("{context}: {} (the schema changed here; reading it again)", se.message),
        },
        // A value the local column cannot hold (too long, out of range): a column the
        // origin zone widened and this one not yet. The direction waits, in order.
        mysql_async::Error::Server(ref se) if matches!(se.code, 1406 | 1264 | 1265) => Error::Transient {
            addr: s.addr.clone(),
            what: format!(
                "{context}: {} (a column narrower here than in the origin zone? run the origin's ALTER TABLE here; waiting)",
                se.message
            ),
        },
        e => crate::mysql::error::classify(&s.addr, context, e),
    }
}

impl Applier {
    /// Opens the applier's session ([`session_opts`]).
    pub async fn connect(opts: Opts, s: Arc<ApplierSettings>) -> Result<Applier, Error> {
        let conn = Conn::new(session_opts(opts))
            .await
            .map_err(|e| mysql_err(&s, "connect", e))?;
        Ok(Applier {
            conn,
            s,
            tables: HashMap::new(),
            local_infile: None,
            dropped: HashMap::new(),
            loaded: HashMap::new(),
            open: None,
            skipping: None,
            applied: HashMap::new(),
            transport_position: None,
            stats: ApplyStats::default(),
            rows_reported: 0,
            directions: HashMap::new(),
            group: None,
            partial: false,
            counting: true,
            parked: Default::default(),
            parked_loaded: false,
            parked_tried: None,
            wait_column: None,
            journal_through: None,
            uncommitted: Uncounted::default(),
            conflict_log: CountSummary::default(),
            unfit: HashMap::new(),
        })
    }

    /// Commits the open target transaction.
    async fn commit(&mut self) -> Result<(), Error> {
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| mysql_err(&self.s, "COMMIT", e))?;
        self.open = None;
        Ok(())
    }

    /// Logs the conflict counts the summary period held back, when due.
    fn log_conflicts_if_due(&mut self) {
        if let Some(summary) = self.conflict_log.due(std::time::Instant::now()) {
            group::log_conflicts(summary);
        }
    }

    async fn rollback(&mut self) {
        if self.open.take().is_some() {
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
    }

    /// Applies one fragment of an origin transaction from `origin`; the last fragment
    /// commits.
    pub async fn apply(&mut self, origin: &str, tx: &Transaction) -> Result<Outcome, Error> {
        match self.apply_inner(origin, tx, false).await {
            Ok(Step::Done(o)) => Ok(o),
            Ok(Step::Defer) => unreachable!("nothing is deferred outside a group"),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn apply_inner(&mut self, origin: &str, tx: &Transaction, defer: bool) -> Result<Step, Error> {
        if tx.fragment == 0 {
            if self.partial {
                // a restarted stream re-sends a transaction from its start (such a
                // transaction never shares its target transaction with a group)
                self.rollback().await;
                self.partial = false;
            }
            self.skipping = None;
            self.counting = !crate::mysql::is_journal_transaction(tx);
            if is_applier_transaction(tx) {
                self.skipping = Some(SkipReason::Loop);
            } else if let (Some(g), Some(Some(state))) = (&tx.gtid, self.applied.get(origin)) {
                if state.contains(g) {
                    self.skipping = Some(SkipReason::Duplicate);
                }
            }
        }
        if self.skipping.is_some() {
            if tx.last {
                let d = self.direction(origin);
                match self.skipping.take() {
                    Some(SkipReason::Loop) => {
                        self.stats.loops_suppressed += 1;
                        d.metrics.loops_suppressed.increment(1);
                    }
                    _ => {
                        self.stats.duplicates_skipped += 1;
                        d.metrics.duplicates_skipped.increment(1);
                    }
                }
            }
            return Ok(Step::Done(Outcome::Skipped));
        }
        for c in &tx.changes {
            if let Change::Statement(st) = c {
                self.note_origin_ddl(st);
            }
        }
        let ddl = self.ddl_to_apply(origin, tx);
        self.screen(origin, tx).await?;
        let relevant = tx
            .changes
            .iter()
            .any(|c| matches!(c, Change::Row(r) if self.replicated(r) || self.tombstone_of_replicated(r)));
        // Only complete, single-fragment transactions with rows of the same origin join
        // an open group; anything else (heartbeats, position-only, big transactions)
        // commits it first.
        if self.group.is_some()
            && tx.fragment == 0
            && (!relevant || !tx.last || self.group.as_ref().is_some_and(|g| g.origin != origin))
        {
            self.flush().await?;
        }
        if !ddl.is_empty() {
            // DDL commits implicitly: never inside a group or an open transaction
            self.flush().await?;
            self.rollback().await;
            self.apply_ddl(origin, &ddl).await?;
        }
        if self.open.is_none() && !relevant && tx.fragment == 0 && tx.last {
            if let Some(hb) = self.heartbeat_of(origin, tx) {
                self.apply_heartbeat(origin, tx, hb).await?;
                return Ok(Step::Done(Outcome::Skipped));
            }
        }
        self.load_parked().await?;
        if tx.fragment == 0 {
            self.retry_parked(origin).await?;
        }
        if self.open.is_none() && (relevant || tx.last) {
            if !relevant {
                // nothing to write (DDL, other databases; the last fragment of a large
                // transaction of another database too): only the position moves, lazily
                if let Some(cp) = &tx.checkpoint {
                    self.note_position_only(origin, cp);
                }
                return Ok(Step::Done(Outcome::Skipped));
            }
            self.begin(origin).await?;
        }
        if self.open.is_some() {
            self.partial = !tx.last;
        }
        if defer && self.open.is_some() && tx.fragment == 0 && tx.last && self.deferrable(tx).await? {
            return Ok(Step::Defer);
        }
        // the rows of earlier transactions of the group come first
        self.apply_deferred().await?;
        let mut i = 0;
        let mut parked: Vec<Change> = Vec::new();
        while i < tx.changes.len() {
            match &tx.changes[i] {
                Change::Row(r) if self.replicated(r) && self.is_parked(Some(origin), r) => {
                    parked.push(tx.changes[i].clone());
                }
                Change::Row(r) if self.replicated(r) => {
                    let n = self.batch_len(&tx.changes[i..]).await?;
                    if n >= 2 {
                        let rows: Vec<(&Transaction, &RowChange)> = tx.changes[i..i + n]
                            .iter()
                            .filter_map(|c| match c {
                                Change::Row(r) => Some((tx, r)),
                                _ => None,
                            })
                            .collect();
                        let chains: Vec<&[(&Transaction, &RowChange)]> = rows.chunks(1).collect();
                        self.apply_batch(origin, &chains).await?;
                        i += n;
                        continue;
                    }
                    self.wait_column = None;
                    match self.apply_row(origin, tx, r).await {
                        // a column this table lacks here: the table waits, the others go on
                        // (a table linked by foreign keys waits with its whole
                        // direction: a child row applied before its parked parent
                        // would fail and be lost)
                        Err(_)
                            if self.wait_column.is_some() && !self.table(&r.db, &r.tbl_name()).await?.foreign_keys =>
                        {
                            let column = self.wait_column.take().unwrap_or_default();
                            self.start_parking(origin, r, &column);
                            parked.push(tx.changes[i].clone());
                        }
                        r => r?,
                    }
                }
                Change::Row(r) if self.tombstone_of_replicated(r) => self.apply_tombstone(origin, tx, r).await?,
                Change::Row(_) => {}
                Change::Statement(st) => {
                    tracing::warn!(origin, db = %st.db, sql = %st.sql, "statement from the origin zone not applied (drc replicates rows; run DDL in every zone)");
                }
            }
            i += 1;
        }
        while !parked.is_empty() {
            let Change::Row(first) = &parked[0] else { break };
            let (db, tbl) = (first.db.clone(), first.table.clone());
            let (these, rest): (Vec<Change>, Vec<Change>) = parked
                .into_iter()
                .partition(|c| matches!(c, Change::Row(r) if r.db == db && r.table == tbl));
            self.park(origin, tx, these).await?;
            parked = rest;
        }
        if tx.last {
            if self.open.is_some() {
                self.join_group(origin, tx);
                if defer && !self.group_full() {
                    return Ok(Step::Done(Outcome::Applied { committed: false }));
                }
                self.flush().await?;
                return Ok(Step::Done(Outcome::Applied { committed: true }));
            }
            return Ok(Step::Done(Outcome::Skipped));
        }
        Ok(Step::Done(Outcome::Applied { committed: false }))
    }

    /// The status/metrics of the direction from `origin` (looked up once per origin).
    fn direction(&mut self, origin: &str) -> Arc<Direction> {
        if let Some(d) = self.directions.get(origin) {
            return d.clone();
        }
        let d = registry().direction(origin);
        self.directions.insert(origin.to_string(), d.clone());
        d
    }

    fn replicated(&self, r: &RowChange) -> bool {
        self.s.replicates(&r.db, &r.table) && !self.is_unfit(&r.db, &r.table)
    }
}

/// Versions by integer primary key.
type KeyVersions = HashMap<Vec<i128>, i128>;

pub use crate::mysql::is_applier_transaction;

impl RowChange {
    fn tbl_name(&self) -> String {
        self.table.to_string()
    }
}
