//! Binlog events → transactions: the grouping state machine shared by the offline
//! file reader and the live replica stream.
//!
//! A group starts at a GTID event (MySQL 33/42, MariaDB 162), an anonymous GTID, or a
//! `BEGIN`, and ends at XID, `COMMIT`, an XA prepare, or, for a standalone statement
//! (DDL), right after its query event. Row events in between become [`RowChange`]s.
//!
//! # Memory
//! Changes are handed on in fragments of at most [`Limits::max_rows`] rows or about
//! [`Limits::max_bytes`] bytes of row events, so a transaction of any size is read
//! with bounded memory. The last fragment always holds at least one change, so a
//! consumer can mark "this was the last row" on it.
//!
//! # XA transactions
//! An XA transaction's changes are in its XA PREPARE group; whether they happened is
//! known only at its XA COMMIT or XA ROLLBACK, a later group. The prepared group is
//! *held*: it and every group after it wait, in binlog order, until the outcome is
//! read; then a committed one is handed on (with its own checkpoint, at the end of
//! its PREPARE), a rolled-back one dropped, and the groups behind it follow. No
//! checkpoint passes a held XA PREPARE, so a restart reads it again. What waits is
//! counted ([`Assembler::held_rows`]); the live reader bounds it (a prepared XA
//! transaction left open on the server: `XA RECOVER` shows it).
//!
//! # What the journal's reader leaves undecoded
//! The journal (`crate::mysql::journal`) needs the rows of its zone's applier
//! transactions only for tables with a local delete (or update: conservative) since
//! the transaction's watermark, after a restart (a watermark older than where the
//! journal resumed), or while it holds pending keys. With a [`JournalFilter`] the
//! assembler skips decoding the other rows of applier transactions (and all rows of
//! the journal's own), and counts them in [`Transaction::skipped_rows`]: the same
//! decisions, made from the same stream, by the reader instead of the journal. The
//! pending keys are the journal's: if it meets skipped rows while it holds any, it
//! reads again with everything decoded (`JournalSink`).
//!
//! # Positions
//! The checkpoint of the last fragment is the end offset of the group's final event
//! (for a compressed MySQL transaction: the end of its TRANSACTION_PAYLOAD event) and
//! the GTID state including the group's GTID. Nothing inside a group is a checkpoint.
//!
//! (Over 600 lines on purpose: one grouping state machine — GTIDs, XA, compressed
//! payloads, fragments, both flavors — that every reader shares.)

use super::rows::decode_rows;
use super::schema::TableSchema;
use crate::model::{Change, RowChange, Statement, Transaction, TsSource};
use crate::position::{Checkpoint, FilePos, Gtid, GtidSet, GtidState, MariaGtid, MariaGtidPos, MysqlGtid};
use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData, GtidEvent, QueryEvent, RotateEvent, TableMapEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// MariaDB event type codes (not known to mysql_common).
pub mod maria {
    pub const ANNOTATE_ROWS: u8 = 160;
    pub const BINLOG_CHECKPOINT: u8 = 161;
    pub const GTID: u8 = 162;
    pub const GTID_LIST: u8 = 163;
    pub const START_ENCRYPTION: u8 = 164;
    pub const QUERY_COMPRESSED: u8 = 165;
    /// 166..=171: compressed ROWS events (`log_bin_compress=ON`).
    pub const FIRST_COMPRESSED_ROWS: u8 = 166;
    pub const LAST_COMPRESSED_ROWS: u8 = 171;
    /// GTID event flag: the group is one statement without BEGIN/COMMIT (DDL).
    pub const FL_STANDALONE: u8 = 1;
    pub const FL_GROUP_COMMIT_ID: u8 = 2;
    /// GTID event flags of XA groups: the XA PREPARE group (the event carries the xid),
    /// and the XA COMMIT / XA ROLLBACK group.
    pub const FL_PREPARED_XA: u8 = 64;
    pub const FL_COMPLETED_XA: u8 = 128;
}

/// What the journal's reader may leave undecoded (module doc).
#[derive(Debug, Clone)]
pub struct JournalFilter {
    /// Where the journal resumed: an applier transaction whose watermark is older
    /// (or unknown) is read whole.
    pub floor: FilePos,
    /// The journal holds pending keys (owed raises, resurrected rows): read whole.
    pub pending: Arc<std::sync::atomic::AtomicBool>,
    /// Start of the latest local transaction that deleted or updated rows, per table
    /// (kept across the reader's reconnects).
    pub touched: Arc<std::sync::Mutex<HashMap<(String, String), FilePos>>>,
}

