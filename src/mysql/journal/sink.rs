//! The journal as a pipeline [`Sink`] of this zone's own binlog: tombstones of local
//! deletes, raises of local writes that went back in version, and undos of applier
//! inserts a local delete beats (module doc of [`super`]). Its position,
//! `drc.journal`, commits with what it covers. The writes themselves are in
//! `repair.rs` (a child module: it shares the sink's state).
//!
//! (Over 600 lines on purpose: one transaction state machine — grouping, persistence,
//! renames, deferred deletes — whose parts share its state; the writes are already
//! apart in `repair.rs`.)

use crate::error::Error;
use crate::model::{Change, Op, RowChange, RowImage, Transaction, Value};
use crate::mysql::applier::apply::ApplierSettings;
use crate::mysql::applier::sql::version_of;
use crate::mysql::applier::table::LocalTable;
use crate::mysql::applier::version::delete_version;
use crate::mysql::is_applier_transaction;
use crate::pipeline::Sink;
use crate::position::{Checkpoint, FilePos};
use crate::telemetry::metrics as m;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A key of a table: database, table, key values (as text).
pub(super) type TableKey = (String, String, Vec<String>);

/// While only other writers' transactions (heartbeats, other databases) went by, the
/// position is written at most this often (each write is a transaction of its own).
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// A journal transaction with work in it commits this long after it opened (or when
/// the journal is idle and this long has passed): one journal transaction for many
/// local ones while the zone is busy. Its row locks (raised rows) are held as long.
const GROUP_FOR: Duration = Duration::from_millis(50);

/// What the journal makes of the transaction being read.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// The application's (or another writer's): journalled.
    Local,
    /// An applier's, with the journal position it began at (`None`: unknown).
    Applier { watermark: Option<FilePos>, origin: String },
    /// The journal's own: skipped.
    Own,
}

#[path = "misrouted.rs"]
mod misrouted;
#[path = "repair.rs"]
mod repair;

pub struct JournalSink {
    conn: Conn,
    s: Arc<ApplierSettings>,
    /// `drc.journal` key: the zone, or `zone/channel`.
    channel: String,
    tables: HashMap<(String, String), Option<Arc<LocalTable>>>,
    /// Global-zone tables written here by mistake (`misrouted.rs`): their metadata,
    /// and the counts for the log.
    global_tables: HashMap<(String, String), Option<Arc<LocalTable>>>,
    misrouted: crate::telemetry::summary::CountSummary<(String, String, &'static str)>,
    /// The home of each `global_tables` entry over this zone's binlog.
    homes: Vec<super::HomeSince>,
    /// Shared with the reader's [`JournalFilter`]: set while keys are pending (the
    /// reader then decodes every row of applier transactions).
    pending_flag: Arc<std::sync::atomic::AtomicBool>,
    /// Start of the latest local transaction with a delete, per table.
    last_delete: HashMap<(String, String), FilePos>,
    /// The position the journal resumed from: an applier transaction with an older
    /// (or unknown) watermark may have missed a delete journalled before the restart,
    /// so its inserts are checked in every table.
    floor: FilePos,
    /// A journal transaction is open (since `opened`).
    open: bool,
    opened: Instant,
    /// Kind of the transaction being read (set at its first fragment).
    kind: Option<Kind>,
    /// Position after the last complete transaction read, not yet written.
    checkpoint: Option<Checkpoint>,
    /// Its commit time.
    commit_ts_us: i64,
    /// The checkpoint moved past a transaction that is not the journal's own.
    dirty: bool,
    persisted: Instant,
    /// Actions of the open journal transaction (tombstone, raised, undone).
    counts: [u64; 3],
    zone_label: String,
    /// When a table's DATETIME version offset was last reported.
    offset_checked: HashMap<(String, String), Instant>,
    /// Keys an applier wrote while a tombstone (the value) beats the row: resurrected
    /// in the window, not yet undone because the row moved on. The next writes of the
    /// key decide: an applier's not above the tombstone is undone, a local write is
    /// raised above it.
    resurrected: HashMap<TableKey, i128>,
    /// Keys whose local write went back in version but had been overwritten before the
    /// journal could raise it: the next write of the key must end above the value.
    owed: HashMap<TableKey, i128>,
    /// Published after each commit: read and committed up to here.
    progress: watch::Sender<Option<FilePos>>,
}

impl JournalSink {
    /// `conn`: a session made by [`crate::mysql::applier::apply::session_opts`];
    /// `floor`: the position the journal resumes from; `progress`: where it publishes
    /// the position up to which everything it read is committed.
    pub fn new(
        conn: Conn,
        s: Arc<ApplierSettings>,
        floor: FilePos,
        progress: watch::Sender<Option<FilePos>>,
    ) -> JournalSink {
        JournalSink {
            conn,
            channel: s.channel_key(&s.zone),
            zone_label: s.zone.clone(),
            offset_checked: HashMap::new(),
            s,
            tables: HashMap::new(),
            global_tables: HashMap::new(),
            misrouted: Default::default(),
            homes: Vec::new(),
            pending_flag: Default::default(),
            last_delete: HashMap::new(),
            floor,
            open: false,
            opened: Instant::now(),
            kind: None,
            checkpoint: None,
            commit_ts_us: 0,
            dirty: false,
            persisted: Instant::now(),
            counts: [0; 3],
            resurrected: HashMap::new(),
            owed: HashMap::new(),
            progress,
        }
    }

