//! The transaction encoding, version 1: one transaction fragment as a JSON object,
//! what `drc.parked` stores and what a Kafka message carries. Described by
//! `schemas/kafka_message.v1.json`. Headers carry `drc-format` and `drc-zone`, so a
//! consumer can refuse a format it does not know:
//!
//! * `json/1` ([`FORMAT`]): the message is one fragment.
//! * `json/2` ([`FORMAT_BATCH`]): the message is two or more whole transactions
//!   (single-fragment ones), each a `json/1` object, separated by one newline (`\n`;
//!   compact JSON has none inside an object), in commit order. The publisher batches
//!   while it is behind; a transaction of several fragments always travels as
//!   `json/1` messages, one per fragment. Consumers read both.
//!
//! Values use the change-event encoding (`schemas/change_event.v1.json`): decoding
//! restores what the applier needs to write the same bytes (numbers, strings,
//! `{"base64"}` binary, `{"json_diff"}`), not the column types, which the target
//! table supplies.

use crate::model::{Change, Op, RowChange, RowImage, Statement, Transaction, TsSource, Value};
use crate::position::{Checkpoint, Gtid};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const FORMAT: &str = "json/1";
/// Several whole transactions in one message (see the module doc).
pub const FORMAT_BATCH: &str = "json/2";

/// A fragment as written: borrows the transaction (no copy of its values).
#[derive(Serialize)]
struct WireTxOut<'a> {
    v: u32,
    zone: &'a str,
    server_id: u32,
    gtid: &'a Option<Gtid>,
    xid: Option<u64>,
    file: &'a str,
    start_pos: u64,
    commit_ts_us: i64,
    ts_source: TsSource,
    fragment: u32,
    last: bool,
    ddl: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: &'a Option<Checkpoint>,
    changes: Vec<WireChangeOut<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum WireChangeOut<'a> {
    Row {
        db: &'a str,
        table: &'a str,
        op: Op,
        pk: &'a [Arc<str>],
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<ImageOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<ImageOut<'a>>,
        pos: u64,
        ts: u32,
    },
    Statement {
        db: &'a str,
        sql: &'a str,
        pos: u64,
        ts: u32,
    },
}

/// A row image written as a JSON object column → value, straight from the image.
struct ImageOut<'a>(&'a RowImage);

impl Serialize for ImageOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.values.len()))?;
        for (c, v) in self.0.columns.iter().zip(&self.0.values) {
            m.serialize_entry(&**c, v)?;
        }
        m.end()
    }
}

/// A fragment as read. A change is read as one struct whose fields depend on its
/// `kind` (serde's tagged enums would buffer every change before reading it).
#[derive(Deserialize)]
struct WireTxIn {
    v: u32,
    zone: String,
    server_id: u32,
    gtid: Option<Gtid>,
    xid: Option<u64>,
    file: String,
    start_pos: u64,
    commit_ts_us: i64,
    ts_source: TsSource,
    fragment: u32,
    last: bool,
    ddl: bool,
    #[serde(default)]
    checkpoint: Option<Checkpoint>,
    changes: Vec<WireChangeIn>,
}

#[derive(Deserialize)]
struct WireChangeIn {
    kind: String,
    db: String,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    op: Option<Op>,
    #[serde(default)]
    pk: Option<Vec<String>>,
    #[serde(default)]
    before: Option<ImageIn>,
    #[serde(default)]
    after: Option<ImageIn>,
    #[serde(default)]
    sql: Option<String>,
    pos: u64,
    ts: u32,
}

/// A row image read from its JSON object. Consecutive images of one table share
/// their column list (the previous one is reused when the names are the same).
struct ImageIn(RowImage);

thread_local! {
    static LAST_COLUMNS: std::cell::RefCell<Arc<[Arc<str>]>> = std::cell::RefCell::new(Arc::from(Vec::new()));
}

impl<'de> Deserialize<'de> for ImageIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ImageIn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a row image (an object of column values)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<ImageIn, A::Error> {
                let last = LAST_COLUMNS.with(|l| l.borrow().clone());
                let mut names: Vec<Arc<str>> = Vec::with_capacity(last.len());
                let mut values = Vec::with_capacity(last.len());
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    let v: serde_json::Value = m.next_value()?;
                    let i = names.len();
                    names.push(match last.get(i) {
                        Some(c) if **c == *k => c.clone(),
                        _ => Arc::from(&*k),
                    });
                    values.push(value_in(v).map_err(|e| serde::de::Error::custom(format!("column {k}: {e}")))?);
                }
                let columns: Arc<[Arc<str>]> =
                    if names.len() == last.len() && names.iter().zip(last.iter()).all(|(a, b)| Arc::ptr_eq(a, b)) {
                        last
                    } else {
                        let c: Arc<[Arc<str>]> = names.into();
                        LAST_COLUMNS.with(|l| *l.borrow_mut() = c.clone());
                        c
                    };
                Ok(ImageIn(RowImage {
                    columns,
                    positions: None,
                    values,
                }))
            }
        }
        d.deserialize_map(V)
    }
}

