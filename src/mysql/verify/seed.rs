//! `drc seed`: copies tables from a source zone into this zone while the source keeps
//! taking writes, with an exact hand-over to replication and no lock held on the source.
//!
//! # Why the hand-over is exact
//! Replication from the source into this zone must already run from a position taken
//! before the first chunk is read (`drc.applied` has the source's position: the
//! daemon ran). Then every change the source commits after a chunk was read also
//! arrives through replication. The copy writes each row with the applier's rule —
//! a row replaces this zone's row only if its version is greater, and never where a
//! tombstone at or above its version says the key was deleted — and replication does
//! the same; "keep the greatest" gives the same result in any order, so a copied row
//! and the stream's change of it (or delete) meet in either order and the latest
//! stands. No low/high watermark or global lock is needed.
//!
//! # Each chunk
//! One transaction in this zone (REPEATABLE READ): the loop marker first (origin
//! `seed`, with the journal's watermark: never shipped back, and this zone's journal
//! checks its inserts against local deletes), the chunk's tombstones read `FOR UPDATE`
//! (a delete arriving meanwhile waits, then removes the copied row), rows beaten by a
//! tombstone dropped, the rest upserted (`ON DUPLICATE KEY UPDATE` taking each column
//! only when the incoming version is greater; the version column last), and the
//! progress (`drc.seed_progress`: last key, rows) — all committed together, so a seed
//! killed at any instant resumes after its last committed chunk. A chunk rolled back by
//! a deadlock or a lock wait with the applier (both lock rows and tombstones) is written
//! again. The next chunk is read from the source while this one is written.
//!
//! Equal versions with different content keep this zone's row (the applier would
//! compare content): `drc verify` / `drc repair` settle such a key. Tables without the
//! version column are copied with `INSERT IGNORE` (a row already here stays).

use super::Side;
use crate::mysql::applier::apply::LOOP_MARKER;
use crate::mysql::applier::sql::{ident, parse_decimal};
use crate::mysql::applier::table::LocalTable;
use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value};
use std::time::{Duration, Instant};

/// How to seed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// This zone's replication lag from the source above which the copy waits (ms).
    pub max_lag_ms: u64,
    /// Start the copy of each table over, ignoring recorded progress.
    pub restart: bool,
}

/// Called as the copy goes.
pub trait Progress {
    /// A table starts; `estimate`: rows in the source; `resumed`: rows copied before.
    fn table(&mut self, table: &str, estimate: u64, resumed: u64);
    fn rows(&mut self, rows: u64);
    /// The copy waits for replication to catch up (`lag_ms`).
    fn throttled(&mut self, lag_ms: u64);
}

/// What seeding one table did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TableSeed {
    pub table: String,
    /// Rows read from the source this run, and rows offered to this zone (inserted, or
    /// taken where newer than the row here).
    pub read: u64,
    pub written: u64,
    /// Rows not written: a tombstone here is newer (deleted since).
    pub deleted_since: u64,
    /// Rows copied by earlier runs (resumed after them).
    pub resumed_after: u64,
    pub seconds: f64,
}

fn err(side: &Side, what: &str, e: mysql_async::Error) -> crate::error::Error {
    crate::mysql::error::classify(&side.addr, what, e)
}