    /// The flag the reader's filter reads (`reader::assembler::JournalFilter`).
    pub fn pending_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.pending_flag.clone()
    }

    fn publish_pending(&self) {
        self.pending_flag.store(
            !self.owed.is_empty() || !self.resurrected.is_empty(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// The homes of the global-zone tables ([`super::global_homes`]).
    pub fn with_global_homes(mut self, homes: Vec<super::HomeSince>) -> Self {
        self.homes = homes;
        self
    }

    /// A definite error about this zone's server (a row the journal cannot write).
    fn bad(&self, what: String) -> Error {
        Error::Server {
            addr: self.s.addr.clone(),
            what,
        }
    }

    fn err(&self, context: &str, e: mysql_async::Error) -> Error {
        crate::mysql::error::classify(&self.s.addr, context, e)
    }

    async fn table(&mut self, db: &str, tbl: &str) -> Result<Option<Arc<LocalTable>>, Error> {
        let k = (db.to_string(), tbl.to_string());
        if let Some(t) = self.tables.get(&k) {
            return Ok(t.clone());
        }
        let t = LocalTable::load(&mut self.conn, db, tbl, &self.s.version_column)
            .await
            .map_err(|e| self.err("reading table metadata", e))?
            .filter(|t| t.version.is_some() && !t.pk.is_empty())
            .map(Arc::new);
        self.tables.insert(k, t.clone());
        Ok(t)
    }

    async fn begin(&mut self) -> Result<(), Error> {
        if self.open {
            return Ok(());
        }
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| self.err("START TRANSACTION", e))?;
        // first: the row that makes this a journal transaction (skipped by the journal)
        self.conn
            .exec_drop(
                "INSERT INTO `drc`.`journal` (channel, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1",
                (self.channel.as_str(),),
            )
            .await
            .map_err(|e| self.err("writing drc.journal", e))?;
        self.open = true;
        self.opened = Instant::now();
        Ok(())
    }

    fn replicated(&self, r: &RowChange) -> bool {
        self.s.replicates(&r.db, &r.table)
    }

    /// What the transaction at fragment 0 is.
    fn classify(tx: &Transaction) -> Kind {
        if super::is_journal_transaction(tx) {
            return Kind::Own;
        }
        if !is_applier_transaction(tx) {
            return Kind::Local;
        }
        let marker = tx.changes.iter().find_map(|c| match c {
            Change::Row(r) if &*r.db == "drc" && &*r.table == "marker" => r.after.as_ref(),
            _ => None,
        });
        let text = |img: &RowImage, c: &str| match img.get(c) {
            Some(Value::Text(s)) => Some(s.clone()),
            Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let watermark = marker.and_then(crate::mysql::marker_watermark);
        let origin = marker.and_then(|img| text(img, "origin_zone")).unwrap_or_default();
        Kind::Applier { watermark, origin }
    }

    /// Records the renames of replicated tables a statement of this zone made, and the
    /// columns it dropped (or added back).
    async fn journal_statement(&mut self, db: &str, sql: &str, ts: u32) -> Result<(), Error> {
        self.journal_columns(db, sql).await?;
        self.journal_truncates(db, sql, ts).await?;
        let renames = match crate::mysql::ddl::renames(db, sql) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(sql, error = %e, "cannot parse a statement of this zone: any rename in it is not recorded");
                return Ok(());
            }
        };
        for r in renames {
            if !self.s.databases.contains(&r.db) {
                continue;
            }
            self.begin().await?;
            self.conn
                .exec_drop(
                    "INSERT INTO `drc`.`renamed` (db, tbl, renamed_to) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE renamed_to = VALUES(renamed_to)",
                    (&r.db, &r.from, &r.to),
                )
                .await
                .map_err(|e| self.err("writing drc.renamed", e))?;
            // a table that gets a name back is no longer renamed
            self.conn
                .exec_drop("DELETE FROM `drc`.`renamed` WHERE db = ? AND tbl = ?", (&r.db, &r.to))
                .await
                .map_err(|e| self.err("writing drc.renamed", e))?;
            tracing::info!(db = %r.db, from = %r.from, to = %r.to, "table renamed in this zone: changes of the other zones for the old name go to the new one");
        }
        Ok(())
    }

    /// Records this zone's TRUNCATEs of replicated tables (`drc.truncated`): the
    /// version of the truncate is the end of its second, like a delete's on MariaDB.
    async fn journal_truncates(&mut self, db: &str, sql: &str, ts: u32) -> Result<(), Error> {
        let tables = match crate::mysql::ddl::truncated(db, sql) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(sql, error = %e, "cannot parse a statement of this zone: a TRUNCATE in it is not recorded");
                return Ok(());
            }
        };
        for (d, t) in tables {
            if !self.s.replicates(&d, &t) {
                continue;
            }
            let version = crate::mysql::applier::sql::version_of(&crate::model::Value::Timestamp {
                secs: ts as i64,
                micros: 999_999,
                fsp: 6,
            })
            .expect("a timestamp has a version");
            self.begin().await?;
            self.conn
                .exec_drop(
                    "INSERT INTO `drc`.`truncated` (db, tbl, version) VALUES (?, ?, CAST(? AS DECIMAL(30,6))) \
                     ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
                    (&d, &t, crate::mysql::applier::apply::format_decimal(version)),
                )
                .await
                .map_err(|e| self.err("writing drc.truncated", e))?;
            tracing::info!(db = %d, tbl = %t, "table truncated in this zone: older changes of the other zones are not applied to it");
        }
        Ok(())
    }

    async fn journal_columns(&mut self, db: &str, sql: &str) -> Result<(), Error> {
        use crate::mysql::ddl::ColumnChange;
        let changes = match crate::mysql::ddl::column_changes(db, sql) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(sql, error = %e, "cannot parse a statement of this zone: a column it dropped is not recorded (rows of other zones that still carry it wait)");
                return Ok(());
            }
        };
        for c in changes {
            let (d, t, col, dropped) = match &c {
                ColumnChange::Dropped { db, tbl, column } => (db, tbl, column, true),
                ColumnChange::Added { db, tbl, column, .. } => (db, tbl, column, false),
            };
            if !self.s.databases.contains(d) {
                continue;
            }
            self.begin().await?;
            let sql = if dropped {
                "INSERT INTO `drc`.`dropped_columns` (db, tbl, col) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE at = CURRENT_TIMESTAMP(6)"
            } else {
                "DELETE FROM `drc`.`dropped_columns` WHERE db = ? AND tbl = ? AND col = ?"
            };
            self.conn
                .exec_drop(sql, (d, t, col))
                .await
                .map_err(|e| self.err("writing drc.dropped_columns", e))?;
            if dropped {
                tracing::info!(db = %d, tbl = %t, column = %col, "column dropped in this zone: other zones' values of it are not applied here");
            }
        }
        Ok(())
    }

    /// A DATETIME version is the writing session's local time: a session in another
    /// time zone than UTC writes versions hours off, which last-writer-wins then
    /// compares with the other zones' (and with delete times) wrongly, and which
    /// `drc check` cannot see (it reads the global time zone). Every local write's
    /// version is compared with its event's time: an offset of 15 minutes or more
    /// sets the gauge and is logged (at most every 30 s per table).
    fn check_version_clock(&mut self, r: &RowChange, v: i128) {
        let Some(dt) = crate::mysql::applier::version::datetime_of_version(v) else {
            return;
        };
        let offset = dt.and_utc().timestamp() - r.ts as i64;
        if offset.abs() < 900 {
            return;
        }
        let key = (r.db.to_string(), r.table.to_string());
        if self
            .offset_checked
            .get(&key)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(30))
        {
            return;
        }
        self.offset_checked.insert(key, Instant::now());
        let table = format!("{}.{}", r.db, r.table);
        metrics::gauge!(m::VERSION_CLOCK_OFFSET, "zone" => self.zone_label.clone(), "table" => table.clone())
            .set(offset as f64);
        metrics::counter!(m::VERSION_CLOCK_OFFSET_REPORTS, "zone" => self.zone_label.clone(), "table" => table.clone())
            .increment(1);
        {
            tracing::warn!(table, offset_secs = offset, "a local write's DATETIME version is {offset} s off its commit time: a session writing in another time zone than UTC (SET time_zone) makes last-writer-wins compare wrong times; use UTC sessions or a TIMESTAMP version column (a backfill with explicit old versions shows here too)");
        }
    }

    /// A local transaction's rows.
    async fn journal_local(&mut self, tx: &Transaction) -> Result<(), Error> {
        // tombstones recorded for keys of this fragment, for the inserts after them
        let mut deleted: HashMap<TableKey, i128> = HashMap::new();
        // writes of global-zone tables outside their home, undone after the loop
        let mut misrouted: Vec<(RowChange, String)> = Vec::new();
        for (i, c) in tx.changes.iter().enumerate() {
            if let Change::Statement(st) = c {
                self.journal_statement(&st.db, &st.sql, st.ts).await?;
                continue;
            }
            let Change::Row(r) = c else { continue };
            if !self.replicated(r) {
                continue;
            }
            // a global-zone table has one writer: no tombstones or raises; a write of
            // it outside its home zone is undone
            if let Some(g) = self.s.global_index(&r.db, &r.table) {
                // the home when the write was made (a restart may re-read writes made
                // before the home moved)
                let at = FilePos::new(&*tx.file, tx.start_pos);
                let home = match self.homes.get(g) {
                    Some(h) => h.at(&at).map(str::to_string),
                    None => Some(self.s.global_tables[g].2.clone()),
                };
                if let Some(home) = home.filter(|h| *h != self.s.zone) {
                    misrouted.push((r.clone(), home));
                }
                continue;
            }
            let Some(t) = self.table(&r.db, &r.table).await? else {
                continue;
            };
            let vcol = t.version.clone().expect("journalled tables have a version");
            let clock = matches!(t.version_type.as_str(), "datetime" | "timestamp");
            let (before, after) = (r.before.as_ref(), r.after.as_ref());
            if t.version_type == "datetime" {
                if let Some(v) = after.and_then(|a| a.get(&vcol)).and_then(version_of) {
                    self.check_version_clock(r, v);
                }
            }
            let id = |img: &RowImage| (r.db.to_string(), r.table.to_string(), key_text(&t, img));
            let ver = |img: &RowImage| img.get(&vcol).and_then(version_of);
            let same_key = match (before, after) {
                (Some(b), Some(a)) => id(b) == id(a),
                _ => false,
            };
            // the delete part: a delete, or the old key of a key-changing update
            if let (Some(b), false) = (before, same_key) {
                let k = id(b);
                self.take_resurrected(&k).await?;
                if self.take_owed(&k).await?.is_some() {
                    // docs/CONFLICTS.md, limits: the delete's version is its own time
                    tracing::debug!(db = %r.db, tbl = %r.table, "a local delete of a row whose raise was pending");
                }
                let Some(x) = delete_version(tx, i, r, &vcol, &t.pk, clock) else {
                    continue;
                };
                // A key written again later in this transaction (delete-then-insert, as
                // sysbench and REPLACE do) has a row, whose version beats the tombstone
                // everywhere: nothing to record (a later delete records its own).
                let rewritten = tx.changes[i + 1..].iter().any(|c| {
                    matches!(c, Change::Row(w) if w.db == r.db && w.table == r.table
                        && w.after.as_ref().is_some_and(|a| id(a) == k))
                });
                if !rewritten {
                    self.record_tombstone(&t, b, x).await?;
                    self.last_delete.insert(
                        (r.db.to_string(), r.table.to_string()),
                        FilePos::new(&*tx.file, tx.start_pos),
                    );
                }
                deleted.insert(k, x);
            }
            if !clock {
                continue; // an integer version is the application's: never raised
            }
            let Some(a) = after else { continue };
            let Some(v) = ver(a) else { continue };
            let k = id(a);
            // what this write had to be greater than: the row it replaced, else the
            // key's tombstone; and what an earlier write of the key still owes
            let mut floor = match (before, same_key) {
                (Some(b), true) => ver(b),
                _ => match deleted.get(&k) {
                    Some(x) => Some(*x),
                    None => self.tombstone(&t, a).await?,
                },
            };
            for owed in [self.take_owed(&k).await?, self.take_resurrected(&k).await?]
                .into_iter()
                .flatten()
            {
                floor = Some(floor.map_or(owed, |f| f.max(owed)));
            }
            if let Some(f) = floor.filter(|f| v <= *f) {
                self.raise_or_owe(&t, a, v, f, k).await?;
            }
        }
        self.undo_misrouted(tx, misrouted).await?;
        Ok(())
    }

    /// Raises the row of `img`'s key above `floor`, if it still is the write of version
    /// `v`; else the next write of the key owes it.
    async fn raise_or_owe(
        &mut self,
        t: &LocalTable,
        img: &RowImage,
        v: i128,
        floor: i128,
        k: TableKey,
    ) -> Result<(), Error> {
        if !self.raise(t, img, floor).await? {
            tracing::debug!(db = %t.db, tbl = %t.tbl, v, floor, "row moved on before its raise; the next write of the key owes it");
            self.set_owed(k, floor).await?;
        }
        Ok(())
    }

    /// An applier transaction's inserts into tables with a local delete after its
    /// watermark: undone when a tombstone beats them; and the later writes of a key
    /// resurrected that way, or whose local write still owes a raise.
    async fn journal_applier(
        &mut self,
        tx: &Transaction,
        watermark: Option<FilePos>,
        origin: &str,
    ) -> Result<(), Error> {
        let all = watermark.as_ref().is_none_or(|w| *w < self.floor);
        // The reader left rows undecoded that the journal needs after all: keys became
        // pending after it had read ahead (assembler, "What the journal's reader
        // leaves undecoded"). Read again from the committed position, whole.
        if tx.skipped_rows > 0 && (all || !self.owed.is_empty() || !self.resurrected.is_empty()) {
            // what was journalled before this transaction commits first, the pending
            // keys with it: the next session reads from here with them known (so it
            // decodes whole), instead of deciding the same way again
            self.commit().await?;
            return Err(Error::Transient {
                addr: self.s.addr.clone(),
                what: "the journal needs rows its reader skipped (keys became pending meanwhile): reading again".into(),
            });
        }
        for c in &tx.changes {
            let Change::Row(r) = c else { continue };
            if !self.replicated(r) {
                continue;
            }
            let recent = self
                .last_delete
                .get(&(r.db.to_string(), r.table.to_string()))
                .is_some_and(|d| watermark.as_ref().is_none_or(|w| d >= w));
            if !all && !recent && self.resurrected.is_empty() && self.owed.is_empty() {
                continue;
            }
            let Some(t) = self.table(&r.db, &r.table).await? else {
                continue;
            };
            let id = |img: &RowImage| (r.db.to_string(), r.table.to_string(), key_text(&t, img));
            if let Some(b) = &r.before {
                let moved = r.after.as_ref().is_none_or(|a| key_text(&t, a) != key_text(&t, b));
                if moved {
                    self.take_resurrected(&id(b)).await?;
                    self.take_owed(&id(b)).await?;
                }
            }
            let Some(a) = r.after.as_ref() else { continue };
            let vcol = t.version.clone().expect("journalled tables have a version");
            let Some(v) = a.get(&vcol).and_then(version_of) else {
                continue;
            };
            let k = id(a);
            // an applier write over a local write that still owes its raise
            if let Some(f) = self.take_owed(&k).await? {
                if v <= f {
                    self.raise_or_owe(&t, a, v, f, k.clone()).await?;
                }
            }
            let x = match self.resurrected.get(&k) {
                Some(&x) if v > x => {
                    self.take_resurrected(&k).await?;
                    continue;
                }
                Some(&x) => Some(x),
                None if r.op == Op::Insert && (all || recent) => self.tombstone(&t, a).await?.filter(|x| *x >= v),
                None => None,
            };
            if let Some(x) = x {
                if self.undo(&t, a, v, x, origin, tx).await? {
                    self.take_resurrected(&k).await?;
                } else {
                    // the row moved on since: its next writes decide
                    self.set_resurrected(k, x).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes the position (when it moved) and commits the open journal transaction.
    async fn commit(&mut self) -> Result<(), Error> {
        let Some(cp) = self.checkpoint.clone() else {
            if self.open {
                self.conn
                    .query_drop("COMMIT")
                    .await
                    .map_err(|e| self.err("COMMIT", e))?;
                self.open = false;
            }
            return Ok(());
        };
        self.begin().await?;
        let gtid = cp
            .gtid
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("gtid serializes"));
        let [tomb, raised, undone] = self.counts;
        self.conn
            .exec_drop(
                "UPDATE `drc`.`journal` SET gtid = ?, file = ?, pos = ?, tombstones = tombstones + ?, raised = raised + ?, \
                 unresurrected = unresurrected + ? WHERE channel = ?",
                (gtid, &cp.file.file, cp.file.pos, tomb, raised, undone, self.channel.as_str()),
            )
            .await
            .map_err(|e| self.err("writing drc.journal", e))?;
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| self.err("COMMIT", e))?;
        self.open = false;
        for (kind, n) in [("tombstone", tomb), ("raised", raised), ("undone", undone)] {
            if n > 0 {
                metrics::counter!(m::JOURNAL_ACTIONS, "zone" => self.zone_label.clone(), "kind" => kind).increment(n);
            }
        }
        if self.commit_ts_us > 0 {
            metrics::gauge!(m::JOURNAL_COMMIT_TS, "zone" => self.zone_label.clone())
                .set(self.commit_ts_us as f64 / 1e6);
        }
        self.counts = [0; 3];
        self.checkpoint = None;
        self.dirty = false;
        self.persisted = Instant::now();
        self.progress.send_replace(Some(cp.file));
        Ok(())
    }
}

/// `DRC_TEST_JOURNAL_DELAY_MS` (a test hook, never for production): the journal waits
/// this long before each transaction that deletes rows, as a journal lagging under
/// load would (tests/active_active.rs races an incoming update against it).
fn test_delete_delay() -> Option<std::time::Duration> {
    static D: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("DRC_TEST_JOURNAL_DELAY_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(std::time::Duration::from_millis)
    })
}