impl JournalFilter {
    pub fn new(floor: FilePos, pending: Arc<std::sync::atomic::AtomicBool>) -> Self {
        JournalFilter {
            floor,
            pending,
            touched: Default::default(),
        }
    }
}

/// What a group is, as far as the journal's filter cares (from its first row).
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Unknown,
    Local(Vec<(String, String)>),
    /// An applier transaction, with the journal position its marker row carries.
    Applier(Option<FilePos>),
    /// The journal's own (its first row is `drc`.`journal`).
    Journal,
}

/// Fragment bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    pub max_bytes: usize,
    /// Table maps kept between transactions: past this many the cache is emptied at
    /// the start of the next transaction (never inside one, where a rows event refers
    /// to a TABLE_MAP read before it; a multi-table statement maps all its tables first).
    pub max_tables: usize,
    /// Rows that may wait behind a held XA transaction (checked by the live reader).
    pub max_held_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: 10_000,
            max_bytes: 8 << 20,
            max_tables: 4096,
            max_held_rows: 1_000_000,
        }
    }
}

/// Where an event sits and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct EventPos {
    /// End offset of the event in its binlog file (0 when unknown, e.g. artificial events).
    pub end: u64,
    /// When a live reader received the event (None offline).
    pub arrival: Option<SystemTime>,
}

pub use crate::error::DecodeError;

struct OpenGroup {
    gtid: Option<Gtid>,
    server_id: u32,
    start_pos: u64,
    began: bool,
    standalone: bool,
    original_commit_us: Option<i64>,
    payload_end: Option<u64>,
    fragment: u32,
    changes: Vec<Change>,
    bytes: usize,
    first_ts: u32,
    /// The xid of an XA transaction (`XA START <xid>`), as the server writes it.
    xa: Option<String>,
    kind: Kind,
    /// Rows events left undecoded in this fragment (a [`JournalFilter`]).
    skipped: u32,
}

/// A group waiting to be handed on behind a held XA transaction.
enum Pending {
    /// An XA transaction's fragments; `outcome`: committed (true) or rolled back.
    Xa {
        xid: String,
        frags: Vec<Transaction>,
        outcome: Option<bool>,
    },
    Tx(Transaction),
}

/// The grouping state machine. Feed it events in order with [`Assembler::push`].
pub struct Assembler {
    zone: Arc<str>,
    file: Arc<str>,
    limits: Limits,
    tables: HashMap<u64, (Vec<u8>, Arc<TableSchema>)>,
    gtid_state: Option<GtidState>,
    open: Option<OpenGroup>,
    rows_scratch: Vec<RowChange>,
    /// Counts of groups dropped because the stream ended or restarted inside them.
    pub incomplete_groups: u64,
    /// Query text of the last MariaDB annotate / MySQL rows-query event (for errors).
    last_statement: Option<String>,
    /// Groups waiting behind a held XA transaction, in binlog order, and their rows.
    pending: std::collections::VecDeque<Pending>,
    pending_rows: usize,
    filter: Option<JournalFilter>,
}

