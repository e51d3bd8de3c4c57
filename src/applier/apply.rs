//! Applies origin transactions to the local server. See the module doc of
//! [`crate::applier`] and docs/CONFLICTS.md.
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
//! applied (counted as suppressed), so a change never returns to its origin zone.

use super::id_range::{RangePolicy, ZoneRanges};
use super::lww::{decide, Action, Conflict, Incoming, Local};
use super::sql::{bind, ident, parse_decimal, version_of};
use super::table::{ensure_triggers, LocalTable};
use crate::error::Error;
use crate::model::{Change, Op, RowChange, RowImage, Transaction};
use crate::ops::metrics as m;
use crate::ops::status::{registry, Direction};
use crate::position::{Checkpoint, FilePos, GtidState};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Value as MyValue};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The drc schema, statement by statement.
pub const META_SQL: &str = include_str!("../../schemas/drc_meta.sql");

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
}

impl ApplierSettings {
    /// Key of the origin in `drc.applied` / `drc.marker`: `a`, or `a/<channel>`.
    pub fn channel_key(&self, origin: &str) -> String {
        crate::config::channel_key(&self.channel, origin)
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
    tables: HashMap<(String, String), Arc<LocalTable>>,
    /// Origin zone of the open target transaction.
    open: Option<String>,
    /// Rest of the current origin transaction is skipped.
    skipping: Option<SkipReason>,
    /// Kafka position of the fragment being applied (written with the position).
    transport_position: Option<(String, i32, i64)>,
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
}

#[derive(Default)]
struct Uncounted {
    batched_rows: u64,
    conflicts: Vec<String>,
    id_range_violations: u64,
}

/// Kafka topic, partition and offset of a message.
type TransportPosition = Option<(String, i32, i64)>;

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
}

/// A group commits when it holds this many origin transactions,
const GROUP_MAX_TXS: usize = 1_000;
/// or this many applied rows,
const GROUP_MAX_ROWS: u64 = 20_000;
/// or has been open this long (locks are held until the commit).
const GROUP_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(200);

/// At most this many rows go into one batched statement,
const BATCH_MAX_ROWS: usize = 1_000;
/// with at most this many bound values,
const BATCH_MAX_PARAMS: usize = 30_000;
/// and about this many bytes of values (well under max_allowed_packet).
const BATCH_MAX_BYTES: usize = 4 << 20;

fn definite(s: &ApplierSettings, what: String) -> Error {
    Error::Server {
        addr: s.addr.clone(),
        what,
    }
}

fn mysql_err(s: &ApplierSettings, context: &str, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(se) if [1213, 1205, 1053, 2006, 2013].contains(&se.code) => Error::Transient {
            addr: s.addr.clone(),
            what: format!("{context}: {e}"),
        },
        mysql_async::Error::Server(_) => definite(s, format!("{context}: {e}")),
        _ => Error::Transient {
            addr: s.addr.clone(),
            what: format!("{context}: {e}"),
        },
    }
}

impl Applier {
    /// Opens the applier's session: UTC, utf8mb4, NO_AUTO_VALUE_ON_ZERO, strict,
    /// READ COMMITTED (so a row lock on a missing key takes no gap lock).
    pub async fn connect(opts: Opts, s: Arc<ApplierSettings>) -> Result<Applier, Error> {
        let opts: Opts = mysql_async::OptsBuilder::from_opts(opts)
            .stmt_cache_size(512)
            .init(vec![
                "SET NAMES utf8mb4",
                "SET SESSION time_zone = '+00:00'",
                "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                // drc's version triggers leave the applier's writes as they come
                "SET @drc_applier = 1",
            ])
            .into();
        let conn = Conn::new(opts).await.map_err(|e| mysql_err(&s, "connect", e))?;
        Ok(Applier {
            conn,
            s,
            tables: HashMap::new(),
            open: None,
            skipping: None,
            applied: HashMap::new(),
            transport_position: None,
            stats: ApplyStats::default(),
            rows_reported: 0,
            directions: HashMap::new(),
            group: None,
            partial: false,
            uncommitted: Uncounted::default(),
        })
    }

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