impl Sink for JournalSink {
    type Item = Transaction;

    async fn write(&mut self, tx: Transaction) -> Result<(), Error> {
        if let Some(d) = test_delete_delay() {
            if tx.fragment == 0
                && tx
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Row(r) if r.op == Op::Delete))
            {
                tokio::time::sleep(d).await;
            }
        }
        if tx.fragment == 0 {
            self.kind = Some(Self::classify(&tx));
        }
        if tx.skipped_rows > 0 {
            metrics::counter!(m::JOURNAL_SKIPPED_EVENTS, "zone" => self.zone_label.clone())
                .increment(u64::from(tx.skipped_rows));
        }
        // DDL: table metadata is read again
        for c in &tx.changes {
            if let Change::Statement(st) = c {
                tracing::debug!(sql = %st.sql, "statement: table metadata will be read again");
                self.tables.clear();
            }
        }
        match self.kind.clone() {
            Some(Kind::Local) => self.journal_local(&tx).await?,
            Some(Kind::Applier { watermark, origin }) => self.journal_applier(&tx, watermark, &origin).await?,
            Some(Kind::Own) | None => {}
        }
        if tx.last {
            if let Some(cp) = tx.checkpoint.clone() {
                if !self.open {
                    // nothing of it waits for a commit
                    self.progress.send_replace(Some(cp.file.clone()));
                }
                self.checkpoint = Some(cp);
                self.commit_ts_us = tx.commit_ts_us;
                if self.kind != Some(Kind::Own) {
                    self.dirty = true;
                }
            }
            self.kind = None;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        let open_long = self.open && self.opened.elapsed() >= GROUP_FOR;
        if open_long || (!self.open && self.dirty && self.persisted.elapsed() >= PERSIST_EVERY) {
            self.commit().await?;
        }
        Ok(())
    }

    fn tick(&self) -> Option<Duration> {
        Some(if self.open { GROUP_FOR } else { PERSIST_EVERY })
    }
}

/// The key of `img` as text, for matching within a fragment.
fn key_text(t: &LocalTable, img: &RowImage) -> Vec<String> {
    t.pk.iter().map(|c| format!("{:?}", img.get(c))).collect()
}