/// JSON back to a [`Value`] the applier can bind.
pub fn value_in(v: serde_json::Value) -> Result<Value, String> {
    use base64::Engine;
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Int(b as i64),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Double(n.as_f64().ok_or("number out of range")?)
            }
        }
        serde_json::Value::String(s) => Value::Text(s),
        serde_json::Value::Object(mut o) => {
            if let Some(serde_json::Value::String(b)) = o.remove("base64") {
                Value::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| e.to_string())?,
                )
            } else if let Some(d) = o.remove("json_diff") {
                Value::JsonDiff(Box::new(d))
            } else {
                return Err("unknown object value".into());
            }
        }
        serde_json::Value::Array(_) => return Err("unexpected array value".into()),
    })
}

/// Encodes one fragment.
pub fn encode(tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(tx, &mut out);
    out
}

/// Appends one fragment's encoding to `out` (a `json/2` message is built so).
pub fn encode_into(tx: &Transaction, out: &mut Vec<u8>) {
    let w = WireTxOut {
        v: 1,
        zone: &tx.zone,
        server_id: tx.server_id,
        gtid: &tx.gtid,
        xid: tx.xid,
        file: &tx.file,
        start_pos: tx.start_pos,
        commit_ts_us: tx.commit_ts_us,
        ts_source: tx.ts_source,
        fragment: tx.fragment,
        last: tx.last,
        ddl: tx.ddl,
        checkpoint: &tx.checkpoint,
        changes: tx
            .changes
            .iter()
            .map(|c| match c {
                Change::Row(r) => WireChangeOut::Row {
                    db: &r.db,
                    table: &r.table,
                    op: r.op,
                    pk: &r.pk,
                    before: r.before.as_ref().map(ImageOut),
                    after: r.after.as_ref().map(ImageOut),
                    pos: r.pos,
                    ts: r.ts,
                },
                Change::Statement(s) => WireChangeOut::Statement {
                    db: &s.db,
                    sql: &s.sql,
                    pos: s.pos,
                    ts: s.ts,
                },
            })
            .collect(),
    };
    serde_json::to_writer(out, &w).expect("message serializes")
}

/// Decodes a `json/2` message: its transactions in order. An error names the
/// transaction (its index in the message) that is wrong.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Transaction>, String> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| decode(line).map_err(|e| format!("transaction {i} of the message: {e}")))
        .collect()
}