    /// The stored position of `origin`: where its reader resumes.
    pub async fn applied_position(&mut self, origin: &str) -> Result<Option<Checkpoint>, Error> {
        let row: Option<(Option<String>, String, u64)> = self
            .conn
            .exec_first(
                "SELECT gtid, file, pos FROM `drc`.`applied` WHERE origin_zone = ?",
                (self.s.channel_key(origin),),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.applied", e))?;
        let cp = row.map(|(gtid, file, pos)| {
            let gtid = gtid.and_then(|g| serde_json::from_str::<GtidState>(&g).ok());
            Checkpoint {
                file: FilePos::new(file, pos),
                gtid,
            }
        });
        self.applied
            .insert(origin.to_string(), cp.as_ref().and_then(|c| c.gtid.clone()));
        Ok(cp)
    }

    /// Sets the Kafka topic/partition/offset of the fragment about to be applied; it is
    /// stored in `drc.applied` with the commit of its transaction.
    pub fn set_transport_position(&mut self, p: Option<(String, i32, i64)>) {
        self.transport_position = p;
    }

    /// The Kafka offset of the last applied message from `origin`.
    pub async fn applied_kafka_offset(&mut self, origin: &str) -> Result<Option<i64>, Error> {
        let r: Option<Option<i64>> = self
            .conn
            .exec_first(
                "SELECT kafka_offset FROM `drc`.`applied` WHERE origin_zone = ?",
                (self.s.channel_key(origin),),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading drc.applied", e))?;
        Ok(r.flatten())
    }

    /// Records `cp` as the position of `origin` when none is stored yet, so that a
    /// restart before the first applied transaction resumes from the same place
    /// instead of a new "now".
    pub async fn pin_position(&mut self, origin: &str, cp: &Checkpoint) -> Result<(), Error> {
        let gtid = cp
            .gtid
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("gtid serializes"));
        self.conn
            .exec_drop(
                "INSERT IGNORE INTO `drc`.`applied` (origin_zone, gtid, file, pos, applied_txns) VALUES (?, ?, ?, ?, 0)",
                (self.s.channel_key(origin), gtid, &cp.file.file, cp.file.pos),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.applied", e))?;
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        Ok(())
    }

    async fn table(&mut self, db: &str, tbl: &str) -> Result<Arc<LocalTable>, Error> {
        if let Some(t) = self.tables.get(&(db.to_string(), tbl.to_string())) {
            return Ok(t.clone());
        }
        let t = LocalTable::load(&mut self.conn, db, tbl, &self.s.version_column)
            .await
            .map_err(|e| mysql_err(&self.s, "reading table metadata", e))?
            .ok_or_else(|| {
                definite(
                    &self.s,
                    format!("replicated table `{db}`.`{tbl}` does not exist in zone {}: create it like in the origin zone; nothing of this transaction was applied and the position did not move", self.s.zone),
                )
            })?;
        if t.pk.is_empty() {
            return Err(definite(
                &self.s,
                format!("table `{db}`.`{tbl}` has no primary key; drc replicates only tables with one"),
            ));
        }
        if t.version.is_none() && !self.s.unversioned.iter().any(|u| *u == format!("{db}.{tbl}")) {
            return Err(definite(
                &self.s,
                format!("table `{db}`.`{tbl}` has no version column `{}`; add it (e.g. `{} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)`), or list it in [replication] unversioned (origin wins, no conflict resolution)", self.s.version_column, self.s.version_column),
            ));
        }
        let t = Arc::new(t);
        self.tables.insert((db.to_string(), tbl.to_string()), t.clone());
        Ok(t)
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

    /// Like [`Applier::apply`], but a complete origin transaction may stay uncommitted in
    /// the open target transaction, grouped with the next ones (group commit: one
    /// commit and one position write for many small origin transactions). The caller
    /// calls [`Applier::flush`] as soon as no further transaction is at hand, so a
    /// group only forms while the applier is behind; it also commits by itself at
    /// `GROUP_MAX_TXS` transactions, `GROUP_MAX_ROWS` rows or `GROUP_MAX_AGE`.
    /// Exactly once holds as before: the group's rows and the position of its last
    /// transaction commit together, or none of them do.
    ///
    /// Within a group, the rows of transactions that touch only batchable tables
    /// (inserts and key-preserving updates) are kept and applied together at the next
    /// transaction that is not, or at the commit: per table in multi-row statements
    /// (see `apply_deferred`).
    pub async fn apply_grouped(&mut self, origin: &str, tx: Transaction) -> Result<Outcome, Error> {
        let r = match self.apply_inner(origin, &tx, true).await {
            Ok(Step::Done(o)) => Ok(o),
            Ok(Step::Defer) => self.defer(origin, tx).await,
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.abort().await;
        }
        r
    }

    /// Adds a complete transaction whose rows all wait for the group's batches.
    async fn defer(&mut self, origin: &str, tx: Transaction) -> Result<Outcome, Error> {
        self.join_group(origin, &tx);
        let g = self.group.as_mut().expect("joined");
        g.deferred_rows += tx.changes.len();
        g.deferred.push(tx);
        if self.group_full() {
            self.flush().await?;
            return Ok(Outcome::Applied { committed: true });
        }
        Ok(Outcome::Applied { committed: false })
    }

    /// Applies the rows still waiting in the open group and commits it, if any.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.group.is_none() {
            return Ok(());
        }
        let r = match self.apply_deferred().await {
            Ok(()) => {
                let g = self.group.take().expect("checked above");
                self.commit_group(&g).await.map(|()| g)
            }
            Err(e) => Err(e),
        };
        match r {
            Ok(g) => {
                self.group_committed(g);
                Ok(())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// Records the complete origin transaction `tx` in the open group (opening one).
    fn join_group(&mut self, origin: &str, tx: &Transaction) {
        let cp = tx.checkpoint.clone().expect("last fragment has a checkpoint");
        self.partial = false;
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        let g = self.group.get_or_insert_with(|| Group {
            origin: origin.to_string(),
            started: std::time::Instant::now(),
            txs: Vec::new(),
            deferred: Vec::new(),
            deferred_rows: 0,
        });
        g.txs.push(Pending {
            gtid: tx.gtid.as_ref().map(|g| g.to_string()),
            commit_ts_us: tx.commit_ts_us,
            cp,
            transport: self.transport_position.clone(),
        });
    }

    fn group_full(&self) -> bool {
        let applied = self.stats.rows - self.rows_reported;
        self.group.as_ref().is_some_and(|g| {
            g.txs.len() >= GROUP_MAX_TXS
                || applied + g.deferred_rows as u64 >= GROUP_MAX_ROWS
                || g.started.elapsed() >= GROUP_MAX_AGE
        })
    }

    /// Rolls back the open target transaction, group included.
    async fn abort(&mut self) {
        self.uncommitted = Uncounted::default();
        self.rollback().await;
        self.skipping = None;
        self.group = None;
        self.partial = false;
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
        if self.open.is_none() && !relevant && tx.fragment == 0 && tx.last {
            if let Some(hb) = self.heartbeat_of(origin, tx) {
                self.apply_heartbeat(origin, tx, hb).await?;
                return Ok(Step::Done(Outcome::Skipped));
            }
        }
        if self.open.is_none() && (relevant || tx.last) {
            if !relevant && tx.fragment == 0 {
                // nothing to write (DDL, other databases): only the position moves, lazily
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
        while i < tx.changes.len() {
            match &tx.changes[i] {
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
                    self.apply_row(origin, tx, r).await?
                }
                Change::Row(r) if self.tombstone_of_replicated(r) => self.apply_tombstone(origin, tx, r).await?,
                Change::Row(_) => {}
                Change::Statement(st) => {
                    tracing::warn!(origin, db = %st.db, sql = %st.sql, "statement from the origin zone not applied (drc replicates rows; run DDL in every zone)");
                }
            }
            i += 1;
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

    /// Writes the position of the group's last transaction and commits.
    async fn commit_group(&mut self, g: &Group) -> Result<(), Error> {
        let last = g.txs.last().expect("a group holds a transaction");
        self.write_position(&g.origin, last, g.txs.len() as u64).await?;
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| mysql_err(&self.s, "COMMIT", e))?;
        self.open = None;
        Ok(())
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

    /// Metrics and status after a group of origin transactions committed here.
    fn group_committed(&mut self, g: Group) {
        let d = self.direction(&g.origin);
        d.metrics.commits.increment(1);
        let u = std::mem::take(&mut self.uncommitted);
        d.metrics.batched_rows.increment(u.batched_rows);
        d.metrics.id_range_violations.increment(u.id_range_violations);
        for kind in u.conflicts {
            metrics::counter!(m::CONFLICTS, "from_zone" => g.origin.clone(), "to_zone" => self.s.zone.clone(), "kind" => kind)
                .increment(1);
        }
        self.stats.transactions += g.txs.len() as u64;
        d.metrics.applied_transactions.increment(g.txs.len() as u64);
        d.metrics.applied_rows.increment(self.stats.rows - self.rows_reported);
        self.rows_reported = self.stats.rows;
        for p in &g.txs {
            if p.commit_ts_us > 0 {
                d.observe_lag(p.commit_ts_us);
            }
        }
        let Some(last) = g.txs.into_iter().last() else {
            return;
        };
        d.metrics.applied_commit_ts.set(last.commit_ts_us as f64 / 1e6);
        Self::report_position(&d, &last.cp, &last.transport);
        let (stats, last) = (&self.stats, last.gtid);
        d.update(|st| {
            st.transactions = stats.transactions;
            st.rows = stats.rows;
            st.conflicts = stats.conflicts;
            st.last_gtid = last;
            st.state = "applying".into();
        });
    }

    /// The applied position, kept raw (formatted only when `/status` is read).
    fn report_position(d: &Direction, cp: &Checkpoint, transport: &TransportPosition) {
        if let Some((_, _, o)) = transport {
            d.metrics.applied_kafka_offset.set(*o as f64);
        }
        let kafka = transport.clone();
        d.update(|st| {
            st.position = Some(cp.clone());
            if kafka.is_some() {
                st.kafka = kafka;
            }
        });
    }

    /// The origin's own heartbeat row in `tx` (seq, write time µs, lags JSON), if any.
    fn heartbeat_of(&self, origin: &str, tx: &Transaction) -> Option<(u64, i64, Option<String>)> {
        use crate::model::Value as V;
        let key = self.s.channel_key(origin);
        tx.changes.iter().find_map(|c| match c {
            Change::Row(r) if &*r.db == "drc" && &*r.table == "heartbeat" => {
                let img = r.after.as_ref()?;
                if !matches!(img.get("origin_zone"), Some(V::Text(k)) if *k == key) {
                    return None;
                }
                let seq = match img.get("seq")? {
                    V::UInt(n) => *n,
                    V::Int(n) => *n as u64,
                    _ => return None,
                };
                let ts = match img.get("ts_us")? {
                    V::Int(n) => *n,
                    V::UInt(n) => *n as i64,
                    _ => return None,
                };
                let lags = match img.get("lags") {
                    Some(V::Text(t)) => Some(t.to_string()),
                    _ => None,
                };
                Some((seq, ts, lags))
            }
            _ => None,
        })
    }

    /// Applies the origin's heartbeat: a small applier transaction (marker first, so
    /// it is never shipped onward) that moves the stored position and records the
    /// heartbeat; then the lag and clock-skew samples.
    async fn apply_heartbeat(
        &mut self,
        origin: &str,
        tx: &Transaction,
        (seq, ts_us, lags): (u64, i64, Option<String>),
    ) -> Result<(), Error> {
        let cp = tx.checkpoint.as_ref().expect("last fragment has a checkpoint");
        let mut params = self.position_params(origin, cp, &self.transport_position);
        params.extend([seq.into(), ts_us.into(), crate::ops::status::now_us().into()]);
        self.begin(origin).await?;
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`applied` (origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset, applied_txns, hb_seq, hb_ts_us, hb_applied_us) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE gtid = VALUES(gtid), file = VALUES(file), pos = VALUES(pos), \
                 kafka_topic = COALESCE(VALUES(kafka_topic), kafka_topic), kafka_partition = COALESCE(VALUES(kafka_partition), kafka_partition), \
                 kafka_offset = COALESCE(VALUES(kafka_offset), kafka_offset), \
                 hb_seq = VALUES(hb_seq), hb_ts_us = VALUES(hb_ts_us), hb_applied_us = VALUES(hb_applied_us)",
                params,
            )
            .await
            .map_err(|e| mysql_err(&self.s, "recording the heartbeat", e))?;
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| mysql_err(&self.s, "COMMIT", e))?;
        self.open = None;
        self.applied.insert(origin.to_string(), cp.gtid.clone());
        let d = self.direction(origin);
        d.observe_lag(ts_us);
        Self::report_position(&d, cp, &self.transport_position);
        d.update(|st| {
            st.heartbeat_seq = Some(seq);
            if st.state != "paused" {
                st.state = "applying".into();
            }
        });
        // Clock skew (to − from) ≈ (lag from→to − lag to→from) / 2, from the lag the
        // origin measured last in the other direction.
        let back = lags
            .and_then(|l| serde_json::from_str::<BTreeMap<String, f64>>(&l).ok())
            .and_then(|m| m.get(&self.s.zone).copied());
        if let (Some(back), Some(here)) = (back, d.last_lag()) {
            d.metrics.clock_skew.set((here - back) / 2.0);
        }
        Ok(())
    }

    fn replicated(&self, r: &RowChange) -> bool {
        &*r.db != "drc" && self.s.databases.iter().any(|d| **d == *r.db)
    }

    /// A tombstone the origin's trigger wrote for a replicated table: it carries the
    /// origin's delete time, which the applier applies as the delete's version.
    fn tombstone_of_replicated(&self, r: &RowChange) -> bool {
        &*r.db == "drc"
            && &*r.table == "tombstones"
            && matches!(r.after.as_ref().and_then(|a| a.get("db")), Some(crate::model::Value::Text(d)) if self.s.databases.iter().any(|x| x == d))
    }

    async fn apply_tombstone(&mut self, origin: &str, tx: &Transaction, r: &RowChange) -> Result<(), Error> {
        use crate::model::Value as V;
        let img = r.after.as_ref().expect("tombstone row has an after image");
        let (Some(V::Text(db)), Some(V::Text(tbl)), Some(V::Text(pk)), Some(V::Decimal(v) | V::Text(v))) =
            (img.get("db"), img.get("tbl"), img.get("pk"), img.get("version"))
        else {
            return Err(definite(
                &self.s,
                format!("unexpected drc.tombstones row from zone {origin}: {:?}", img.values),
            ));
        };
        let t = self.table(db, tbl).await?;
        let parts: Vec<serde_json::Value> =
            serde_json::from_str(pk).map_err(|e| definite(&self.s, format!("tombstone key {pk:?}: {e}")))?;
        let key: Vec<MyValue> = parts
            .iter()
            .map(|p| match p {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(MyValue::Int)
                    .or_else(|| n.as_u64().map(MyValue::UInt))
                    .unwrap_or_else(|| MyValue::Double(n.as_f64().unwrap_or_default())),
                serde_json::Value::String(s) => MyValue::Bytes(s.as_bytes().to_vec()),
                other => MyValue::Bytes(other.to_string().into_bytes()),
            })
            .collect();
        if key.len() != t.pk.len() {
            return Err(definite(
                &self.s,
                format!("tombstone key {pk} does not match the key of `{db}`.`{tbl}`"),
            ));
        }
        let version = parse_decimal(v).ok_or_else(|| definite(&self.s, format!("tombstone version {v:?}")))?;
        self.delete_row(origin, tx, &t, &key, img, version).await
    }

    /// A transaction without replicated rows: its position is recorded with the next
    /// applied transaction (positions only move forward).
    fn note_position_only(&mut self, origin: &str, cp: &Checkpoint) {
        self.applied.insert(origin.to_string(), cp.gtid.clone());
    }

    /// Opens the target transaction for an origin transaction: the loop marker first,
    /// so this zone's reader recognises it as an applier transaction.
    async fn begin(&mut self, origin: &str) -> Result<(), Error> {
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| mysql_err(&self.s, "START TRANSACTION", e))?;
        self.open = Some(origin.to_string());
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`marker` (origin_zone, applier_zone, n) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = n + 1",
                (self.s.channel_key(origin), &self.s.zone),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "writing the loop marker", e))
    }

    /// `origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset` of
    /// the position written into `drc.applied`.
    fn position_params(&self, origin: &str, cp: &Checkpoint, transport: &TransportPosition) -> Vec<MyValue> {
        let gtid = cp
            .gtid
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("gtid serializes"));
        let (kt, kp, ko) = match transport {
            Some((t, p, o)) => (Some(t.clone()), Some(*p), Some(*o)),
            None => (None, None, None),
        };
        vec![
            self.s.channel_key(origin).into(),
            gtid.into(),
            cp.file.file.as_str().into(),
            cp.file.pos.into(),
            kt.into(),
            kp.into(),
            ko.into(),
        ]
    }

    /// Records `last` (the last of `txns` origin transactions) as the position of `origin`.
    async fn write_position(&mut self, origin: &str, last: &Pending, txns: u64) -> Result<(), Error> {
        let mut params = self.position_params(origin, &last.cp, &last.transport);
        params.extend([
            last.gtid.clone().into(),
            last.commit_ts_us.into(),
            txns.into(),
            txns.into(),
        ]);
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`applied` (origin_zone, gtid, file, pos, kafka_topic, kafka_partition, kafka_offset, last_gtid, commit_ts_us, applied_txns) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE gtid = VALUES(gtid), file = VALUES(file), pos = VALUES(pos), last_gtid = VALUES(last_gtid), \
                 commit_ts_us = VALUES(commit_ts_us), applied_txns = applied_txns + ?, \
                 kafka_topic = COALESCE(VALUES(kafka_topic), kafka_topic), kafka_partition = COALESCE(VALUES(kafka_partition), kafka_partition), \
                 kafka_offset = COALESCE(VALUES(kafka_offset), kafka_offset)",
                params,
            )
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.applied", e))
    }