impl Assembler {
    pub fn new(zone: &str, file: &str, limits: Limits, gtid_state: Option<GtidState>) -> Self {
        Assembler {
            zone: Arc::from(zone),
            file: Arc::from(file),
            limits,
            tables: HashMap::new(),
            gtid_state,
            open: None,
            rows_scratch: Vec::new(),
            incomplete_groups: 0,
            last_statement: None,
            pending: Default::default(),
            pending_rows: 0,
            filter: None,
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// Sets the current binlog file name (from a rotate event the caller parsed).
    pub fn set_file(&mut self, name: &str) {
        if !name.is_empty() && *self.file != *name {
            self.file = Arc::from(name);
        }
    }

    pub fn gtid_state(&self) -> Option<&GtidState> {
        self.gtid_state.as_ref()
    }

    /// True while a group is open (a checkpoint taken now would be mid-transaction).
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Leaves rows the journal does not need undecoded (module doc).
    pub fn set_journal_filter(&mut self, f: Option<JournalFilter>) {
        self.filter = f;
    }

    /// Whether a rows event of `db`.`tbl` in the open group can stay undecoded.
    fn skippable(&self, db: &str, tbl: &str) -> bool {
        let (Some(f), Some(open)) = (&self.filter, &self.open) else {
            return false;
        };
        if db == "drc" {
            return false;
        }
        match &open.kind {
            Kind::Journal => true,
            Kind::Applier(Some(w)) => {
                !f.pending.load(std::sync::atomic::Ordering::SeqCst)
                    && *w >= f.floor
                    && f.touched
                        .lock()
                        .expect("touched tables")
                        .get(&(db.to_string(), tbl.to_string()))
                        .is_none_or(|d| d < w)
            }
            _ => false,
        }
    }

    /// Notes what the open group is, from its rows (the first one decides).
    fn note_kind(&mut self, rows: &[RowChange]) {
        let Some(open) = self.open.as_mut() else { return };
        if self.filter.is_none() {
            return;
        }
        if open.kind == Kind::Unknown {
            open.kind = match rows.first() {
                Some(r) if &*r.db == "drc" && &*r.table == "marker" => {
                    Kind::Applier(r.after.as_ref().and_then(crate::mysql::marker_watermark))
                }
                Some(r) if &*r.db == "drc" && &*r.table == "journal" => Kind::Journal,
                Some(_) => Kind::Local(Vec::new()),
                None => Kind::Unknown,
            };
        }
        if let Kind::Local(touched) = &mut open.kind {
            for r in rows {
                if r.op != crate::model::Op::Insert && !touched.iter().any(|(d, t)| d == &*r.db && t == &*r.table) {
                    touched.push((r.db.to_string(), r.table.to_string()));
                }
            }
        }
    }

    /// Rows of the groups waiting behind a held XA transaction (0: nothing held).
    pub fn held_rows(&self) -> usize {
        self.pending_rows
    }

    /// The xid of the XA transaction the others wait for, if any.
    pub fn held_xid(&self) -> Option<&str> {
        self.pending.iter().find_map(|p| match p {
            Pending::Xa { xid, outcome: None, .. } => Some(xid.as_str()),
            _ => None,
        })
    }

    /// Hands a fragment on, or keeps it behind a held XA transaction (module doc).
    fn emit(&mut self, frag: Transaction, xa: Option<String>, out: &mut Vec<Transaction>) {
        if xa.is_none() && self.pending.is_empty() {
            out.push(frag);
            return;
        }
        self.pending_rows += frag.changes.len();
        match xa {
            Some(xid) => match self.pending.back_mut() {
                Some(Pending::Xa {
                    xid: x,
                    frags,
                    outcome: None,
                }) if *x == xid && frags.last().is_some_and(|f| !f.last) => frags.push(frag),
                _ => self.pending.push_back(Pending::Xa {
                    xid,
                    frags: vec![frag],
                    outcome: None,
                }),
            },
            None => self.pending.push_back(Pending::Tx(frag)),
        }
    }

    /// The outcome of the XA transaction `xid` is read: hands on what no longer waits.
    /// False when no transaction of that xid is held (prepared before the stream began).
    fn resolve(&mut self, xid: &str, committed: bool, out: &mut Vec<Transaction>) -> bool {
        let found = self.pending.iter_mut().any(|p| match p {
            Pending::Xa { xid: x, outcome, frags }
                if x == xid && outcome.is_none() && frags.last().is_some_and(|f| f.last) =>
            {
                *outcome = Some(committed);
                true
            }
            _ => false,
        });
        while let Some(front) = self.pending.front() {
            if matches!(front, Pending::Xa { outcome: None, .. }) {
                break;
            }
            match self.pending.pop_front().expect("front") {
                Pending::Tx(t) => {
                    self.pending_rows -= t.changes.len();
                    out.push(t);
                }
                Pending::Xa { frags, outcome, .. } => {
                    for f in frags {
                        self.pending_rows -= f.changes.len();
                        if outcome == Some(true) {
                            out.push(f);
                        }
                    }
                }
            }
        }
        found
    }

    /// Drops a partially read group (the stream broke inside it; it will be read again).
    pub fn abandon_open_group(&mut self) {
        if self.open.take().is_some() {
            self.incomplete_groups += 1;
        }
    }

    fn err(&self, offset: u64, what: impl Into<String>) -> DecodeError {
        DecodeError {
            file: self.file.to_string(),
            offset,
            what: what.into(),
        }
    }

    /// Feeds one event. Completed fragments are appended to `out`.
    pub fn push(&mut self, ev: &Event, at: EventPos, out: &mut Vec<Transaction>) -> Result<(), DecodeError> {
        let h = ev.header();
        let raw = h.event_type_raw();
        let offset = at.end.saturating_sub(h.event_size() as u64);
        match raw {
            maria::GTID => return self.maria_gtid(ev, at),
            maria::GTID_LIST => {
                let pos = parse_maria_gtid_list(ev.data()).map_err(|e| self.err(offset, e))?;
                if self.gtid_state.is_none() {
                    self.gtid_state = Some(GtidState::Mariadb(pos));
                }
                return Ok(());
            }
            maria::ANNOTATE_ROWS => {
                self.last_statement = Some(String::from_utf8_lossy(ev.data()).into_owned());
                return Ok(());
            }
            maria::BINLOG_CHECKPOINT => return Ok(()),
            maria::START_ENCRYPTION => return Err(self.err(
                offset,
                "encrypted binlog (START_ENCRYPTION event): drc cannot read encrypted binlogs; set encrypt_binlog=OFF",
            )),
            maria::QUERY_COMPRESSED | maria::FIRST_COMPRESSED_ROWS..=maria::LAST_COMPRESSED_ROWS => {
                return Err(self.err(
                    offset,
                    format!("compressed MariaDB event (type {raw}): set log_bin_compress=OFF on the server"),
                ))
            }
            _ => {}
        }
        if raw == EventType::PREVIOUS_GTIDS_EVENT as u8 {
            previous_gtids_fit(ev.data()).map_err(|what| self.err(offset, what))?;
        }
        // mysql_common may panic on inconsistent bytes inside an event (found by
        // fuzzing: a TRANSACTION_PAYLOAD whose lengths point past its end): corruption
        let data = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.read_data())) {
            Ok(Ok(Some(d))) => d,
            Ok(Ok(None)) => return Ok(()), // an event type this version does not know and need not act on
            Ok(Err(e)) => return Err(self.err(offset, format!("cannot decode {:?} event: {e}", h.event_type()))),
            Err(_) => {
                return Err(self.err(
                    offset,
                    format!(
                        "corrupt {:?} event (inconsistent lengths inside the event)",
                        h.event_type()
                    ),
                ))
            }
        };
        match data {
            EventData::GtidEvent(g) => {
                let gtid = mysql_gtid(&g);
                let ocs = g.original_commit_timestamp();
                self.start_group(Some(Gtid::Mysql(gtid)), h.server_id(), offset, h.timestamp());
                if let Some(open) = &mut self.open {
                    open.original_commit_us = (ocs > 0).then_some(ocs as i64);
                }
            }
            EventData::AnonymousGtidEvent(_) => {
                self.start_group(None, h.server_id(), offset, h.timestamp());
            }
            EventData::PreviousGtidsEvent(p) if self.gtid_state.is_none() => {
                {
                    let mut set = GtidSet::new();
                    for sid in p.sids() {
                        let uuid = uuid::Uuid::from_bytes(sid.uuid());
                        let tag = sid.tag().map(|t| t.to_string()).unwrap_or_default();
                        for iv in sid.intervals() {
                            // intervals on the wire are half-open [start, end)
                            set.add_interval(uuid, &tag, iv.start(), iv.end().saturating_sub(1));
                        }
                    }
                    self.gtid_state = Some(GtidState::Mysql(set));
                }
            }
            EventData::QueryEvent(q) => self.query(&q, h.server_id(), h.timestamp(), offset, at, out)?,
            EventData::TableMapEvent(t) => self.table_map(ev.data(), t, offset)?,
            EventData::RowsEvent(r) => {
                let table_id = r.table_id();
                let schema = match self.tables.get(&table_id) {
                    Some((_, s)) => s.clone(),
                    None => return Err(self.err(offset, format!("rows event for table id {table_id} without a preceding TABLE_MAP"))),
                };
                if self.open.is_some() && self.skippable(&schema.db, &schema.table) {
                    if let Some(open) = &mut self.open {
                        open.skipped += 1;
                    }
                    return Ok(());
                }
                self.rows_scratch.clear();
                let mut scratch = std::mem::take(&mut self.rows_scratch);
                if let Err(e) = decode_rows(&r, &schema, at.end, h.timestamp(), &mut scratch) {
                    let stmt = self.last_statement.as_deref().map(|s| format!(" (statement: {s})")).unwrap_or_default();
                    return Err(self.err(offset, format!("`{}`.`{}`: {e}{stmt}", schema.db, schema.table)));
                }
                if self.open.is_none() {
                    self.start_group(None, h.server_id(), offset, h.timestamp());
                }
                self.note_kind(&scratch);
                let bytes_each = r.rows_data().len() / scratch.len().max(1) + 1;
                for row in scratch.drain(..) {
                    self.add_change(Change::Row(row), bytes_each, out);
                }
                self.rows_scratch = scratch;
            }
            EventData::XidEvent(x) => self.commit(Some(x.xid), at, h.timestamp(), out),
            EventData::XaPrepareLogEvent(d) => {
                // its first byte is `one_phase`: MySQL writes `XA COMMIT … ONE PHASE`
                // this way, and no XA COMMIT follows: a commit, nothing to hold
                if d.first() == Some(&1) {
                    if let Some(open) = &mut self.open {
                        open.xa = None;
                    }
                }
                self.commit(None, at, h.timestamp(), out)
            }
            EventData::TransactionPayloadEvent(_) => {
                if let Some(open) = &mut self.open {
                    open.payload_end = Some(at.end);
                }
            }
            EventData::RotateEvent(r) => self.rotate(&r),
            EventData::RowsQueryEvent(q) => {
                self.last_statement = Some(q.query().into_owned());
            }
            EventData::IncidentEvent(i) => {
                return Err(self.err(
                    offset,
                    format!(
                        "INCIDENT event ({:?}: {}): the source server lost changes here; resynchronise the zones before resuming",
                        i.incident_type(),
                        i.message()
                    ),
                ))
            }
            _ => {}
        }
        Ok(())
    }

