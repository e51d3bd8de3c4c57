//! Runs of new rows written with `LOAD DATA LOCAL INFILE` instead of a multi-row
//! `INSERT` of bound parameters: the server parses tab-separated text far more
//! cheaply than it binds thousands of parameters (1,000,000 rows of 4 columns here:
//! 1.2-1.4 CPU-s against 2.0-2.2; docs/BENCHMARKS.md, "Apply catch-up").
//!
//! Same contract as [`Applier::write_rows`] without `update` columns: `Ok(true)` when
//! every row was inserted, `Ok(false)` when the statement did nothing because a key
//! exists here (the caller's full path decides those rows). Invariants:
//! * only values with an exact text form are loaded (no binary data, BIT, label-less
//!   ENUM/SET, partial JSON); a run holding any other goes as an `INSERT`;
//! * `LOCAL` makes the server turn errors into warnings (a duplicate key skips the
//!   row, a value too long is cut): the load runs under a savepoint, and unless it
//!   inserted every row with no warning it is rolled back and the same rows go as an
//!   `INSERT`, which fails, or succeeds, exactly as before;
//! * used only when the server allows it (`@@local_infile`, MariaDB's default; MySQL
//!   8's default is OFF); the value is read once per session, and a server that
//!   refuses (1148, 3948) turns it off for the session.

use super::*;
use crate::model::Value;
use futures_util::StreamExt;

/// The savepoint a load runs under, and its undoing.
const SAVEPOINT: &str = "SAVEPOINT drc_load";
const ROLLBACK: &str = "ROLLBACK TO SAVEPOINT drc_load";
/// Rows per chunk of load text handed to the server.
const LOAD_CHUNK_ROWS: usize = 1_000;
/// Fewer rows than this go as an `INSERT`: a load's two more round trips (savepoint,
/// the server's request for the data) cost more than it saves on a few rows.
const LOAD_MIN_ROWS: usize = 100;

impl Applier {
    /// Inserts `images` (new keys) into `t`: a load when possible, else a multi-row
    /// `INSERT` ([`Applier::write_rows`]).
    pub(super) async fn insert_rows(
        &mut self,
        t: &LocalTable,
        images: &[&RowImage],
        changes: u64,
    ) -> Result<bool, Error> {
        if images.len() >= LOAD_MIN_ROWS
            && images.iter().all(|i| i.values.iter().all(has_text_form))
            && self.load_allowed().await?
            && self.load(t, images).await?
        {
            self.stats.rows += changes;
            self.uncommitted.batched_rows += changes;
            self.uncommitted.loaded_rows += changes;
            return Ok(true);
        }
        self.write_rows(t, images, &[], changes).await
    }

    /// Whether this server takes `LOAD DATA LOCAL` (read once per session).
    async fn load_allowed(&mut self) -> Result<bool, Error> {
        if let Some(allowed) = self.local_infile {
            return Ok(allowed);
        }
        let on: Option<i64> = self
            .conn
            .query_first("SELECT @@local_infile")
            .await
            .map_err(|e| mysql_err(&self.s, "reading @@local_infile", e))?;
        let allowed = on == Some(1);
        if !allowed {
            tracing::info!(server = %self.s.addr, "local_infile is OFF here: runs of new rows are written with multi-row INSERTs (SET GLOBAL local_infile = 1 lets drc load them, which costs this server less)");
        }
        self.local_infile = Some(allowed);
        Ok(allowed)
    }

    /// Loads `images` (every value with a text form) into `t` under a savepoint; true
    /// when all went in with no warning, else undone. The text is built in chunks of
    /// [`LOAD_CHUNK_ROWS`] while the server reads the ones before (a channel of two
    /// chunks between this task's builder and mysql_async's infile stream), so drc's
    /// work and the server's overlap.
    async fn load(&mut self, t: &LocalTable, images: &[&RowImage]) -> Result<bool, Error> {
        let rows = images.len();
        let m = |s: &ApplierSettings, e| mysql_err(s, &format!("loading rows into `{}`.`{}`", t.db, t.tbl), e);
        self.savepoint(SAVEPOINT).await?;
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "LOAD DATA LOCAL INFILE 'drc' INTO TABLE {} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
            t.qualified(),
            cols.join(", ")
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        self.conn.set_infile_handler(async move { Ok(stream.boxed()) });
        let build = async move {
            for chunk in images.chunks(LOAD_CHUNK_ROWS) {
                let text = load_text(chunk).expect("checked: every value has a text form");
                if tx.send(Ok(bytes::Bytes::from(text))).await.is_err() {
                    break; // the server stopped reading
                }
            }
        };
        // the statement's end ends the builder too (a server that refuses the load
        // never reads the channel)
        let result = {
            let query = self.conn.query_drop(sql);
            tokio::pin!(query, build);
            let mut built = false;
            loop {
                tokio::select! {
                    r = &mut query => break r,
                    () = &mut build, if !built => built = true,
                }
            }
        };
        match result {
            Ok(()) if self.conn.affected_rows() == rows as u64 && self.conn.get_warnings() == 0 => Ok(true),
            Ok(()) => {
                self.savepoint(ROLLBACK).await?;
                Ok(false)
            }
            // the server does not take it after all: INSERTs from now on
            Err(mysql_async::Error::Server(e)) if e.code == 1148 || e.code == 3948 => {
                tracing::info!(server = %self.s.addr, error = %e.message, "LOAD DATA LOCAL refused: runs of new rows are written with multi-row INSERTs");
                self.local_infile = Some(false);
                Ok(false)
            }
            Err(e) => Err(m(&self.s, e)),
        }
    }
}

