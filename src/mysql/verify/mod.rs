//! `drc verify`: do two zones hold the same rows? Compared inside the servers, while
//! replication runs (docs/ARCHITECTURE.md, "Verify, repair, seed").
//!
//! # How
//! * A table is cut into chunks along its primary key; the boundaries are read from
//!   the first zone (an index range scan: `ORDER BY pk LIMIT 1 OFFSET n-1`), the chunk
//!   size adapted to about [`Options::chunk_ms`] per chunk.
//! * Each server computes, over the same key range, the row count and the XOR of the
//!   MD5 of every row ([`sql::row_md5`], as two 64-bit halves): three numbers per chunk
//!   cross the network, never the rows.
//! * A chunk that differs is narrowed to its keys: (key, row MD5) of both servers.
//! * Every differing key is read again after replication caught up both ways
//!   ([`crate::mysql::drain`]): a key that agrees now was in flight; a key whose row
//!   hashes did not move in either zone through two such re-reads differs for good
//!   (the second covers what a zone's journal writes after the write it follows); one
//!   still moving is read again after another drain, up to [`Options::rounds`], and
//!   is reported as *unsettled* if it never holds still.
//!
//! # Invariants
//! * Nothing is written to the application's tables; the only writes are the sync
//!   heartbeats in `drc.heartbeat` (the drain).
//! * Both servers evaluate the same SQL over the same key range, in sessions with the
//!   same time zone (`+00:00`), so equal rows hash equal.

pub mod repair;
pub mod seed;
pub mod sql;

use crate::mysql::applier::table::LocalTable;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One zone's server.
pub struct Side {
    pub zone: String,
    pub addr: String,
    pub conn: Conn,
    /// The drain key of this zone as an origin (`zone` or `zone/channel`).
    pub key: String,
}

impl Side {
    /// Connects to a zone's server for verifying (session time zone `+00:00`, so
    /// TIMESTAMP columns read the same in both zones).
    pub async fn connect(
        zone: &str,
        addr: &str,
        opts: mysql_async::Opts,
        key: String,
    ) -> Result<Side, mysql_async::Error> {
        let mut conn = Conn::new(opts).await?;
        conn.query_drop("SET time_zone = '+00:00'").await?;
        conn.query_drop("SET NAMES utf8mb4").await?;
        Ok(Side {
            zone: zone.to_string(),
            addr: addr.to_string(),
            conn,
            key,
        })
    }
}

/// A primary key's values, in key order.
pub type Key = Vec<Value>;

/// A key whose rows differ: the MD5 of its row in each zone (`None`: no row).
#[derive(Debug, Clone)]
pub struct KeyDiff {
    pub key: Key,
    pub a: Option<String>,
    pub b: Option<String>,
    /// Re-checks in a row that found both rows unchanged.
    pub stable: u32,
}

impl KeyDiff {
    /// `missing_in_<zone>` or `different`.
    pub fn kind(&self, a: &str, b: &str) -> String {
        match (&self.a, &self.b) {
            (None, _) => format!("missing_in_{a}"),
            (_, None) => format!("missing_in_{b}"),
            _ => "different".into(),
        }
    }
}

/// What verifying one table found.
#[derive(Debug, Default)]
pub struct TableReport {
    /// `db.table`.
    pub table: String,
    /// The primary key's columns.
    pub pk: Vec<String>,
    /// Rows read in the first zone, and chunks compared.
    pub rows: u64,
    pub chunks: u64,
    /// Chunks that differed (narrowed to keys).
    pub chunks_differing: u64,
    /// Keys that differ for good.
    pub differences: Vec<KeyDiff>,
    /// Keys that kept changing through every re-check.
    pub unsettled: Vec<KeyDiff>,
    /// The table could not be compared: missing in a zone, or other columns (a
    /// schema change in progress). Counts as a difference.
    pub not_compared: Option<String>,
    /// Its definition (the same in both zones), when it was compared.
    pub definition: Option<LocalTable>,
}

/// How to verify.
#[derive(Debug, Clone)]
pub struct Options {
    /// Target time of one chunk's checksum (ms).
    pub chunk_ms: u64,
    /// Re-checks of the differing keys at most, each after a drain both ways.
    pub rounds: u32,
    /// How long a drain may wait for a zone to apply the other's sync heartbeat.
    pub settle: Duration,
}

/// Rows per chunk: the first chunk's, and the bounds of the adaptation.
const FIRST_CHUNK: u64 = 1_000;
const MIN_CHUNK: u64 = 100;
const MAX_CHUNK: u64 = 200_000;
/// Re-checks in a row a differing key must be found unchanged in both zones to count.
const STABLE: u32 = 2;
/// Keys per re-check query.
const KEYS_PER_QUERY: usize = 500;

/// Called as the comparison goes.
pub trait Progress {
    /// A table starts; `estimate`: its rows by the server's statistics.
    fn table(&mut self, table: &str, estimate: u64);
    /// `rows` more rows compared.
    fn rows(&mut self, rows: u64);
    /// A drain waited without the other zone applying the heartbeat (its daemon is
    /// not running?).
    fn not_drained(&mut self, from: &str, to: &str);
}