    fn rotate(&mut self, r: &RotateEvent<'_>) {
        let name = r.name();
        if !name.is_empty() && *self.file != *name {
            self.file = Arc::from(name.as_ref());
        }
    }

    fn table_map(&mut self, raw: &[u8], t: TableMapEvent<'_>, offset: u64) -> Result<(), DecodeError> {
        let id = t.table_id();
        if let Some((prev, _)) = self.tables.get(&id) {
            if prev.as_slice() == raw {
                return Ok(());
            }
        }
        let schema =
            TableSchema::from_table_map(t.into_owned()).map_err(|e| self.err(offset, format!("TABLE_MAP: {e}")))?;
        self.tables.insert(id, (raw.to_vec(), Arc::new(schema)));
        Ok(())
    }

    fn maria_gtid(&mut self, ev: &Event, at: EventPos) -> Result<(), DecodeError> {
        let h = ev.header();
        let offset = at.end.saturating_sub(h.event_size() as u64);
        let d = ev.data();
        if d.len() < 13 {
            return Err(self.err(offset, "truncated MariaDB GTID event"));
        }
        let seq = u64::from_le_bytes(d[0..8].try_into().unwrap());
        let domain = u32::from_le_bytes(d[8..12].try_into().unwrap());
        let flags = d[12];
        let gtid = MariaGtid {
            domain,
            server: h.server_id(),
            seq,
        };
        self.start_group(Some(Gtid::Maria(gtid)), h.server_id(), offset, h.timestamp());
        // the xid of an XA PREPARE group: after the optional commit id, formatID (4),
        // gtrid and bqual lengths (1 + 1), then their bytes
        let xid = (flags & maria::FL_PREPARED_XA != 0)
            .then(|| {
                let at = 13 + if flags & maria::FL_GROUP_COMMIT_ID != 0 { 8 } else { 0 };
                let format = u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?);
                let (g, b) = (*d.get(at + 4)? as usize, *d.get(at + 5)? as usize);
                let data = d.get(at + 6..at + 6 + g + b)?;
                Some(xid_text(format, &data[..g], &data[g..]))
            })
            .flatten();
        if flags & maria::FL_PREPARED_XA != 0 && xid.is_none() {
            return Err(self.err(offset, "truncated xid in a MariaDB XA GTID event"));
        }
        if let Some(open) = &mut self.open {
            open.standalone = flags & maria::FL_STANDALONE != 0;
            // an XA COMMIT / ROLLBACK group is the outcome of a held one, not a group
            open.began = !open.standalone && flags & maria::FL_COMPLETED_XA == 0;
            open.xa = xid;
        }
        Ok(())
    }

    fn start_group(&mut self, gtid: Option<Gtid>, server_id: u32, start_pos: u64, ts: u32) {
        if self.open.is_some() {
            // A new group while one is open: the old one was cut off (a relay log after
            // a reconnect, or a crashed server's tail). Its changes are not committed.
            tracing::warn!(file = %self.file, offset = start_pos, "dropping an incomplete transaction (no COMMIT before the next one)");
            self.incomplete_groups += 1;
        }
        if self.tables.len() > self.limits.max_tables {
            self.tables.clear();
        }
        self.last_statement = None;
        self.open = Some(OpenGroup {
            gtid,
            server_id,
            start_pos,
            began: false,
            standalone: false,
            original_commit_us: None,
            payload_end: None,
            fragment: 0,
            changes: Vec::new(),
            bytes: 0,
            first_ts: ts,
            xa: None,
            kind: Kind::Unknown,
            skipped: 0,
        });
    }

    fn query(
        &mut self,
        q: &QueryEvent<'_>,
        server_id: u32,
        ts: u32,
        offset: u64,
        at: EventPos,
        out: &mut Vec<Transaction>,
    ) -> Result<(), DecodeError> {
        let sql = q.query();
        let word = first_words(&sql);
        match word.as_str() {
            "BEGIN" | "XA START" => {
                if self.open.is_none() {
                    self.start_group(None, server_id, offset, ts);
                }
                let open = self.open.as_mut().expect("open group");
                open.began = true;
                if word == "XA START" {
                    open.xa = Some(xa_id(&sql, "START"));
                }
                return Ok(());
            }
            "COMMIT" => {
                self.commit(None, at, ts, out);
                return Ok(());
            }
            "ROLLBACK" => {
                // Only non-transactional changes can precede a logged ROLLBACK, and
                // those did happen on the source: hand them on like a commit.
                if self.open.as_ref().is_some_and(|o| !o.changes.is_empty()) {
                    tracing::warn!(file = %self.file, offset, "ROLLBACK after non-transactional changes; they are kept, as on the source");
                }
                self.commit(None, at, ts, out);
                return Ok(());
            }
            "SAVEPOINT" | "ROLLBACK TO" | "XA END" | "RELEASE SAVEPOINT" => return Ok(()),
            "XA COMMIT" if self.open.as_ref().is_some_and(|o| o.began) => {
                // XA COMMIT … ONE PHASE ends its own group (MySQL; MariaDB logs a
                // one-phase XA as a plain transaction): nothing to hold
                if let Some(open) = &mut self.open {
                    open.xa = None;
                }
                self.commit(None, at, ts, out);
                return Ok(());
            }
            "XA COMMIT" | "XA ROLLBACK" if self.open.as_ref().is_none_or(|o| !o.began) => {
                // The outcome of a prepared XA transaction (held since its PREPARE).
                let committed = word == "XA COMMIT";
                let xid = xa_id(&sql, if committed { "COMMIT" } else { "ROLLBACK" });
                if !self.resolve(&xid, committed, out) && committed {
                    tracing::warn!(file = %self.file, offset, xid, "XA COMMIT of a transaction prepared before the point this reader started from: its changes were not read here (compare the zones: drc verify)");
                }
                // the outcome's own group moves the position (its GTID included): an
                // empty last fragment, behind any XA still held
                if self.open.is_none() {
                    self.start_group(None, server_id, offset, ts);
                }
                self.commit(None, at, ts, out);
                return Ok(());
            }
            _ => {}
        }
        let stmt = Statement {
            db: q.schema().into_owned(),
            sql: sql.into_owned(),
            pos: at.end,
            ts,
        };
        match &self.open {
            Some(open) if open.began => {
                // A statement-based statement inside a transaction: reported, not replicated.
                self.add_change(Change::Statement(stmt), 0, out);
            }
            _ => {
                if self.open.is_none() {
                    self.start_group(None, server_id, offset, ts);
                }
                self.add_change(Change::Statement(stmt), 0, out);
                if let Some(open) = &mut self.open {
                    open.standalone = true;
                }
                self.commit(None, at, ts, out);
            }
        }
        Ok(())
    }

    fn add_change(&mut self, change: Change, bytes: usize, out: &mut Vec<Transaction>) {
        let limits = self.limits;
        let full = {
            let open = self.open.as_ref().expect("add_change with an open group");
            !open.changes.is_empty() && (open.changes.len() >= limits.max_rows || open.bytes + bytes > limits.max_bytes)
        };
        if full {
            let xa = self.open.as_ref().and_then(|o| o.xa.clone());
            let frag = self.fragment(false, None, None, 0, None);
            self.emit(frag, xa, out);
        }
        let open = self.open.as_mut().expect("open group");
        open.changes.push(change);
        open.bytes += bytes;
    }

    /// Builds a fragment from the open group's buffered changes.
    fn fragment(
        &mut self,
        last: bool,
        xid: Option<u64>,
        at: Option<EventPos>,
        commit_header_ts: u32,
        checkpoint: Option<Checkpoint>,
    ) -> Transaction {
        let open = self.open.as_mut().expect("open group");
        let (commit_ts_us, ts_source) = match open.original_commit_us {
            Some(us) => (us, TsSource::OriginalCommit),
            None => {
                let sec = if last { commit_header_ts } else { open.first_ts } as i64;
                refine(sec, at.and_then(|a| a.arrival))
            }
        };
        let tx = Transaction {
            zone: self.zone.clone(),
            server_id: open.server_id,
            gtid: open.gtid.clone(),
            xid,
            file: self.file.clone(),
            start_pos: open.start_pos,
            commit_ts_us,
            ts_source,
            fragment: open.fragment,
            last,
            ddl: open.standalone,
            changes: std::mem::take(&mut open.changes),
            checkpoint,
            skipped_rows: open.skipped,
        };
        open.fragment += 1;
        open.bytes = 0;
        open.skipped = 0;
        tx
    }

    fn commit(&mut self, xid: Option<u64>, at: EventPos, ts: u32, out: &mut Vec<Transaction>) {
        let Some(open) = &self.open else {
            return; // e.g. a COMMIT right after we started mid-stream
        };
        let end = open.payload_end.unwrap_or(at.end);
        if let (Some(state), Some(g)) = (&mut self.gtid_state, &open.gtid) {
            state.add(g);
        } else if let Some(g) = &open.gtid {
            self.gtid_state = Some(match g {
                Gtid::Mysql(m) => {
                    let mut s = GtidSet::new();
                    s.add(m);
                    GtidState::Mysql(s)
                }
                Gtid::Maria(m) => {
                    let mut p = MariaGtidPos::new();
                    p.update(*m);
                    GtidState::Mariadb(p)
                }
            });
        }
        let checkpoint = Checkpoint {
            file: FilePos::new(self.file.to_string(), end),
            gtid: self.gtid_state.clone(),
        };
        let xa = open.xa.clone();
        if let (Some(f), Kind::Local(touched)) = (&self.filter, &open.kind) {
            let at = FilePos::new(self.file.to_string(), open.start_pos);
            let mut m = f.touched.lock().expect("touched tables");
            for k in touched {
                m.insert(k.clone(), at.clone());
            }
        }
        let frag = self.fragment(true, xid, Some(at), ts, Some(checkpoint));
        self.open = None;
        // A group with no changes (e.g. only tables the server filtered) still moves the
        // checkpoint; consumers treat an empty last fragment as "advance only".
        self.emit(frag, xa, out);
    }
}