    fn check_image(&self, t: &LocalTable, img: &RowImage) -> Result<(), Error> {
        let same = img.columns.len() == t.columns.len() && img.columns.iter().zip(&t.columns).all(|(a, b)| **a == **b);
        if !same {
            let theirs: Vec<&str> = img.columns.iter().map(|c| &**c).collect();
            return Err(definite(
                &self.s,
                format!(
                    "table `{}`.`{}` differs between zones: the origin row has columns {:?}, zone {} has {:?}; make the tables identical (nothing of this transaction was applied, the position did not move)",
                    t.db, t.tbl, theirs, self.s.zone, t.columns
                ),
            ));
        }
        Ok(())
    }

    fn key_values(&self, t: &LocalTable, img: &RowImage) -> Result<Vec<MyValue>, Error> {
        t.pk.iter()
            .map(|c| {
                img.get(c)
                    .ok_or_else(|| definite(&self.s, format!("row image lacks key column `{c}`")))
                    .and_then(|v| bind(v).map_err(|e| definite(&self.s, e)))
            })
            .collect()
    }

    async fn apply_row(&mut self, origin: &str, tx: &Transaction, r: &RowChange) -> Result<(), Error> {
        let t = self.table(&r.db, &r.tbl_name()).await?;
        for img in [&r.before, &r.after].into_iter().flatten() {
            self.check_image(&t, img)?;
        }
        let Some(vcol) = t.version.clone() else {
            return self.apply_unversioned(origin, tx, &t, r).await;
        };
        let settings = self.s.clone();
        let version = |img: &RowImage| version_in(&settings, &t, &vcol, img);
        match r.op {
            Op::Insert => {
                let after = r.after.as_ref().expect("insert has an after image");
                if !self.range_ok(origin, tx, &t, after).await? {
                    return Ok(());
                }
                let key = self.key_values(&t, after)?;
                self.write_row(origin, tx, &t, &key, after, version(after)?, None).await
            }
            Op::Update => {
                let (before, after) = (r.before.as_ref().expect("before"), r.after.as_ref().expect("after"));
                let (kb, ka) = (self.key_values(&t, before)?, self.key_values(&t, after)?);
                if kb != ka {
                    // a key change is a delete of the old key and a write of the new one
                    self.delete_row(origin, tx, &t, &kb, before, version(before)?).await?;
                    return self.write_row(origin, tx, &t, &ka, after, version(after)?, None).await;
                }
                self.write_row(origin, tx, &t, &ka, after, version(after)?, Some(version(before)?))
                    .await
            }
            Op::Delete => {
                let before = r.before.as_ref().expect("delete has a before image");
                let kb = self.key_values(&t, before)?;
                self.delete_row(origin, tx, &t, &kb, before, version(before)?).await
            }
        }
    }