/// Decodes one fragment; an error names what is wrong (the message is poison: the
/// consumer stops rather than skip it).
pub fn decode(bytes: &[u8]) -> Result<Transaction, String> {
    let w: WireTxIn = serde_json::from_slice(bytes).map_err(|e| format!("not a drc json/1 message: {e}"))?;
    if w.v != 1 {
        return Err(format!("message format version {} (this drc reads 1)", w.v));
    }
    let mut changes = Vec::with_capacity(w.changes.len());
    for c in w.changes {
        let missing = |f: &str| format!("{} change without `{f}`", c.kind);
        changes.push(match c.kind.as_str() {
            "row" => Change::Row(RowChange {
                table: c.table.clone().ok_or_else(|| missing("table"))?.into(),
                op: c.op.ok_or_else(|| missing("op"))?,
                pk: c
                    .pk
                    .as_ref()
                    .ok_or_else(|| missing("pk"))?
                    .iter()
                    .map(|p| Arc::<str>::from(p.as_str()))
                    .collect(),
                db: c.db.into(),
                before: c.before.map(|i| i.0),
                after: c.after.map(|i| i.0),
                pos: c.pos,
                ts: c.ts,
            }),
            "statement" => Change::Statement(Statement {
                sql: c.sql.clone().ok_or_else(|| missing("sql"))?,
                db: c.db,
                pos: c.pos,
                ts: c.ts,
            }),
            other => return Err(format!("unknown change kind {other:?}")),
        });
    }
    Ok(Transaction {
        zone: w.zone.into(),
        server_id: w.server_id,
        gtid: w.gtid,
        xid: w.xid,
        file: w.file.into(),
        start_pos: w.start_pos,
        commit_ts_us: w.commit_ts_us,
        ts_source: w.ts_source,
        fragment: w.fragment,
        last: w.last,
        ddl: w.ddl,
        changes,
        checkpoint: w.checkpoint,
        skipped_rows: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::{FilePos, GtidState};

    fn sample() -> Transaction {
        let cols: Arc<[Arc<str>]> = vec![Arc::from("id"), Arc::from("b"), Arc::from("t"), Arc::from("n")].into();
        Transaction {
            zone: "a".into(),
            server_id: 1,
            gtid: Some("1-1-7".parse().unwrap()),
            xid: Some(9),
            file: "bin.000001".into(),
            start_pos: 100,
            commit_ts_us: 1_700_000_000_123_456,
            ts_source: TsSource::ArrivalRefined,
            fragment: 0,
            last: true,
            ddl: false,
            changes: vec![
                Change::Row(RowChange {
                    db: "shop".into(),
                    table: "t".into(),
                    op: Op::Update,
                    pk: vec![Arc::from("id")].into(),
                    before: Some(RowImage {
                        columns: cols.clone(),
                        positions: None,
                        values: vec![
                            Value::Int(-5),
                            Value::Bytes(vec![0, 255]),
                            Value::Text("é".into()),
                            Value::Null,
                        ],
                    }),
                    after: Some(RowImage {
                        columns: cols,
                        positions: None,
                        values: vec![
                            Value::Int(-5),
                            Value::Bytes(vec![1]),
                            Value::Text("x".into()),
                            Value::UInt(u64::MAX),
                        ],
                    }),
                    pos: 300,
                    ts: 17,
                }),
                Change::Statement(Statement {
                    db: "shop".into(),
                    sql: "SAVEPOINT x".into(),
                    pos: 310,
                    ts: 17,
                }),
            ],
            checkpoint: Some(Checkpoint {
                file: FilePos::new("bin.000001", 400),
                gtid: Some(GtidState::Mariadb("1-1-7".parse().unwrap())),
            }),
            skipped_rows: 0,
        }
    }

    #[test]
    fn roundtrip() {
        let tx = sample();
        let back = decode(&encode(&tx)).unwrap();
        assert_eq!(back, tx);
    }

    /// A `json/2` message: its transactions back in order, even with newlines and
    /// multi-byte text inside values; a bad one is named by its index.
    #[test]
    fn batches_roundtrip_and_name_a_bad_transaction() {
        let mut second = sample();
        if let Change::Row(r) = &mut second.changes[0] {
            r.after.as_mut().unwrap().values[1] = Value::Text("line1\nline2 日本".into());
        }
        second.start_pos += 100;
        let mut msg = encode(&sample());
        msg.push(b'\n');
        encode_into(&second, &mut msg);
        assert_eq!(msg.iter().filter(|&&b| b == b'\n').count(), 1, "one separator");
        assert_eq!(decode_batch(&msg).unwrap(), vec![sample(), second]);
        msg.extend_from_slice(b"\n{\"v\":1}");
        let e = decode_batch(&msg).unwrap_err();
        assert!(e.starts_with("transaction 2 of the message"), "{e}");
    }

    /// The JSON is the documented one (`schemas/kafka_message.v1.json`), written
    /// straight from the images: compare with the values' own JSON, key by key.
    #[test]
    fn images_are_objects_of_change_event_values() {
        let tx = sample();
        let v: serde_json::Value = serde_json::from_slice(&encode(&tx)).unwrap();
        let Change::Row(r) = &tx.changes[0] else { unreachable!() };
        let after = r.after.as_ref().unwrap();
        let expected: serde_json::Map<String, serde_json::Value> = after
            .columns
            .iter()
            .zip(&after.values)
            .map(|(c, v)| (c.to_string(), serde_json::to_value(v).unwrap()))
            .collect();
        assert_eq!(v["changes"][0]["after"], serde_json::Value::Object(expected));
        assert_eq!(v["changes"][0]["kind"], "row");
        assert_eq!(v["changes"][1]["kind"], "statement");
        assert_eq!(v["changes"][1]["sql"], "SAVEPOINT x");
    }

    /// Column lists are shared between consecutive images of one table, never
    /// carried over to another table's image.
    #[test]
    fn images_of_different_tables_keep_their_columns() {
        let mut tx = sample();
        let Change::Row(first) = tx.changes[0].clone() else {
            unreachable!()
        };
        let other = RowChange {
            table: "u".into(),
            op: Op::Insert,
            before: None,
            after: Some(RowImage {
                columns: vec![Arc::from("id"), Arc::from("z")].into(),
                positions: None,
                values: vec![Value::Int(1), Value::Text("z".into())],
            }),
            ..first.clone()
        };
        tx.changes = vec![Change::Row(first.clone()), Change::Row(other), Change::Row(first)];
        assert_eq!(decode(&encode(&tx)).unwrap(), tx);
        // and across messages
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut v: serde_json::Value = serde_json::from_slice(&encode(&sample())).unwrap();
        v["v"] = 2.into();
        assert!(decode(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .contains("version 2"));
        assert!(decode(b"not json").unwrap_err().contains("not a drc json/1 message"));
    }
}