/// Commit time from a header second and, when live, the arrival clock: the arrival time
/// is used when it falls within two seconds after the header's second began (the
/// reader is caught up; a statement started at x.999 may commit and arrive at x+1.001),
/// which gives sub-second precision; otherwise the header second stands.
fn refine(header_sec: i64, arrival: Option<SystemTime>) -> (i64, TsSource) {
    let base = header_sec * 1_000_000;
    if let Some(a) = arrival.and_then(|a| a.duration_since(SystemTime::UNIX_EPOCH).ok()) {
        let us = a.as_micros() as i64;
        if us >= base && us < base + 2_000_000 {
            return (us, TsSource::ArrivalRefined);
        }
    }
    (base, TsSource::HeaderSeconds)
}

fn mysql_gtid(g: &GtidEvent) -> MysqlGtid {
    MysqlGtid {
        uuid: uuid::Uuid::from_bytes(g.sid()),
        tag: g.tag().map(|t| t.to_string()).unwrap_or_default(),
        gno: g.gno(),
    }
}

/// The xid of an `XA <verb> <xid>` statement as written (`X'31',X'',1`), spaces and
/// a trailing `ONE PHASE` aside: the same text in XA START and XA COMMIT/ROLLBACK.
fn xa_id(sql: &str, verb: &str) -> String {
    let rest = sql.trim_start();
    let rest = rest.get(2..).unwrap_or("").trim_start(); // "XA"
    let rest = rest.get(verb.len()..).unwrap_or("").trim();
    rest.split_whitespace().collect::<String>().to_ascii_uppercase()
}