/// A key value as JSON for `drc.seed_progress`, and back (typed, so it binds as the
/// same value).
fn key_json(k: &[Value]) -> String {
    let v: Vec<serde_json::Value> = k
        .iter()
        .map(|v| match v {
            Value::Int(i) => serde_json::json!({ "int": i }),
            Value::UInt(u) => serde_json::json!({ "uint": u }),
            Value::Bytes(b) => serde_json::json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
            other => serde_json::json!({ "sql": other.as_sql(false).trim_matches('\'').to_string() }),
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

fn key_from_json(s: &str) -> Option<Vec<Value>> {
    let v: Vec<serde_json::Value> = serde_json::from_str(s).ok()?;
    v.into_iter()
        .map(|x| {
            if let Some(i) = x.get("int").and_then(|i| i.as_i64()) {
                Some(Value::Int(i))
            } else if let Some(u) = x.get("uint").and_then(|u| u.as_u64()) {
                Some(Value::UInt(u))
            } else if let Some(h) = x.get("hex").and_then(|h| h.as_str()) {
                (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
                    .map(Value::Bytes)
            } else {
                x.get("sql")
                    .and_then(|s| s.as_str())
                    .map(|s| Value::from(s.to_string()))
            }
        })
        .collect()
}

/// The source's position is already recorded here: replication from it started.
pub async fn replication_started(here: &mut Side, source_key: &str) -> Result<bool, crate::error::Error> {
    let n: Option<u64> = here
        .conn
        .exec_first(
            "SELECT COUNT(*) FROM `drc`.`applied` WHERE origin_zone = ?",
            (source_key,),
        )
        .await
        .map_err(|e| err(here, "reading drc.applied", e))?;
    Ok(n.unwrap_or(0) > 0)
}

/// This zone's replication lag from the source (ms), by the source's last heartbeat
/// applied here; `None` when none was.
async fn lag_ms(here: &mut Side, source_key: &str) -> Result<Option<u64>, crate::error::Error> {
    let ts: Option<i64> = here
        .conn
        .exec_first(
            "SELECT ts_us FROM `drc`.`heartbeat` WHERE origin_zone = ?",
            (source_key,),
        )
        .await
        .map_err(|e| err(here, "reading drc.heartbeat", e))?;
    Ok(ts.map(|t| ((crate::telemetry::status::now_us() - t).max(0) / 1000) as u64))
}

/// Seeds table `t` (the same definition in both zones) from `source` into `here`.
pub async fn seed_table(
    source: &mut Side,
    here: &mut Side,
    t: &LocalTable,
    o: &Options,
    progress: &mut dyn Progress,
) -> Result<TableSeed, crate::error::Error> {
    let started = Instant::now();
    let mut report = TableSeed {
        table: format!("{}.{}", t.db, t.tbl),
        ..Default::default()
    };
    let zone = source.zone.clone();
    if o.restart {
        here.conn
            .exec_drop(
                "DELETE FROM `drc`.`seed_progress` WHERE source_zone = ? AND db = ? AND tbl = ?",
                (&zone, &t.db, &t.tbl),
            )
            .await
            .map_err(|e| err(here, "resetting drc.seed_progress", e))?;
    }
    let recorded: Option<(Option<String>, u64, i8)> = here
        .conn
        .exec_first(
            "SELECT last_key, copied, done FROM `drc`.`seed_progress` WHERE source_zone = ? AND db = ? AND tbl = ?",
            (&zone, &t.db, &t.tbl),
        )
        .await
        .map_err(|e| err(here, "reading drc.seed_progress", e))?;
    let (mut lo, copied_before, done) = match recorded {
        Some((k, n, d)) => (k.as_deref().and_then(key_from_json), n, d != 0),
        None => (None, 0, false),
    };
    report.resumed_after = copied_before;
    if done {
        progress.table(&report.table, 0, copied_before);
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let estimate: u64 = source
        .conn
        .exec_first::<Option<u64>, _, _>(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.db, &t.tbl),
        )
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0);
    progress.table(&report.table, estimate, copied_before);
    for q in [
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        here.conn
            .query_drop(q)
            .await
            .map_err(|e| err(here, "preparing the session", e))?;
    }
    let target = Target::new(t, &zone);
    let (cols, key_pos) = (&target.cols, &target.key_pos);
    let keys: Vec<String> = t.pk.iter().map(|c| ident(c)).collect();
    let vsql = super::sql::version_text(t);
    let source_key = source.key.clone();
    let mut copied = copied_before;
    // the chunk after `lo`: its statement and parameters
    let chunk = |lo: Option<&Vec<Value>>| {
        let (range, params) = super::sql::range(&t.pk, lo, None);
        let q = format!(
            "SELECT {}{} FROM {} WHERE {range} ORDER BY {} LIMIT {}",
            cols.join(", "),
            vsql.as_ref().map(|v| format!(", {v}")).unwrap_or_default(),
            t.qualified(),
            keys.join(", "),
            o.chunk_rows
        );
        (q, params)
    };
    let versioned = vsql.is_some();
    let (q, p) = chunk(lo.as_ref());
    let mut next = read_chunk(source, &q, p, versioned).await?;
    while !next.is_empty() {
        // throttle on this zone's replication lag (it must keep up with the source)
        if o.max_lag_ms > 0 {
            let mut waited = false;
            while let Some(l) = lag_ms(here, &source_key).await? {
                if l <= o.max_lag_ms {
                    break;
                }
                if !waited {
                    progress.throttled(l);
                    waited = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let mut batch = std::mem::take(&mut next);
        let last: Vec<Value> = key_pos
            .iter()
            .map(|&i| batch.last().expect("not empty").0[i].clone())
            .collect();
        let n = batch.len() as u64;
        report.read += n;
        let more = (n as usize) >= o.chunk_rows;
        // this chunk written here while the next one is read there
        let (wrote, following) = tokio::join!(write_chunk(here, &target, &mut batch, &last, copied + n), async {
            match more {
                true => {
                    let (q, p) = chunk(Some(&last));
                    read_chunk(source, &q, p, versioned).await
                }
                false => Ok(Vec::new()),
            }
        });
        let (written, beaten) = wrote?;
        next = following?;
        report.written += written;
        report.deleted_since += beaten;
        copied += n;
        progress.rows(n);
        lo = Some(last);
    }
    here.conn
        .exec_drop(
            "INSERT INTO `drc`.`seed_progress` (source_zone, db, tbl, last_key, copied, done) VALUES (?, ?, ?, ?, ?, 1) \
             ON DUPLICATE KEY UPDATE done = 1, copied = VALUES(copied)",
            (&zone, &t.db, &t.tbl, lo.as_ref().map(|k| key_json(k)), copied),
        )
        .await
        .map_err(|e| err(here, "recording the seed's end", e))?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A chunk of the source: each row's values and version.
async fn read_chunk(
    source: &mut Side,
    q: &str,
    params: Vec<Value>,
    versioned: bool,
) -> Result<Vec<(Vec<Value>, Option<i128>)>, crate::error::Error> {
    let rows: Vec<Row> = source
        .conn
        .exec(q, Params::Positional(params))
        .await
        .map_err(|e| err(source, "reading a chunk", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut v = r.unwrap();
            let version = match versioned {
                true => match v.pop() {
                    Some(Value::Bytes(b)) => parse_decimal(&String::from_utf8_lossy(&b)),
                    _ => None,
                },
                false => None,
            };
            (v, version)
        })
        .collect())
}

/// What every chunk of one table is written with.
struct Target<'a> {
    t: &'a LocalTable,
    /// The columns quoted, the key's and the version's positions among them.
    cols: Vec<String>,
    key_pos: Vec<usize>,
    version_pos: Option<usize>,
    source_zone: &'a str,
}

impl<'a> Target<'a> {
    fn new(t: &'a LocalTable, source_zone: &'a str) -> Target<'a> {
        let position = |name: &str| t.columns.iter().position(|c| c == name);
        Target {
            t,
            cols: t.columns.iter().map(|c| ident(c)).collect(),
            key_pos: t
                .pk
                .iter()
                .map(|k| position(k).expect("key columns are columns"))
                .collect(),
            version_pos: t.version.as_deref().and_then(position),
            source_zone,
        }
    }
}

/// One chunk in one transaction (see the module doc); returns (rows written, rows
/// dropped for a newer tombstone). A deadlock or lock wait with the applier (both lock
/// rows and tombstones) rolls the chunk back whole: it is written again.
async fn write_chunk(
    here: &mut Side,
    target: &Target<'_>,
    batch: &mut Vec<(Vec<Value>, Option<i128>)>,
    last: &[Value],
    copied: u64,
) -> Result<(u64, u64), crate::error::Error> {
    let mut attempt = 0u64;
    loop {
        match chunk_once(here, target, batch, last, copied).await {
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1213 | 1205) && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            r => return r.map_err(|e| crate::mysql::error::classify(&here.addr, "writing a seed chunk", e)),
        }
    }
}

async fn chunk_once(
    here: &mut Side,
    target: &Target<'_>,
    batch: &mut Vec<(Vec<Value>, Option<i128>)>,
    last: &[Value],
    copied: u64,
) -> Result<(u64, u64), mysql_async::Error> {
    let Target {
        t,
        cols,
        key_pos,
        version_pos,
        source_zone,
    } = target;
    let version_pos = *version_pos;
    let channel = here.key.clone();
    let zone = here.zone.clone();
    let c = &mut here.conn;
    c.query_drop("START TRANSACTION").await?;
    let r = async {
        c.exec_drop(LOOP_MARKER, ("seed", &zone, &channel))
        .await?;
        let mut beaten = 0u64;
        if version_pos.is_some() {
            // the chunk's tombstones, locked: a delete of one of these keys arriving
            // now waits for this transaction, then removes the copied row
            let pk_json = t.pk_json_params();
            let list = vec![pk_json.as_str(); batch.len()].join(", ");
            let q = format!(
                "SELECT pk, CAST(version AS CHAR) FROM `drc`.`tombstones` WHERE db = ? AND tbl = ? AND pk IN ({list}) FOR UPDATE"
            );
            let mut p = vec![Value::from(&t.db), Value::from(&t.tbl)];
            for (row, _) in batch.iter() {
                p.extend(key_pos.iter().map(|&i| row[i].clone()));
            }
            let tombs: Vec<(String, String)> = c.exec(&q, Params::Positional(p)).await?;
            if !tombs.is_empty() {
                // the tombstones' key texts, as the server writes them for these rows
                let q = format!("SELECT {pk_json}");
                let mut keep = Vec::new();
                for (row, version) in batch.drain(..) {
                    let p: Vec<Value> = key_pos.iter().map(|&i| row[i].clone()).collect();
                    let text: Option<String> = c.exec_first(&q, Params::Positional(p)).await?;
                    let tomb = tombs.iter().find(|(k, _)| Some(k) == text.as_ref()).and_then(|(_, v)| parse_decimal(v));
                    match (tomb, version) {
                        (Some(tv), Some(rv)) if tv >= rv => beaten += 1,
                        _ => keep.push((row, version)),
                    }
                }
                *batch = keep;
            }
        }
        let mut written = 0u64;
        // at most ~60,000 parameters per statement
        let per = (60_000 / cols.len().max(1)).max(1);
        for part in batch.chunks(per) {
            let tuple = format!("({})", vec!["?"; cols.len()].join(", "));
            let values = vec![tuple.as_str(); part.len()].join(", ");
            let q = match version_pos {
                Some(vp) => {
                    let v = &cols[vp];
                    let newer = format!("VALUES({v}) > {v}");
                    let mut set: Vec<String> = cols
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != vp && !key_pos.contains(i))
                        .map(|(_, c)| format!("{c} = IF({newer}, VALUES({c}), {c})"))
                        .collect();
                    // the version last: the conditions above read the old one
                    set.push(format!("{v} = IF({newer}, VALUES({v}), {v})"));
                    format!(
                        "INSERT INTO {} ({}) VALUES {values} ON DUPLICATE KEY UPDATE {}",
                        t.qualified(),
                        cols.join(", "),
                        set.join(", ")
                    )
                }
                None => format!("INSERT IGNORE INTO {} ({}) VALUES {values}", t.qualified(), cols.join(", ")),
            };
            let p: Vec<Value> = part.iter().flat_map(|(row, _)| row.iter().cloned()).collect();
            c.exec_drop(&q, Params::Positional(p)).await?;
            written += part.len() as u64;
        }
        c.exec_drop(
            "INSERT INTO `drc`.`seed_progress` (source_zone, db, tbl, last_key, copied, done) VALUES (?, ?, ?, ?, ?, 0) \
             ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), copied = VALUES(copied), done = 0",
            (source_zone, &t.db, &t.tbl, key_json(last), copied),
        )
        .await?;
        Ok::<(u64, u64), mysql_async::Error>((written, beaten))
    }
    .await;
    match r {
        Ok(v) => {
            c.query_drop("COMMIT").await?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.query_drop("ROLLBACK").await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_progress_table() {
        let k = vec![Value::Int(-5), Value::UInt(u64::MAX), Value::Bytes(vec![0, 255, b'a'])];
        assert_eq!(key_from_json(&key_json(&k)), Some(k));
    }
}