/// Whether `v` has an exact text form in [`load_text`].
fn has_text_form(v: &Value) -> bool {
    match v {
        Value::Float(f) => f.is_finite(),
        Value::Double(d) => d.is_finite(),
        Value::Enum { label, .. } => label.is_some(),
        Value::Set { labels, .. } => labels.is_some(),
        Value::Bytes(_) | Value::Bit { .. } | Value::JsonDiff(_) => false,
        _ => true,
    }
}

/// The rows as `LOAD DATA` text (tab between fields, newline after each row, `\N`
/// for NULL, backslash escapes), or None when a value has no exact text form.
pub(super) fn load_text(images: &[&RowImage]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(images.iter().map(|i| i.values.len() * 12).sum());
    for img in images {
        for (k, v) in img.values.iter().enumerate() {
            if k > 0 {
                out.push(b'\t');
            }
            match v {
                Value::Null => out.extend_from_slice(b"\\N"),
                Value::Int(i) => write!(out, "{i}").ok()?,
                Value::UInt(u) => write!(out, "{u}").ok()?,
                // shortest text that reads back as the same number
                Value::Float(f) if f.is_finite() => write!(out, "{f}").ok()?,
                Value::Double(d) if d.is_finite() => write!(out, "{d}").ok()?,
                Value::Year(y) => write!(out, "{y}").ok()?,
                Value::Timestamp { secs, micros, fsp } => {
                    out.extend_from_slice(Value::timestamp_text(*secs, *micros, (*fsp).max(6)).as_bytes())
                }
                Value::Enum { label: Some(l), .. } | Value::Set { labels: Some(l), .. } => escape(&mut out, l),
                Value::Decimal(t)
                | Value::Date(t)
                | Value::DateTime(t)
                | Value::Time(t)
                | Value::Text(t)
                | Value::Json(t) => escape(&mut out, t),
                _ => return None,
            }
        }
        out.push(b'\n');
    }
    Some(out)
}

/// Appends `s` with the characters `LOAD DATA` reads specially escaped.
fn escape(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn image(values: Vec<Value>) -> RowImage {
        RowImage {
            columns: Arc::from(vec![]),
            positions: None,
            values,
        }
    }

    #[test]
    fn rows_become_escaped_text() {
        let a = image(vec![
            Value::Int(-1),
            Value::Text("tab\there\nnew \\ line\r\0".into()),
            Value::Null,
            Value::Text("\\N".into()),
        ]);
        let b = image(vec![
            Value::UInt(2),
            Value::Decimal("1.50".into()),
            Value::DateTime("2026-12-07 10:00:00.000001".into()),
            Value::Json(r#"{"a":"\"q\""}"#.into()),
        ]);
        let text = load_text(&[&a, &b]).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "-1\ttab\\there\\nnew \\\\ line\\r\\0\t\\N\t\\\\N\n2\t1.50\t2026-12-07 10:00:00.000001\t{\"a\":\"\\\\\"q\\\\\"\"}\n"
        );
    }

    #[test]
    fn values_without_an_exact_text_form_are_not_loaded() {
        for v in [
            Value::Bytes(vec![0xff]),
            Value::Bit { value: 1, width: 1 },
            Value::Enum { index: 1, label: None },
            Value::Double(f64::NAN),
        ] {
            assert!(!has_text_form(&v));
            assert!(load_text(&[&image(vec![Value::Int(1), v])]).is_none());
        }
        // the up-front check and the text builder agree on every kind of value
        for v in [
            Value::Null,
            Value::Int(1),
            Value::UInt(1),
            Value::Float(1.0),
            Value::Float(f32::INFINITY),
            Value::Double(1.0),
            Value::Decimal("1.0".into()),
            Value::Year(2026),
            Value::Date("2026-12-07".into()),
            Value::DateTime("2026-12-07 00:00:00".into()),
            Value::Time("-01:00:00".into()),
            Value::Timestamp {
                secs: 1,
                micros: 2,
                fsp: 6,
            },
            Value::Bit { value: 1, width: 1 },
            Value::Enum {
                index: 1,
                label: Some("a".into()),
            },
            Value::Enum { index: 1, label: None },
            Value::Set {
                mask: 1,
                labels: Some("a".into()),
            },
            Value::Set { mask: 1, labels: None },
            Value::Text("t".into()),
            Value::Bytes(vec![1]),
            Value::Json("{}".into()),
            Value::JsonDiff(Box::new(serde_json::json!([]))),
        ] {
            assert_eq!(
                has_text_form(&v),
                load_text(&[&image(vec![v.clone()])]).is_some(),
                "{v:?}"
            );
        }
        let f = image(vec![Value::Float(0.1), Value::Double(1e300)]);
        let text = String::from_utf8(load_text(&[&f]).unwrap()).unwrap();
        let (a, b) = text.trim_end().split_once('\t').unwrap();
        assert_eq!(a.parse::<f32>().unwrap(), 0.1f32);
        assert_eq!(b.parse::<f64>().unwrap(), 1e300);
    }
}
