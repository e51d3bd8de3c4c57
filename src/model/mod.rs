//! The event model: what the reader hands downstream.
//!
//! A [`Transaction`] is one committed origin transaction (or one DDL statement), tagged
//! with its origin zone, origin server id, GTID, commit timestamp and the position to
//! resume from after it. Large transactions arrive as several fragments with the same
//! identity (`fragment` = 0, 1, ...; `last` on the final one) so that no stage ever has
//! to hold a million-row transaction in memory; a consumer that must act atomically
//! (the applier) opens its target transaction on fragment 0 and commits on `last`.
//!
//! # Invariants
//! * Changes are in binlog order; fragments of one transaction are contiguous.
//! * `checkpoint` is set only on the last fragment: it is the resume point *after* the
//!   whole transaction, never a point inside it.
//! * A [`Value`] keeps what the server logged exactly: integers with their sign,
//!   DECIMAL as its exact text, temporal values with their fractional digits, binary
//!   strings as bytes. The JSON form (schemas/change_event.v1.json) is lossless.

pub mod wire;

use crate::position::{Checkpoint, Gtid};
use serde::{ser::SerializeMap, Serialize, Serializer};
use std::sync::Arc;

/// A column value as logged by the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text, e.g. `-123.4500`.
    Decimal(String),
    Year(u16),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (as many fractional digits as the column has).
    DateTime(String),
    /// `[-]HH:MM:SS[.ffffff]`, hours may exceed 24 (up to 838).
    Time(String),
    /// Seconds and microseconds since the Unix epoch (a TIMESTAMP is stored in UTC).
    Timestamp {
        secs: i64,
        micros: u32,
        fsp: u8,
    },
    /// BIT(width).
    Bit {
        value: u64,
        width: u16,
    },
    /// ENUM: 1-based index, and the label when the table map carries labels.
    Enum {
        index: u16,
        label: Option<String>,
    },
    /// SET: bit mask, and the comma-joined labels when the table map carries them.
    Set {
        mask: u64,
        labels: Option<String>,
    },
    /// Character data decoded from the column's character set.
    Text(String),
    /// Binary data (BINARY/VARBINARY/BLOB, GEOMETRY, VECTOR, or text in an unknown charset).
    Bytes(Vec<u8>),
    /// A JSON document, as JSON text.
    Json(String),
    /// A MySQL partial JSON update: list of `{op, path, value}` (boxed: rare, and it
    /// would make every value three times larger).
    JsonDiff(Box<serde_json::Value>),
}

impl Value {
    /// Text of a TIMESTAMP in UTC: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    pub fn timestamp_text(secs: i64, micros: u32, fsp: u8) -> String {
        if secs == 0 && micros == 0 {
            return with_fraction("0000-00-00 00:00:00".to_string(), 0, fsp);
        }
        let dt = chrono::DateTime::from_timestamp(secs, micros * 1000).unwrap_or_default();
        with_fraction(dt.format("%Y-%m-%d %H:%M:%S").to_string(), micros, fsp)
    }
}

/// Appends `.fff` with `fsp` digits of `micros` (nothing when `fsp` is 0).
pub fn with_fraction(mut s: String, micros: u32, fsp: u8) -> String {
    if fsp > 0 {
        s.push('.');
        push_digits(&mut s, micros / 10u32.pow(6 - fsp.min(6) as u32), fsp.min(6) as usize);
    }
    s
}

/// Appends `n` as exactly `width` decimal digits, zero-padded (`n < 10^width`,
/// `width <= 10`). The hot path of date/time decoding: no formatter machinery.
pub fn push_digits(s: &mut String, mut n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    for i in (0..width).rev() {
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    s.push_str(std::str::from_utf8(&buf[..width]).expect("ASCII digits"));
}

/// `YYYY-MM-DD`.
pub fn format_date(y: u16, m: u8, d: u8) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, y, m, d);
    s
}