    /// How many changes from the start of `changes` form one batch: consecutive
    /// inserts and key-preserving updates of one versioned table with an all-integer
    /// primary key, no other unique key and no foreign key, each key at most once,
    /// within the batch limits. 0 or 1: apply row by row.
    async fn batch_len(&mut self, changes: &[Change]) -> Result<usize, Error> {
        let Some(Change::Row(first)) = changes.first() else {
            return Ok(0);
        };
        let t = self.table(&first.db, &first.tbl_name()).await?;
        if !t.batchable {
            return Ok(0);
        }
        let mut keys = std::collections::HashSet::new();
        let mut budget = Budget::default();
        let mut n = 0;
        for c in changes {
            let Change::Row(r) = c else { break };
            if r.db != first.db || r.table != first.table {
                break;
            }
            let Some(key) = self.batch_key(&t, r) else { break };
            if !budget.admits(r.after.as_ref().expect("batchable rows have an after image")) || !keys.insert(key) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The integer key of `r` if it can go into a batch of its table `t`: an insert or a
    /// key-preserving update whose images match the local columns.
    fn batch_key(&self, t: &LocalTable, r: &RowChange) -> Option<Vec<i128>> {
        let after = r.after.as_ref()?;
        if self.check_image(t, after).is_err() {
            return None; // the row path reports it
        }
        let key = int_key(t, after)?;
        match (r.op, &r.before) {
            (Op::Insert, _) => Some(key),
            (Op::Update, Some(before))
                if self.check_image(t, before).is_ok() && int_key(t, before).as_ref() == Some(&key) =>
            {
                Some(key)
            }
            _ => None,
        }
    }

    /// True when every change of `tx` can wait for the group's batches: rows of other
    /// databases, or batchable rows of versioned tables (see `batch_key`).
    async fn deferrable(&mut self, tx: &Transaction) -> Result<bool, Error> {
        for c in &tx.changes {
            match c {
                Change::Row(r) if self.replicated(r) => {
                    let t = self.table(&r.db, &r.tbl_name()).await?;
                    if !t.batchable || self.batch_key(&t, r).is_none() {
                        return Ok(false);
                    }
                }
                Change::Row(r) if self.tombstone_of_replicated(r) => return Ok(false),
                Change::Row(_) => {}
                Change::Statement(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Applies the rows of the group's deferred transactions: per table, each key's
    /// changes in order as a chain, the chains in batches. A chain whose first change
    /// is clean (no conflict) and whose later changes each continue the one before is
    /// written as its last image; any other chain goes row by row. The tables are
    /// batchable (no foreign key, no other unique key, no trigger of their own), so
    /// only each key's order matters and the result is the result of applying the
    /// transactions one by one; the group commits as one.
    async fn apply_deferred(&mut self) -> Result<(), Error> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if g.deferred.is_empty() {
            return Ok(());
        }
        let txs = std::mem::take(&mut g.deferred);
        g.deferred_rows = 0;
        let origin = g.origin.clone();
        let mut tables: Vec<(&RowChange, Vec<(&Transaction, &RowChange)>)> = Vec::new();
        for tx in &txs {
            for c in &tx.changes {
                let Change::Row(r) = c else { continue };
                if !self.replicated(r) {
                    continue;
                }
                match tables.iter_mut().find(|(k, _)| k.db == r.db && k.table == r.table) {
                    Some((_, rows)) => rows.push((tx, r)),
                    None => tables.push((r, vec![(tx, r)])),
                }
            }
        }
        for (first, rows) in tables {
            let t = self.table(&first.db, &first.tbl_name()).await?;
            // each key's changes in order: a chain
            let mut index: HashMap<Vec<i128>, usize> = HashMap::new();
            let mut chains: Vec<Vec<(&Transaction, &RowChange)>> = Vec::new();
            for (tx, r) in rows {
                let key = self.batch_key(&t, r).expect("deferred rows are batchable");
                match index.get(&key) {
                    Some(&i) => chains[i].push((tx, r)),
                    None => {
                        index.insert(key, chains.len());
                        chains.push(vec![(tx, r)]);
                    }
                }
            }
            // batches of chains within the statement limits (one image per chain)
            let (mut from, mut budget) = (0, Budget::default());
            for i in 0..chains.len() {
                let (_, r) = chains[i].last().expect("a chain has a change");
                let after = r.after.as_ref().expect("batchable rows have an after image");
                if !budget.admits(after) {
                    self.apply_wave(&origin, &chains[from..i]).await?;
                    (from, budget) = (i, Budget::default());
                    budget.admits(after);
                }
            }
            self.apply_wave(&origin, &chains[from..]).await?;
        }
        Ok(())
    }

    async fn apply_wave(&mut self, origin: &str, chains: &[Vec<(&Transaction, &RowChange)>]) -> Result<(), Error> {
        match chains {
            [] => Ok(()),
            [one] if one.len() == 1 => self.apply_row(origin, one[0].0, one[0].1).await,
            _ => {
                let chains: Vec<&[(&Transaction, &RowChange)]> = chains.iter().map(|c| c.as_slice()).collect();
                self.apply_batch(origin, &chains).await
            }
        }
    }

    /// Applies a batch found by [`Applier::batch_len`] with the same decisions as row by
    /// row: one locking read of all its rows and tombstones, then one multi-row INSERT
    /// for the absent keys and one multi-row upsert for the rows the origin changed as
    /// they are here. Anything else (a conflict, a tie, a tombstone, a key inserted
    /// here meanwhile) goes through the row path, which logs it. The keys are distinct
    /// and the table has no other unique key, so the order of the writes is free.
    async fn apply_batch(&mut self, origin: &str, chains: &[&[(&Transaction, &RowChange)]]) -> Result<(), Error> {
        struct Item<'a> {
            tx: &'a Transaction,
            key: Vec<i128>,
            img: &'a RowImage,
            v: i128,
            before: Option<i128>,
            /// The key's later changes in the group, and whether each continues the
            /// one before it (its before-image version is the previous after-image
            /// version, and its version is greater): then, if the first change is
            /// clean, all are, and the last image is the result.
            rest: &'a [(&'a Transaction, &'a RowChange)],
            chained: bool,
        }
        let Some((_, first)) = chains.first().and_then(|c| c.first()) else {
            return Ok(());
        };
        let t = self.table(&first.db, &first.tbl_name()).await?;
        let Some(vcol) = t.version.clone() else {
            return self.apply_batch_unversioned(origin, &t, chains).await;
        };
        let settings = self.s.clone();
        let version = |img: &RowImage| version_in(&settings, &t, &vcol, img);
        let mut items = Vec::with_capacity(chains.len());
        for chain in chains {
            let (tx, r) = chain[0];
            let after = r.after.as_ref().expect("batched rows have an after image");
            let (v, before) = (version(after)?, r.before.as_ref().map(version).transpose()?);
            let mut chained = true;
            let mut prev = v;
            for (_, next) in &chain[1..] {
                let nv = version(next.after.as_ref().expect("batched rows have an after image"))?;
                let nb = next.before.as_ref().map(version).transpose()?;
                chained &= next.op == Op::Update && nb == Some(prev) && nv > prev;
                prev = nv;
            }
            items.push(Item {
                tx,
                key: int_key(&t, after).expect("batched keys are integers"),
                img: after,
                v,
                before,
                rest: &chain[1..],
                chained,
            });
        }
        let mut in_range = Vec::with_capacity(items.len());
        for it in items {
            if it.before.is_some() || self.range_ok(origin, it.tx, &t, it.img).await? {
                in_range.push(it);
            } else {
                // the key's later changes meet the state the row path would leave
                for &(tx, r) in it.rest {
                    self.apply_row(origin, tx, r).await?;
                }
            }
        }
        let items = in_range;
        if items.is_empty() {
            return Ok(());
        }
        // Every key's row is locked first (an insert that meets a row here is a
        // conflict for the row path; a local delete of it waits for us), then the
        // tombstones are read: as the row path's single locking read does.
        let keys: Vec<&[i128]> = items.iter().map(|i| i.key.as_slice()).collect();
        let (local, tombs) = self.lock_keys(&t, &keys).await?;
        let (mut inserts, mut upserts, mut slow) = (Vec::new(), Vec::new(), Vec::new());
        for it in items {
            let lv = local.get(&it.key).copied();
            let clean = match (lv, it.before) {
                (None, None) => tombs.get(&it.key).is_none_or(|&x| it.v > x),
                (Some(l), Some(b)) => l == b && it.v > l && tombs.get(&it.key).is_none_or(|&x| it.v > x),
                _ => false,
            };
            match (clean && it.chained, lv) {
                (true, None) => inserts.push(it),
                (true, Some(_)) => upserts.push(it),
                (false, _) => slow.push(it),
            }
        }
        let non_key: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.pk.contains(c))
            .map(|c| ident(c))
            .collect();
        if non_key.is_empty() {
            slow.append(&mut upserts);
        }
        // a clean chain leaves its last image
        fn images<'a>(items: &[Item<'a>]) -> Vec<&'a RowImage> {
            items
                .iter()
                .map(|it| it.rest.last().and_then(|(_, r)| r.after.as_ref()).unwrap_or(it.img))
                .collect()
        }
        let changes = |items: &[Item]| items.iter().map(|i| 1 + i.rest.len() as u64).sum::<u64>();
        // a key inserted here after the locking read: row by row decides and logs
        if !inserts.is_empty() && !self.write_rows(&t, &images(&inserts), &[], changes(&inserts)).await? {
            slow.append(&mut inserts);
        }
        // a unique key added since the table was read: row by row quarantines
        if !upserts.is_empty()
            && !self
                .write_rows(&t, &images(&upserts), &non_key, changes(&upserts))
                .await?
        {
            slow.append(&mut upserts);
        }
        for it in slow {
            let key = self.key_values(&t, it.img)?;
            self.write_row(origin, it.tx, &t, &key, it.img, it.v, it.before).await?;
            for &(tx, r) in it.rest {
                self.apply_row(origin, tx, r).await?;
            }
        }
        Ok(())
    }