fn err(side: &Side, what: &str, e: mysql_async::Error) -> crate::error::Error {
    crate::mysql::error::classify(&side.addr, what, e)
}

/// Rows estimate of a table (information_schema statistics).
async fn estimate(side: &mut Side, db: &str, tbl: &str) -> u64 {
    side.conn
        .exec_first::<Option<u64>, _, _>(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, tbl),
        )
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
}

/// Compares table `db`.`tbl` between zones `a` and `b`.
pub async fn verify_table(
    a: &mut Side,
    b: &mut Side,
    db: &str,
    tbl: &str,
    version_column: &str,
    o: &Options,
    progress: &mut dyn Progress,
) -> Result<TableReport, crate::error::Error> {
    let mut report = TableReport {
        table: format!("{db}.{tbl}"),
        ..Default::default()
    };
    let ta = LocalTable::load(&mut a.conn, db, tbl, version_column)
        .await
        .map_err(|e| err(a, "reading the table's definition", e))?;
    let tb = LocalTable::load(&mut b.conn, db, tbl, version_column)
        .await
        .map_err(|e| err(b, "reading the table's definition", e))?;
    let t = match (ta, tb) {
        (None, None) => return Ok(report),
        (None, Some(_)) => {
            report.not_compared = Some(format!("missing in zone {}", a.zone));
            return Ok(report);
        }
        (Some(_), None) => {
            report.not_compared = Some(format!("missing in zone {}", b.zone));
            return Ok(report);
        }
        (Some(ta), Some(tb)) => {
            if ta.columns != tb.columns || ta.column_types != tb.column_types || ta.pk != tb.pk {
                report.not_compared = Some(format!(
                    "the definitions differ (a schema change in progress?): zone {} has columns {:?} key {:?}, zone {} has {:?} key {:?}",
                    a.zone, ta.columns, ta.pk, b.zone, tb.columns, tb.pk
                ));
                return Ok(report);
            }
            if ta.pk.is_empty() {
                report.not_compared = Some("no primary key: drc does not replicate it".into());
                return Ok(report);
            }
            ta
        }
    };
    report.pk = t.pk.clone();
    report.definition = Some(t.clone());
    progress.table(&report.table, estimate(a, db, tbl).await);
    let table = t.qualified();
    let md5 = sql::row_md5(&t.columns);
    let mut candidates: Vec<KeyDiff> = Vec::new();
    let mut lo: Option<Key> = None;
    let mut size = FIRST_CHUNK;
    loop {
        let started = Instant::now();
        let hi = boundary(a, &table, &t.pk, lo.as_ref(), size).await?;
        let (range, params) = sql::range(&t.pk, lo.as_ref(), hi.as_ref());
        let q = sql::chunk_checksum(&table, &md5, &range);
        // both servers at once
        let (ca, cb) = tokio::join!(checksum(a, &q, params.clone()), checksum(b, &q, params.clone()));
        let (ca, cb) = (ca?, cb?);
        report.chunks += 1;
        report.rows += ca.0;
        progress.rows(ca.0);
        if ca != cb {
            report.chunks_differing += 1;
            let q = sql::row_hashes(&table, &t.pk, &md5, &range);
            let (ha, hb) = tokio::join!(
                hashes(a, &q, params.clone(), t.pk.len()),
                hashes(b, &q, params, t.pk.len())
            );
            let (ha, hb) = (ha?, hb?);
            candidates.extend(differing(ha, hb));
        }
        // about `chunk_ms` per chunk (both servers' share), within bounds
        let ms = started.elapsed().as_millis().max(1) as u64;
        size = (size * o.chunk_ms / ms)
            .clamp(size / 2, size * 2)
            .clamp(MIN_CHUNK, MAX_CHUNK);
        match hi {
            Some(h) => lo = Some(h),
            None => break,
        }
    }
    let (differences, unsettled) = settle(a, b, &table, &t.pk, &md5, candidates, o, progress).await?;
    report.differences = differences;
    report.unsettled = unsettled;
    Ok(report)
}

/// (rows, MD5 XOR halves) of a chunk in one zone.
async fn checksum(side: &mut Side, q: &str, params: Vec<Value>) -> Result<(u64, u64, u64), crate::error::Error> {
    let r: Option<(u64, u64, u64)> = side
        .conn
        .exec_first(q, Params::Positional(params))
        .await
        .map_err(|e| err(side, "checksumming a chunk", e))?;
    Ok(r.unwrap_or((0, 0, 0)))
}

/// The key `n` rows after `lo` in zone `a` (the chunk's last), or `None`: the rest of
/// the table is one chunk.
async fn boundary(
    a: &mut Side,
    table: &str,
    pk: &[String],
    lo: Option<&Key>,
    n: u64,
) -> Result<Option<Key>, crate::error::Error> {
    let (range, params) = sql::range(pk, lo, None);
    let q = sql::boundary(table, pk, &range, n);
    let row: Option<Row> = a
        .conn
        .exec_first(&q, Params::Positional(params))
        .await
        .map_err(|e| err(a, "reading a chunk boundary", e))?;
    Ok(row.map(Row::unwrap))
}

