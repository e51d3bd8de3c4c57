//! JSON-lines rendering of transactions: the `change_event` v1 format.
//!
//! One object per row change or statement, in binlog order; the last line of each
//! transaction carries `"commit": true` with the commit timestamp. The format is
//! described by `schemas/change_event.v1.json` and is stable within version 1: fields
//! may be added, never renamed or removed.

use crate::model::{Change, RowImage, Transaction, TsSource};
use crate::position::Gtid;
use serde::Serialize;
use std::io::Write;

/// The version written in every line's `v` field.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Line<'a> {
    v: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    zone: &'a str,
    server_id: u32,
    gtid: Option<&'a Gtid>,
    file: &'a str,
    pos: u64,
    ts: u32,
    op: &'a str,
    db: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pk: Option<&'a [std::sync::Arc<str>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<&'a RowImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<&'a RowImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    commit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    xid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_ts_us: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts_source: Option<TsSource>,
}

/// Writes one fragment as JSON lines. Returns the number of lines written.
pub fn write_transaction<W: Write + ?Sized>(w: &mut W, tx: &Transaction) -> std::io::Result<usize> {
    let n = tx.changes.len();
    for (i, change) in tx.changes.iter().enumerate() {
        let is_commit = tx.last && i + 1 == n;
        let mut line = Line {
            v: FORMAT_VERSION,
            zone: &tx.zone,
            server_id: tx.server_id,
            gtid: tx.gtid.as_ref(),
            file: &tx.file,
            pos: 0,
            ts: 0,
            op: "",
            db: "",
            table: None,
            pk: None,
            before: None,
            after: None,
            sql: None,
            commit: is_commit,
            xid: if is_commit { tx.xid } else { None },
            commit_ts_us: is_commit.then_some(tx.commit_ts_us),
            ts_source: is_commit.then_some(tx.ts_source),
        };
        match change {
            Change::Row(r) => {
                line.pos = r.pos;
                line.ts = r.ts;
                line.op = match r.op {
                    crate::model::Op::Insert => "insert",
                    crate::model::Op::Update => "update",
                    crate::model::Op::Delete => "delete",
                };
                line.db = &r.db;
                line.table = Some(&r.table);
                line.pk = Some(&r.pk);
                line.before = r.before.as_ref();
                line.after = r.after.as_ref();
            }
            Change::Statement(s) => {
                line.pos = s.pos;
                line.ts = s.ts;
                line.op = if tx.ddl { "ddl" } else { "statement" };
                line.db = &s.db;
                line.sql = Some(&s.sql);
            }
        }
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(n)
}