fn push_date(s: &mut String, y: u16, m: u8, d: u8) {
    push_digits(s, y as u32, 4);
    s.push('-');
    push_digits(s, m as u32, 2);
    s.push('-');
    push_digits(s, d as u32, 2);
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` with `fsp` fractional digits.
#[allow(clippy::too_many_arguments)]
pub fn format_datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, sec: u8, micros: u32, fsp: u8) -> String {
    let mut s = String::with_capacity(26);
    push_date(&mut s, y, mo, d);
    s.push(' ');
    push_digits(&mut s, h as u32, 2);
    s.push(':');
    push_digits(&mut s, mi as u32, 2);
    s.push(':');
    push_digits(&mut s, sec as u32, 2);
    with_fraction(s, micros, fsp)
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match self {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::UInt(v) => s.serialize_u64(*v),
            // f32 -> shortest text -> f64, so 1.1f32 prints as 1.1 (and re-reads as the same f32).
            Value::Float(v) => s.serialize_f64(v.to_string().parse::<f64>().unwrap_or(*v as f64)),
            Value::Double(v) => s.serialize_f64(*v),
            Value::Decimal(t) | Value::Date(t) | Value::DateTime(t) | Value::Time(t) | Value::Text(t) => {
                s.serialize_str(t)
            }
            Value::Json(t) => s.serialize_str(t),
            Value::Year(y) => s.serialize_u16(*y),
            Value::Timestamp { secs, micros, fsp } => s.serialize_str(&Value::timestamp_text(*secs, *micros, *fsp)),
            Value::Bit { value, .. } => s.serialize_u64(*value),
            Value::Enum { index, label } => match label {
                Some(l) => s.serialize_str(l),
                None => s.serialize_u16(*index),
            },
            Value::Set { mask, labels } => match labels {
                Some(l) => s.serialize_str(l),
                None => s.serialize_u64(*mask),
            },
            Value::Bytes(b) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(b))?;
                m.end()
            }
            Value::JsonDiff(d) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("json_diff", d)?;
                m.end()
            }
        }
    }
}

/// Insert, update or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// One image of a row: column names (shared per table) and values in column order.
/// Names are from the table map (`binlog_row_metadata=FULL`), or `@1`, `@2`, ... (1-based)
/// when the binlog has none. A partial image (`binlog_row_image=MINIMAL`) lists only
/// the columns it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct RowImage {
    pub columns: Arc<[Arc<str>]>,
    /// 0-based table positions of `values` when the image is partial; `None` when it
    /// holds every column in table order.
    pub positions: Option<Arc<[u32]>>,
    pub values: Vec<Value>,
}

impl RowImage {
    /// 0-based table position of the i-th value.
    pub fn position(&self, i: usize) -> usize {
        self.positions.as_ref().map_or(i, |p| p[i] as usize)
    }

    pub fn get(&self, column: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| &**c == column)
            .map(|i| &self.values[i])
    }
}

impl Serialize for RowImage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.values.len()))?;
        for (c, v) in self.columns.iter().zip(&self.values) {
            m.serialize_entry(&**c, v)?;
        }
        m.end()
    }
}

/// One row change of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub db: Arc<str>,
    pub table: Arc<str>,
    pub op: Op,
    /// Primary-key column names (empty when the binlog does not say).
    pub pk: Arc<[Arc<str>]>,
    pub before: Option<RowImage>,
    pub after: Option<RowImage>,
    /// End offset of the binlog event that carried this change.
    pub pos: u64,
    /// Timestamp (seconds) of that event's header.
    pub ts: u32,
}

/// A statement logged as text: DDL outside transactions, or a statement-based
/// statement inside one (drc requires ROW format; it reports, never executes, those).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Default database of the session that ran it (may be empty).
    pub db: String,
    pub sql: String,
    pub pos: u64,
    pub ts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Row(RowChange),
    Statement(Statement),
}

/// One committed origin transaction, or one fragment of a large one. See the module doc.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// Origin zone (from the reader's config; empty for offline dumps without `--zone`).
    pub zone: Arc<str>,
    /// `server_id` of the server that wrote the transaction.
    pub server_id: u32,
    /// GTID of the transaction, when the server logs GTIDs.
    pub gtid: Option<Gtid>,
    /// XID of an InnoDB commit, if any.
    pub xid: Option<u64>,
    /// Binlog file holding the transaction.
    pub file: Arc<str>,
    /// Offset where the transaction starts (its GTID or BEGIN event).
    pub start_pos: u64,
    /// Commit time, microseconds since the epoch (see docs/ARCHITECTURE.md, "Commit timestamps").
    pub commit_ts_us: i64,
    /// How `commit_ts_us` was obtained.
    pub ts_source: TsSource,
    /// 0 for the first fragment.
    pub fragment: u32,
    /// True on the fragment that ends the transaction.
    pub last: bool,
    /// True for a standalone statement (DDL) rather than a row transaction.
    pub ddl: bool,
    pub changes: Vec<Change>,
    /// Resume point after this transaction (last fragment only).
    pub checkpoint: Option<Checkpoint>,
    /// Rows events the reader left undecoded (only the journal's reader does, for
    /// rows it does not need: `reader::assembler`, "What the journal's reader leaves
    /// undecoded"); 0 everywhere else.
    pub skipped_rows: u32,
}

/// Where a commit timestamp came from; see docs/ARCHITECTURE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsSource {
    /// MySQL 8 `original_commit_timestamp` (microseconds, set by the originating server).
    OriginalCommit,
    /// Binlog event header second refined by the reader's clock while live.
    ArrivalRefined,
    /// Binlog event header, whole seconds only (offline, or caught-up time unknown).
    HeaderSeconds,
}

impl Transaction {
    /// A complete one-fragment transaction of zone `a` with `changes` (unit tests).
    #[cfg(test)]
    pub fn sample(ts_source: TsSource, commit_ts_us: i64, changes: Vec<Change>) -> Transaction {
        Transaction {
            zone: "a".into(),
            server_id: 1,
            gtid: None,
            xid: None,
            file: "f".into(),
            start_pos: 4,
            commit_ts_us,
            ts_source,
            fragment: 0,
            last: true,
            ddl: false,
            changes,
            checkpoint: None,
            skipped_rows: 0,
        }
    }

    pub fn row_count(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Row(_))).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written date/time formatting equals the formatter's.
        #[test]
        fn fast_datetime_formatting_matches_format(
            y in 0u16..10000, mo in 0u8..13, d in 0u8..32, h in 0u8..24, mi in 0u8..60, s in 0u8..60,
            us in 0u32..1_000_000, fsp in 0u8..7,
        ) {
            let mut expected = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            if fsp > 0 {
                expected.push('.');
                expected.push_str(&format!("{us:06}")[..fsp as usize]);
            }
            prop_assert_eq!(format_datetime(y, mo, d, h, mi, s, us, fsp), expected);
            prop_assert_eq!(format_date(y, mo, d), format!("{y:04}-{mo:02}-{d:02}"));
        }
    }
}

/// A transaction fragment as a transport delivered it to an applier: with the
/// transport's own position when it has one (Kafka), stored with the rows.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub tx: Transaction,
    pub transport: Option<crate::position::KafkaPosition>,
}

impl From<Transaction> for Delivered {
    fn from(tx: Transaction) -> Delivered {
        Delivered { tx, transport: None }
    }
}