/// (key text, (key, MD5)) of the rows `q` reads.
async fn hashes(
    side: &mut Side,
    q: &str,
    params: Vec<Value>,
    key_len: usize,
) -> Result<HashMap<String, (Key, String)>, crate::error::Error> {
    let rows: Vec<Row> = side
        .conn
        .exec(q, Params::Positional(params))
        .await
        .map_err(|e| err(side, "reading row hashes", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut v = r.unwrap();
            let h = match v.pop() {
                Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
                other => format!("{other:?}"),
            };
            v.truncate(key_len);
            (text(&v), (v, h))
        })
        .collect())
}

/// A key as text (map key, messages).
pub fn text(k: &Key) -> String {
    k.iter().map(|v| v.as_sql(false)).collect::<Vec<_>>().join(",")
}

/// The keys whose hashes differ between `a` and `b` (or exist in one only).
fn differing(mut a: HashMap<String, (Key, String)>, b: HashMap<String, (Key, String)>) -> Vec<KeyDiff> {
    let mut out = Vec::new();
    for (k, (key, hb)) in b {
        match a.remove(&k) {
            Some((_, ha)) if ha == hb => {}
            Some((_, ha)) => out.push(KeyDiff {
                key,
                a: Some(ha),
                b: Some(hb),
                stable: 0,
            }),
            None => out.push(KeyDiff {
                key,
                a: None,
                b: Some(hb),
                stable: 0,
            }),
        }
    }
    out.extend(a.into_values().map(|(key, ha)| KeyDiff {
        key,
        a: Some(ha),
        b: None,
        stable: 0,
    }));
    out
}

/// The current hashes of `keys` in one zone.
async fn current(
    side: &mut Side,
    table: &str,
    pk: &[String],
    md5: &str,
    keys: &[Key],
) -> Result<HashMap<String, String>, crate::error::Error> {
    let mut out = HashMap::new();
    for batch in keys.chunks(KEYS_PER_QUERY) {
        let (q, params) = sql::key_hashes(table, pk, md5, batch);
        for (k, (_, h)) in hashes(side, &q, params, pk.len()).await? {
            out.insert(k, h);
        }
    }
    Ok(out)
}

/// Re-reads the differing keys after drains both ways until each agrees, holds still
/// (a difference) or the rounds run out (unsettled).
#[allow(clippy::too_many_arguments)]
async fn settle(
    a: &mut Side,
    b: &mut Side,
    table: &str,
    pk: &[String],
    md5: &str,
    mut pending: Vec<KeyDiff>,
    o: &Options,
    progress: &mut dyn Progress,
) -> Result<(Vec<KeyDiff>, Vec<KeyDiff>), crate::error::Error> {
    let mut differences = Vec::new();
    let mut drain = true;
    for _ in 0..o.rounds {
        if pending.is_empty() {
            break;
        }
        if drain {
            // a zone whose daemon does not apply is not waited for again
            drain = drain_both(a, b, o.settle, progress).await?;
        }
        let keys: Vec<Key> = pending.iter().map(|d| d.key.clone()).collect();
        let (now_a, now_b) = tokio::join!(current(a, table, pk, md5, &keys), current(b, table, pk, md5, &keys));
        let (now_a, now_b) = (now_a?, now_b?);
        let mut next = Vec::new();
        for d in pending {
            let k = text(&d.key);
            let (ha, hb) = (now_a.get(&k).cloned(), now_b.get(&k).cloned());
            if ha == hb {
                continue;
            }
            // unchanged in both zones through STABLE drains: not in flight (nor
            // waiting for a journal's raise, which follows the write it raises)
            let stable = if ha == d.a && hb == d.b { d.stable + 1 } else { 0 };
            let d = KeyDiff {
                key: d.key,
                a: ha,
                b: hb,
                stable,
            };
            if stable >= STABLE {
                differences.push(d);
            } else {
                next.push(d);
            }
        }
        pending = next;
    }
    Ok((differences, pending))
}

/// Waits until each zone has applied everything the other committed before now;
/// `false` when one of them did not within `timeout`.
async fn drain_both(
    a: &mut Side,
    b: &mut Side,
    timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<bool, crate::error::Error> {
    let ab = drain_one(a, b, timeout, progress).await?;
    let ba = drain_one(b, a, timeout, progress).await?;
    Ok(ab && ba)
}

async fn drain_one(
    from: &mut Side,
    to: &mut Side,
    timeout: Duration,
    progress: &mut dyn Progress,
) -> Result<bool, crate::error::Error> {
    let d = crate::mysql::drain::drained(&mut from.conn, &mut to.conn, &from.key, timeout)
        .await
        .map_err(|e| err(from, "waiting for the other zone to apply a sync heartbeat", e))?;
    if !d.drained {
        progress.not_drained(&from.zone, &to.zone);
    }
    Ok(d.drained)
}