    /// A batch of a table listed in `[replication] unversioned`: the origin wins, so
    /// each key's last image is upserted, with no read (the row path's upsert, in one
    /// statement); inserts outside the origin's ID range are caught as row by row.
    async fn apply_batch_unversioned(
        &mut self,
        origin: &str,
        t: &LocalTable,
        chains: &[&[(&Transaction, &RowChange)]],
    ) -> Result<(), Error> {
        let mut images: Vec<&RowImage> = Vec::with_capacity(chains.len());
        let mut n = 0u64;
        for chain in chains {
            let (tx, r) = chain[0];
            let after = r.after.as_ref().expect("batched rows have an after image");
            if r.op == Op::Insert && !self.range_ok(origin, tx, t, after).await? {
                for &(tx, r) in &chain[1..] {
                    self.apply_row(origin, tx, r).await?;
                }
                continue;
            }
            let (_, last) = chain[chain.len() - 1];
            images.push(last.after.as_ref().expect("batched rows have an after image"));
            n += chain.len() as u64;
        }
        if images.is_empty() {
            return Ok(());
        }
        let every: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        if !self.write_rows(t, &images, &every, n).await? {
            // a unique key added since the table was read: the row path reports it
            for chain in chains {
                for &(tx, r) in chain.iter() {
                    self.apply_row(origin, tx, r).await?;
                }
            }
        }
        Ok(())
    }