/// An xid in the text the servers write it in statements: `X'<gtrid>',X'<bqual>',<formatID>`.
fn xid_text(format: u32, gtrid: &[u8], bqual: &[u8]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    format!("X'{}',X'{}',{format}", hex(gtrid), hex(bqual))
}

/// First one or two keywords of a statement, upper-cased (`XA START`, `ROLLBACK TO`).
fn first_words(sql: &str) -> String {
    let mut it = sql.split_ascii_whitespace();
    let w1 = it.next().unwrap_or("").trim_end_matches(';').to_ascii_uppercase();
    match w1.as_str() {
        "XA" | "ROLLBACK" | "RELEASE" => match it.next() {
            Some(w2) if w1 != "ROLLBACK" || w2.eq_ignore_ascii_case("TO") => {
                format!("{w1} {}", w2.to_ascii_uppercase())
            }
            _ => w1,
        },
        _ => w1,
    }
}

/// Parses a MariaDB GTID_LIST event body: count (low 28 bits) then (domain, server, seq).
/// A PREVIOUS_GTIDS event's counts (server UUIDs, and each one's intervals) fit in its
/// bytes, walked as mysql_common reads them. mysql_common 0.37 reserves memory for a
/// count before reading what it counts: a corrupt count of 2^56 was an allocation of
/// that many (found by fuzzing).
pub(crate) fn previous_gtids_fit(data: &[u8]) -> Result<(), String> {
    let bad = |what: String| Err(format!("corrupt PREVIOUS_GTIDS event: {what}"));
    let Some(head) = data.get(..8) else {
        return bad("shorter than its 8-byte count".into());
    };
    let header = u64::from_le_bytes(head.try_into().expect("8 bytes"));
    let tagged = header >> 56 != 0;
    let n = if tagged {
        (header >> 8) & ((1 << 48) - 1)
    } else {
        header & ((1 << 56) - 1)
    };
    if n.saturating_mul(24) > data.len() as u64 {
        return bad(format!("{n} server UUIDs in {} bytes", data.len()));
    }
    let mut rest = &data[8..];
    for _ in 0..n {
        let Some(after) = rest.get(16..) else {
            return bad("a server UUID past its end".into());
        };
        rest = after;
        if tagged {
            let mut pb = mysql_common::io::ParseBuf(rest);
            let len = mysql_common::misc::read_varlen_uint(&mut pb)
                .map_err(|e| format!("corrupt PREVIOUS_GTIDS event: {e}"))?;
            rest = pb.0;
            if len > rest.len() as u64 {
                return bad(format!("a tag of {len} bytes in {}", rest.len()));
            }
            rest = &rest[len as usize..];
        }
        let Some(count) = rest.get(..8) else {
            return bad("an interval count past its end".into());
        };
        let k = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        rest = &rest[8..];
        if k.saturating_mul(16) > rest.len() as u64 {
            return bad(format!("{k} intervals in {} bytes", rest.len()));
        }
        rest = &rest[(k * 16) as usize..];
    }
    Ok(())
}

