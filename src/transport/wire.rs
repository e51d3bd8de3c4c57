//! The Kafka message format, version 1: one message per transaction fragment, JSON.
//! Described by `schemas/kafka_message.v1.json`. Headers carry `drc-format: json/1`
//! and `drc-zone`, so a consumer can refuse a format it does not know.
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

#[derive(Serialize, Deserialize)]
struct WireTx {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checkpoint: Option<Checkpoint>,
    changes: Vec<WireChange>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum WireChange {
    Row {
        db: String,
        table: String,
        op: Op,
        pk: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<serde_json::Map<String, serde_json::Value>>,
        pos: u64,
        ts: u32,
    },
    Statement {
        db: String,
        sql: String,
        pos: u64,
        ts: u32,
    },
}

fn image_out(img: &RowImage) -> serde_json::Map<String, serde_json::Value> {
    img.columns
        .iter()
        .zip(&img.values)
        .map(|(c, v)| (c.to_string(), serde_json::to_value(v).expect("value serializes")))
        .collect()
}

fn image_in(m: serde_json::Map<String, serde_json::Value>) -> Result<RowImage, String> {
    let mut cols = Vec::with_capacity(m.len());
    let mut values = Vec::with_capacity(m.len());
    for (k, v) in m {
        cols.push(Arc::<str>::from(k.as_str()));
        values.push(value_in(v).map_err(|e| format!("column {k}: {e}"))?);
    }
    Ok(RowImage {
        columns: cols.into(),
        positions: None,
        values,
    })
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
    let w = WireTx {
        v: 1,
        zone: tx.zone.to_string(),
        server_id: tx.server_id,
        gtid: tx.gtid.clone(),
        xid: tx.xid,
        file: tx.file.to_string(),
        start_pos: tx.start_pos,
        commit_ts_us: tx.commit_ts_us,
        ts_source: tx.ts_source,
        fragment: tx.fragment,
        last: tx.last,
        ddl: tx.ddl,
        checkpoint: tx.checkpoint.clone(),
        changes: tx
            .changes
            .iter()
            .map(|c| match c {
                Change::Row(r) => WireChange::Row {
                    db: r.db.to_string(),
                    table: r.table.to_string(),
                    op: r.op,
                    pk: r.pk.iter().map(|p| p.to_string()).collect(),
                    before: r.before.as_ref().map(image_out),
                    after: r.after.as_ref().map(image_out),
                    pos: r.pos,
                    ts: r.ts,
                },
                Change::Statement(s) => WireChange::Statement {
                    db: s.db.clone(),
                    sql: s.sql.clone(),
                    pos: s.pos,
                    ts: s.ts,
                },
            })
            .collect(),
    };
    serde_json::to_vec(&w).expect("message serializes")
}

/// Decodes one fragment; an error names what is wrong (the message is poison: the
/// consumer stops rather than skip it).
pub fn decode(bytes: &[u8]) -> Result<Transaction, String> {
    let w: WireTx = serde_json::from_slice(bytes).map_err(|e| format!("not a drc json/1 message: {e}"))?;
    if w.v != 1 {
        return Err(format!("message format version {} (this drc reads 1)", w.v));
    }
    let mut changes = Vec::with_capacity(w.changes.len());
    for c in w.changes {
        changes.push(match c {
            WireChange::Row {
                db,
                table,
                op,
                pk,
                before,
                after,
                pos,
                ts,
            } => Change::Row(RowChange {
                db: db.into(),
                table: table.into(),
                op,
                pk: pk.into_iter().map(|p| Arc::<str>::from(p.as_str())).collect(),
                before: before.map(image_in).transpose()?,
                after: after.map(image_in).transpose()?,
                pos,
                ts,
            }),
            WireChange::Statement { db, sql, pos, ts } => Change::Statement(Statement { db, sql, pos, ts }),
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
        }
    }

    #[test]
    fn roundtrip() {
        let tx = sample();
        let back = decode(&encode(&tx)).unwrap();
        assert_eq!(back, tx);
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