    /// One multi-row `INSERT` of `images` into `t`, or with `update` columns an
    /// upsert (`ON DUPLICATE KEY UPDATE c = VALUES(c)`), counting `changes` applied
    /// rows. `Ok(false)` when it met a duplicate key (1062): the statement did
    /// nothing and its rows are for the row path.
    async fn write_rows(
        &mut self,
        t: &LocalTable,
        images: &[&RowImage],
        update: &[String],
        changes: u64,
    ) -> Result<bool, Error> {
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let row_marks = format!("({})", vec!["?"; cols.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            t.qualified(),
            cols.join(", "),
            vec![row_marks.as_str(); images.len()].join(", ")
        );
        if !update.is_empty() {
            let set: Vec<String> = update.iter().map(|c| format!("{c} = VALUES({c})")).collect();
            sql += &format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "));
        }
        let mut p = Vec::with_capacity(images.len() * cols.len());
        for img in images {
            for v in &img.values {
                p.push(bind(v).map_err(|e| definite(&self.s, e))?);
            }
        }
        match self.conn.exec_drop(sql, p).await {
            Ok(()) => {
                self.stats.rows += changes;
                self.uncommitted.batched_rows += changes;
                Ok(true)
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => Ok(false),
            Err(e) => Err(mysql_err(
                &self.s,
                &format!("writing rows of `{}`.`{}`", t.db, t.tbl),
                e,
            )),
        }
    }

    /// Locks the local rows of `keys` (integer primary keys), then their tombstones;
    /// returns their versions by key.
    async fn lock_keys(&mut self, t: &LocalTable, keys: &[&[i128]]) -> Result<(KeyVersions, KeyVersions), Error> {
        let local = self.lock_rows(t, keys).await?;
        let tombs = self.lock_tombstones(t, keys).await?;
        Ok((local, tombs))
    }

    async fn lock_rows(&mut self, t: &LocalTable, keys: &[&[i128]]) -> Result<KeyVersions, Error> {
        let vcol = ident(t.version.as_ref().expect("version"));
        let pk_cols: Vec<String> = t.pk.iter().map(|c| ident(c)).collect();
        let filter = if t.pk.len() == 1 {
            format!("{} IN ({})", pk_cols[0], vec!["?"; keys.len()].join(", "))
        } else {
            let one = format!("({})", t.pk_where());
            vec![one.as_str(); keys.len()].join(" OR ")
        };
        let key_params: Vec<MyValue> = keys.iter().flat_map(|k| k.iter().map(|&x| int_param(x))).collect();
        let sql = format!(
            "SELECT {}, CAST({vcol} AS DECIMAL(30,6)) FROM {} WHERE {filter} FOR UPDATE",
            pk_cols.join(", "),
            t.qualified()
        );
        let m = |e| mysql_err(&self.s, &format!("locking rows of `{}`.`{}`", t.db, t.tbl), e);
        let rows: Vec<mysql_async::Row> = self.conn.exec(sql, key_params).await.map_err(m)?;
        let mut local = KeyVersions::with_capacity(rows.len());
        for row in rows {
            let vals = row.unwrap();
            let key: Option<Vec<i128>> = vals[..t.pk.len()].iter().map(int_of).collect();
            let v = match &vals[t.pk.len()] {
                MyValue::Bytes(b) => std::str::from_utf8(b).ok().and_then(parse_decimal),
                _ => None,
            };
            if let (Some(key), Some(v)) = (key, v) {
                local.insert(key, v);
            }
        }
        Ok(local)
    }

    async fn lock_tombstones(&mut self, t: &LocalTable, keys: &[&[i128]]) -> Result<KeyVersions, Error> {
        // Most tables have no tombstone at all (no deletes yet): one probe then saves
        // looking up every key. Called after the keys' rows are locked: a delete of
        // one of them (which writes its tombstone) has committed by then, so the
        // probe sees what the per-key locking lookup would.
        let any: Option<u8> = self
            .conn
            .exec_first(
                "SELECT 1 FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? LIMIT 1",
                (t.db.as_str(), t.tbl.as_str()),
            )
            .await
            .map_err(|e| mysql_err(&self.s, "reading tombstones", e))?;
        if any.is_none() {
            return Ok(KeyVersions::new());
        }
        let key_params: Vec<MyValue> = keys.iter().flat_map(|k| k.iter().map(|&x| int_param(x))).collect();
        let sql = format!(
            "SELECT pk, CAST(version AS CHAR) FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? AND ({}) FOR UPDATE",
            // `=` as in the row path (MySQL does not support JSON values in IN())
            vec![format!("pk = {}", t.pk_json_params()); keys.len()].join(" OR ")
        );
        let mut p: Vec<MyValue> = vec![t.db.as_str().into(), t.tbl.as_str().into()];
        p.extend(key_params);
        let found: Vec<(String, String)> = self
            .conn
            .exec(sql, p)
            .await
            .map_err(|e| mysql_err(&self.s, "locking tombstones", e))?;
        let mut tombs = KeyVersions::new();
        for (pk, v) in found {
            let key: Option<Vec<i128>> = serde_json::from_str::<Vec<serde_json::Value>>(&pk)
                .ok()
                .and_then(|parts| {
                    parts
                        .iter()
                        .map(|p| p.as_i64().map(i128::from).or_else(|| p.as_u64().map(i128::from)))
                        .collect()
                });
            if let (Some(key), Some(v)) = (key, parse_decimal(&v)) {
                tombs.insert(key, v);
            }
        }
        Ok(tombs)
    }

    /// A table listed in `[replication] unversioned`: no version, so no conflict
    /// resolution; the origin's change is written as it is (upsert / delete).
    async fn apply_unversioned(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        r: &RowChange,
    ) -> Result<(), Error> {
        if let (Op::Update, Some(b), Some(a)) = (r.op, &r.before, &r.after) {
            let (kb, ka) = (self.key_values(t, b)?, self.key_values(t, a)?);
            if kb != ka {
                self.exec_plain(format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()), kb, t)
                    .await?;
            }
        }
        match (r.op, &r.after, &r.before) {
            (Op::Insert | Op::Update, Some(after), _) => {
                if r.op == Op::Insert && !self.range_ok(origin, tx, t, after).await? {
                    return Ok(());
                }
                let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
                let upd: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
                    t.qualified(),
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", "),
                    upd.join(", ")
                );
                let vals: Vec<MyValue> = after
                    .values
                    .iter()
                    .map(bind)
                    .collect::<Result<_, _>>()
                    .map_err(|e| definite(&self.s, e))?;
                self.exec_plain(sql, vals, t).await
            }
            (Op::Delete, _, Some(before)) => {
                let key = self.key_values(t, before)?;
                self.exec_plain(format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()), key, t)
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn exec_plain(&mut self, sql: String, params: Vec<MyValue>, t: &LocalTable) -> Result<(), Error> {
        self.conn
            .exec_drop(sql, params)
            .await
            .map_err(|e| mysql_err(&self.s, &format!("writing a row of `{}`.`{}`", t.db, t.tbl), e))?;
        self.stats.rows += 1;
        Ok(())
    }

    /// Locks the local row and the key's tombstone; returns their versions.
    async fn lock_key(&mut self, t: &LocalTable, key: &[MyValue]) -> Result<(Option<i128>, Option<i128>), Error> {
        let vcol = ident(t.version.as_ref().expect("version"));
        let on: Vec<String> = t.pk.iter().map(|c| format!("t.{} = ?", ident(c))).collect();
        let sql = format!(
            "SELECT CAST(t.{vcol} AS DECIMAL(30,6)), CAST(x.version AS CHAR) FROM (SELECT 1 AS one) AS d \
             LEFT JOIN {tbl} AS t ON {on} \
             LEFT JOIN `drc`.`tombstones` AS x ON x.db = ? AND x.tbl = ? AND x.pk = {pk} FOR UPDATE",
            tbl = t.qualified(),
            on = on.join(" AND "),
            pk = t.pk_json_params(),
        );
        let mut params: Vec<MyValue> = key.to_vec();
        params.push(MyValue::from(t.db.as_str()));
        params.push(MyValue::from(t.tbl.as_str()));
        params.extend(key.iter().cloned());
        let row: Option<(Option<String>, Option<String>)> = self
            .conn
            .exec_first(sql, params)
            .await
            .map_err(|e| mysql_err(&self.s, &format!("locking a row of `{}`.`{}`", t.db, t.tbl), e))?;
        let (lv, tv) = row.unwrap_or((None, None));
        Ok((
            lv.as_deref().and_then(parse_decimal),
            tv.as_deref().and_then(parse_decimal),
        ))
    }

    /// `JSON_OBJECT` of the local row: the canonical content for ties and the log.
    async fn local_json(&mut self, t: &LocalTable, key: &[MyValue]) -> Result<Option<String>, Error> {
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            t.json_object(),
            t.qualified(),
            t.pk_where()
        );
        self.conn
            .exec_first(sql, key.to_vec())
            .await
            .map_err(|e| mysql_err(&self.s, "reading a local row", e))
    }