pub fn parse_maria_gtid_list(d: &[u8]) -> Result<MariaGtidPos, String> {
    if d.len() < 4 {
        return Err("truncated GTID_LIST event".into());
    }
    let count = (u32::from_le_bytes(d[0..4].try_into().unwrap()) & 0x0fff_ffff) as usize;
    let need = 4 + count * 16;
    if d.len() < need {
        return Err(format!(
            "GTID_LIST event says {count} entries but has {} bytes",
            d.len()
        ));
    }
    let mut pos = MariaGtidPos::new();
    for i in 0..count {
        let e = &d[4 + i * 16..4 + (i + 1) * 16];
        pos.update(MariaGtid {
            domain: u32::from_le_bytes(e[0..4].try_into().unwrap()),
            server: u32::from_le_bytes(e[4..8].try_into().unwrap()),
            seq: u64::from_le_bytes(e[8..16].try_into().unwrap()),
        });
    }
    Ok(pos)
}

/// True for event types that carry no data and may arrive with `log_pos` 0.
pub fn is_artificial(ev: &Event) -> bool {
    ev.header().log_pos() == 0 || ev.header().event_type_raw() == EventType::HEARTBEAT_EVENT as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_keywords() {
        assert_eq!(first_words("BEGIN"), "BEGIN");
        assert_eq!(first_words("xa start 'x'"), "XA START");
        assert_eq!(xa_id("XA START X'7831',X'',1", "START"), "X'7831',X'',1");
        assert_eq!(xa_id("XA COMMIT X'7831', X'', 1", "COMMIT"), "X'7831',X'',1");
        assert_eq!(xa_id("XA ROLLBACK X'7831',X'',1", "ROLLBACK"), "X'7831',X'',1");
        assert_eq!(xa_id("XA COMMIT X'6a',X'',1", "COMMIT"), xid_text(1, b"j", b""));
        assert_eq!(first_words("ROLLBACK TO SAVEPOINT a"), "ROLLBACK TO");
        assert_eq!(first_words("ROLLBACK"), "ROLLBACK");
        assert_eq!(first_words("COMMIT;"), "COMMIT");
        assert_eq!(first_words("  create table t (a int)"), "CREATE");
    }

    #[test]
    fn arrival_refines_only_inside_the_second() {
        let t = |us: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(us));
        assert_eq!(refine(100, t(100_250_000)), (100_250_000, TsSource::ArrivalRefined));
        assert_eq!(refine(100, t(101_000_500)), (101_000_500, TsSource::ArrivalRefined));
        assert_eq!(refine(100, t(102_000_000)), (100_000_000, TsSource::HeaderSeconds));
        assert_eq!(refine(100, t(99_000_000)), (100_000_000, TsSource::HeaderSeconds));
        assert_eq!(refine(100, None), (100_000_000, TsSource::HeaderSeconds));
    }

    #[test]
    fn gtid_list_body() {
        let mut d = vec![2, 0, 0, 0];
        for (dom, srv, seq) in [(0u32, 1u32, 5u64), (1, 2, 9)] {
            d.extend_from_slice(&dom.to_le_bytes());
            d.extend_from_slice(&srv.to_le_bytes());
            d.extend_from_slice(&seq.to_le_bytes());
        }
        assert_eq!(parse_maria_gtid_list(&d).unwrap().to_string(), "0-1-5,1-2-9");
        assert!(parse_maria_gtid_list(&d[..20]).is_err());
    }
}