    /// The canonical content of an incoming row, computed by the server exactly as for
    /// a stored row: the row is written to a temporary copy of the table and read back.
    async fn incoming_json(
        &mut self,
        t: &LocalTable,
        img: &RowImage,
        key: &[MyValue],
    ) -> Result<Option<String>, Error> {
        // in the drc schema: the applier's session has no default database
        let tmp = format!(
            "`drc`.`drc_tie_{:08x}`",
            crc32fast::hash(format!("{}.{}", t.db, t.tbl).as_bytes())
        );
        let m = |e| mysql_err(&self.s, "computing a tie-break", e);
        self.conn
            .query_drop(format!(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {tmp} LIKE {}",
                t.qualified()
            ))
            .await
            .map_err(m)?;
        self.conn
            .query_drop(format!("DELETE FROM {tmp}"))
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))?;
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let vals: Vec<MyValue> = img
            .values
            .iter()
            .map(bind)
            .collect::<Result<_, _>>()
            .map_err(|e| definite(&self.s, e))?;
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO {tmp} ({}) VALUES ({})",
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                ),
                vals,
            )
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))?;
        let sql = format!("SELECT {} FROM {tmp} WHERE {}", t.json_object(), t.pk_where());
        self.conn
            .exec_first(sql, key.to_vec())
            .await
            .map_err(|e| mysql_err(&self.s, "computing a tie-break", e))
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_row(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        key: &[MyValue],
        img: &RowImage,
        v: i128,
        before_version: Option<i128>,
    ) -> Result<(), Error> {
        let (lv, tomb) = self.lock_key(t, key).await?;
        let subj = Subject {
            origin,
            tx,
            t,
            key,
            row: img,
        };
        let (mut lc, mut ic) = (String::new(), String::new());
        if lv == Some(v) {
            lc = self.local_json(t, key).await?.unwrap_or_default();
            ic = self.incoming_json(t, img, key).await?.unwrap_or_default();
        }
        let local = Local {
            row: lv.map(|x| (x, lc)),
            tombstone: tomb,
        };
        let action = decide(&local, &Incoming::Row(v, ic));
        let vals: Vec<MyValue> = img
            .values
            .iter()
            .map(bind)
            .collect::<Result<_, _>>()
            .map_err(|e| definite(&self.s, e))?;
        // A concurrent change: the local row was not the one the origin changed.
        let concurrent = match (lv, before_version) {
            (Some(l), Some(b)) => l != b,
            (Some(_), None) => true, // an insert met an existing row
            (None, Some(_)) => true, // an update met a deleted row
            (None, None) => false,
        };
        // the local row a concurrent write overwrites, for the conflict log
        let overwritten = match (&action, concurrent, lv) {
            (Action::Insert | Action::Overwrite, true, Some(_)) => Some(self.local_json(t, key).await?),
            (Action::Insert | Action::Overwrite, true, None) => Some(None),
            _ => None,
        };
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let result = match &action {
            Action::Insert => {
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.qualified(),
                    cols.join(", "),
                    vec!["?"; cols.len()].join(", ")
                );
                self.conn.exec_drop(sql, vals).await
            }
            Action::Overwrite => {
                let set: Vec<String> = cols.iter().map(|c| format!("{c} = ?")).collect();
                let sql = format!("UPDATE {} SET {} WHERE {}", t.qualified(), set.join(", "), t.pk_where());
                let mut p = vals;
                p.extend(key.iter().cloned());
                self.conn.exec_drop(sql, p).await
            }
            Action::Keep(Some(c)) => {
                self.log_conflict(&subj, (Some(v), lv.or(tomb)), c.as_str(), "kept_local", None, None)
                    .await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        match result {
            Ok(()) => {
                self.stats.rows += 1;
                if concurrent {
                    let kind = if lv.is_some() {
                        "concurrent_update"
                    } else {
                        "resurrected_after_delete"
                    };
                    self.log_conflict(
                        &subj,
                        (Some(v), lv.or(tomb)),
                        kind,
                        "applied_incoming",
                        None,
                        overwritten,
                    )
                    .await?;
                }
                Ok(())
            }
            // A secondary unique key clashes with another local row: only this
            // statement failed; the row is quarantined, the transaction goes on.
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
                self.log_conflict(
                    &subj,
                    (Some(v), lv),
                    "unique_key",
                    "quarantined",
                    Some(e.message.clone()),
                    None,
                )
                .await
            }
            Err(e) => Err(mysql_err(
                &self.s,
                &format!("writing a row of `{}`.`{}`", t.db, t.tbl),
                e,
            )),
        }
    }

    async fn delete_row(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        key: &[MyValue],
        before: &RowImage,
        b: i128,
    ) -> Result<(), Error> {
        let (lv, tomb) = self.lock_key(t, key).await?;
        let subj = Subject {
            origin,
            tx,
            t,
            key,
            row: before,
        };
        let local = Local {
            row: lv.map(|x| (x, String::new())),
            tombstone: tomb,
        };
        let action = decide(&local, &Incoming::Delete(b));
        // the local row a concurrent delete removes, for the conflict log
        let removed = if matches!(action, Action::Delete) && lv != Some(b) {
            Some(self.local_json(t, key).await?)
        } else {
            None
        };
        if matches!(action, Action::Delete) {
            // the tombstone trigger records the origin's delete version, not our clock
            self.conn
                .exec_drop(
                    "SET @drc_delete_version = CAST(? AS DECIMAL(30,6))",
                    (format_decimal(b),),
                )
                .await
                .map_err(|e| mysql_err(&self.s, "setting @drc_delete_version", e))?;
            let r = self
                .conn
                .exec_drop(
                    format!("DELETE FROM {} WHERE {}", t.qualified(), t.pk_where()),
                    key.to_vec(),
                )
                .await;
            self.conn
                .query_drop("SET @drc_delete_version = NULL")
                .await
                .map_err(|e| mysql_err(&self.s, "resetting @drc_delete_version", e))?;
            r.map_err(|e| mysql_err(&self.s, &format!("deleting a row of `{}`.`{}`", t.db, t.tbl), e))?;
            self.stats.rows += 1;
            if lv != Some(b) {
                self.log_conflict(
                    &subj,
                    (Some(b), lv),
                    "concurrent_delete",
                    "applied_incoming",
                    None,
                    removed,
                )
                .await?;
            }
        }
        if matches!(action, Action::Delete | Action::Tombstone) {
            let sql = format!(
                "INSERT INTO `drc`.`tombstones` (db, tbl, pk, version) VALUES (?, ?, {}, CAST(? AS DECIMAL(30,6))) ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                t.pk_json_params()
            );
            let mut p: Vec<MyValue> = vec![MyValue::from(t.db.as_str()), MyValue::from(t.tbl.as_str())];
            p.extend(key.iter().cloned());
            p.push(MyValue::from(format_decimal(b)));
            self.conn
                .exec_drop(sql, p)
                .await
                .map_err(|e| mysql_err(&self.s, "recording a tombstone", e))?;
        }
        if let Action::Tombstone | Action::Keep(Some(_)) = action {
            if lv.is_some() {
                self.log_conflict(
                    &subj,
                    (Some(b), lv),
                    Conflict::RowNewerThanDelete.as_str(),
                    "kept_local",
                    None,
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn range_ok(
        &mut self,
        origin: &str,
        tx: &Transaction,
        t: &LocalTable,
        after: &RowImage,
    ) -> Result<bool, Error> {
        if !t.integer_pk() {
            return Ok(true);
        }
        let Some(ranges) = self.s.id_ranges.get(origin) else {
            return Ok(true);
        };
        let id: Option<i128> = match after.get(&t.pk[0]) {
            Some(crate::model::Value::Int(i)) => Some(*i as i128),
            Some(crate::model::Value::UInt(u)) => Some(*u as i128),
            _ => None,
        };
        let Some(id) = id else { return Ok(true) };
        if ranges.contains(id) {
            return Ok(true);
        }
        let key = self.key_values(t, after)?;
        let reject = self.s.range_policy == RangePolicy::Reject;
        tracing::warn!(origin, table = %format!("{}.{}", t.db, t.tbl), key = %id, "misrouted write: zone {origin} wrote a key outside its ID range");
        let detail = format!("key {id} is outside the ID range of zone {origin}");
        self.log_conflict(
            &Subject {
                origin,
                tx,
                t,
                key: &key,
                row: after,
            },
            (None, None),
            "id_out_of_range",
            if reject { "quarantined" } else { "applied_incoming" },
            Some(detail),
            None,
        )
        .await?;
        if reject {
            self.stats.quarantined += 1;
        }
        Ok(!reject)
    }

    #[allow(clippy::too_many_arguments)]
    async fn log_conflict(
        &mut self,
        subject: &Subject<'_>,
        (incoming_version, local_version): (Option<i128>, Option<i128>),
        kind: &str,
        resolution: &str,
        detail: Option<String>,
        fetched: Option<Option<String>>,
    ) -> Result<(), Error> {
        let Subject {
            origin,
            tx,
            t,
            key,
            row: incoming,
        } = *subject;
        self.stats.conflicts += 1;
        self.uncommitted.conflicts.push(kind.to_string());
        if kind == "id_out_of_range" {
            self.uncommitted.id_range_violations += 1;
        }
        // the local row as it was before an applied write (fetched by the caller), or
        // as it is (kept)
        let local_row = match fetched {
            Some(row) => row,
            None if local_version.is_some() => self.local_json(t, key).await?,
            None => None,
        };
        let sql = format!(
            "INSERT INTO `drc`.`conflicts` (kind, resolution, db, tbl, pk, origin_zone, local_zone, origin_gtid, incoming_version, local_version, incoming_row, local_row, detail) \
             VALUES (?, ?, ?, ?, {}, ?, ?, ?, CAST(? AS DECIMAL(30,6)), CAST(? AS DECIMAL(30,6)), ?, ?, ?)",
            t.pk_json_params()
        );
        let mut p: Vec<MyValue> = vec![
            kind.into(),
            resolution.into(),
            t.db.as_str().into(),
            t.tbl.as_str().into(),
        ];
        p.extend(key.iter().cloned());
        p.push(origin.into());
        p.push(self.s.zone.as_str().into());
        p.push(tx.gtid.as_ref().map(|g| g.to_string()).into());
        p.push(incoming_version.map(format_decimal).into());
        p.push(local_version.map(format_decimal).into());
        p.push(serde_json::to_string(incoming).expect("row serializes").into());
        p.push(local_row.into());
        p.push(detail.into());
        tracing::info!(kind, resolution, table = %format!("{}.{}", t.db, t.tbl), origin, "conflict");
        self.conn
            .exec_drop(sql, p)
            .await
            .map_err(|e| mysql_err(&self.s, "writing drc.conflicts", e))
    }
}

/// The incoming row a conflict-log entry is about.
#[derive(Clone, Copy)]
struct Subject<'a> {
    origin: &'a str,
    tx: &'a Transaction,
    t: &'a LocalTable,
    key: &'a [MyValue],
    row: &'a RowImage,
}

/// The version of `img` in column `vcol` of `t`, as a comparable integer.
fn version_in(s: &ApplierSettings, t: &LocalTable, vcol: &str, img: &RowImage) -> Result<i128, Error> {
    img.get(vcol).and_then(version_of).ok_or_else(|| {
        definite(
            s,
            format!(
                "`{}`.`{}`: version column `{vcol}` is NULL or not a DATETIME/TIMESTAMP/integer",
                t.db, t.tbl
            ),
        )
    })
}

/// What one multi-row statement may still take: rows, bound values, bytes.
#[derive(Default)]
struct Budget {
    rows: usize,
    params: usize,
    bytes: usize,
}

impl Budget {
    /// Takes `img` into the statement if it fits (a first row always does).
    fn admits(&mut self, img: &RowImage) -> bool {
        let (p, b) = (img.values.len(), img.values.iter().map(approx_size).sum::<usize>());
        let fits = self.rows == 0
            || (self.rows < BATCH_MAX_ROWS && self.params + p <= BATCH_MAX_PARAMS && self.bytes + b <= BATCH_MAX_BYTES);
        if fits {
            (self.rows, self.params, self.bytes) = (self.rows + 1, self.params + p, self.bytes + b);
        }
        fits
    }
}

/// Versions by integer primary key.
type KeyVersions = HashMap<Vec<i128>, i128>;

/// The primary key of `img` as integers, if every key column holds one.
fn int_key(t: &LocalTable, img: &RowImage) -> Option<Vec<i128>> {
    use crate::model::Value as V;
    t.pk.iter()
        .map(|c| match img.get(c)? {
            V::Int(i) => Some(*i as i128),
            V::UInt(u) => Some(*u as i128),
            _ => None,
        })
        .collect()
}

fn int_param(x: i128) -> MyValue {
    match i64::try_from(x) {
        Ok(i) => MyValue::Int(i),
        Err(_) => MyValue::UInt(x as u64),
    }
}

fn int_of(v: &MyValue) -> Option<i128> {
    match v {
        MyValue::Int(i) => Some(*i as i128),
        MyValue::UInt(u) => Some(*u as i128),
        MyValue::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// About how many bytes a value takes in a statement.
fn approx_size(v: &crate::model::Value) -> usize {
    use crate::model::Value as V;
    match v {
        V::Decimal(t) | V::Date(t) | V::DateTime(t) | V::Time(t) | V::Text(t) | V::Json(t) => t.len() + 4,
        V::Bytes(b) => b.len() + 4,
        V::Enum { label: Some(l), .. } | V::Set { labels: Some(l), .. } => l.len() + 4,
        V::Timestamp { .. } => 30,
        _ => 9,
    }
}

/// True for a transaction an applier wrote: it touches `drc`.`marker`.
pub fn is_applier_transaction(tx: &Transaction) -> bool {
    tx.changes
        .iter()
        .any(|c| matches!(c, Change::Row(r) if &*r.db == "drc" && &*r.table == "marker"))
}

/// Units of 10^-6 back to decimal text.
pub fn format_decimal(v: i128) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

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

impl RowChange {
    fn tbl_name(&self) -> String {
        self.table.to_string()
    }
}
