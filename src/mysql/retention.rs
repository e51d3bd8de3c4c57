//! Retention of drc's own tables in the local server: `drc.tombstones` and
//! `drc.conflicts` would otherwise grow without bound.
//!
//! # Invariants
//! * A tombstone is dropped only when it can no longer decide anything: it is older
//!   than `tombstone_age`, and every origin this daemon applies has had changes
//!   applied here that were committed at least `tombstone_age` after it (its
//!   `drc.applied.commit_ts_us`, or its last heartbeat's `hb_ts_us`: a heartbeat is
//!   an origin transaction too, applied in order, so an idle origin moves it). Changes arrive in commit order per origin, so a
//!   change still to come from any origin was committed after that point; its
//!   version could be older than the delete only if its statement time lagged its
//!   commit by more than `tombstone_age` (or the zones' clocks by as much). An origin
//!   that has not applied anything here, or stopped (its heartbeats stop moving its
//!   commit time), holds every tombstone newer than its last applied change.
//! * A conflict entry is dropped when older than `conflict_age` (none: kept).
//! * Only rows of this daemon's databases are touched, in chunks of [`CHUNK`] rows,
//!   each its own short transaction (no long locks against the applier).
//!
//! The tables' sizes (InnoDB's row estimates) are gauges; the rows dropped are
//! counted.

use crate::error::Error;
use crate::telemetry::metrics as m;
use crate::telemetry::status::now_us;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use std::time::Duration;

/// Rows deleted per statement.
pub const CHUNK: u64 = 1_000;

/// What the retention task keeps.
#[derive(Debug, Clone)]
pub struct Retention {
    pub zone: String,
    /// Databases of this daemon (rows of other daemons' databases are theirs).
    pub databases: Vec<String>,
    /// `drc.applied` keys of every origin applied here (`a`, or `a/<channel>`).
    pub origins: Vec<String>,
    pub tombstone_age: Duration,
    /// `None`: conflict entries are kept.
    pub conflict_age: Option<Duration>,
    /// How often it runs.
    pub every: Duration,
}

/// Rows dropped by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub tombstones: u64,
    pub conflicts: u64,
}

/// The daemon's retention task: a pass every `r.every` until `shutdown`; reconnects
/// by itself (a failed pass is retried at the next).
pub async fn run(opts: mysql_async::Opts, r: Retention, shutdown: crate::pipeline::Shutdown) -> Result<(), Error> {
    if r.databases.is_empty() {
        shutdown.wait().await;
        return Ok(());
    }
    let opts = crate::mysql::applier::apply::session_opts(opts);
    let mut conn: Option<mysql_async::Conn> = None;
    let warnings = crate::telemetry::ratelimit::RateLimitedLog::default();
    let mut tick = tokio::time::interval(r.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return Ok(()),
        }
        let pass = async {
            if conn.is_none() {
                conn = Some(mysql_async::Conn::new(opts.clone()).await?);
            }
            let c = conn.as_mut().expect("connected");
            let purged = purge(c, &r, &shutdown).await?;
            report_sizes(c, &r.zone).await?;
            Ok::<_, mysql_async::Error>(purged)
        };
        match pass.await {
            Ok(p) => {
                if p != Purged::default() {
                    tracing::info!(
                        tombstones = p.tombstones,
                        conflicts = p.conflicts,
                        "retention: old rows of drc's tables dropped"
                    );
                }
            }
            Err(e) => {
                conn = None;
                if let Some(repeats) = warnings.allow("retention") {
                    tracing::warn!(error = %e, repeats, "retention of drc.tombstones / drc.conflicts failed; trying again later");
                }
            }
        }
    }
}

/// One pass: drops what the invariants allow, chunk by chunk, until nothing is left
/// or shutdown is requested.
pub async fn purge(
    c: &mut mysql_async::Conn,
    r: &Retention,
    shutdown: &crate::pipeline::Shutdown,
) -> Result<Purged, mysql_async::Error> {
    let mut purged = Purged::default();
    let dbs = vec!["?"; r.databases.len()].join(", ");
    if let Some(horizon_us) = tombstone_horizon(c, r).await? {
        let sql = format!(
            "DELETE FROM `drc`.`tombstones` WHERE db IN ({dbs}) AND deleted_at < FROM_UNIXTIME(? / 1000000) LIMIT {CHUNK}"
        );
        let p = params_before(&r.databases, horizon_us);
        purged.tombstones = purge_chunks(c, &sql, p, "tombstones", &r.zone, shutdown).await?;
    }
    if let Some(age) = r.conflict_age {
        let sql = format!(
            "DELETE FROM `drc`.`conflicts` WHERE db IN ({dbs}) AND at < FROM_UNIXTIME(? / 1000000) LIMIT {CHUNK}"
        );
        let p = params_before(&r.databases, now_us() - age.as_micros() as i64);
        purged.conflicts = purge_chunks(c, &sql, p, "conflicts", &r.zone, shutdown).await?;
    }
    Ok(purged)
}

/// The time (µs) before which tombstones can go, if any: `tombstone_age` before the
/// earliest of now and every origin's last applied commit.
async fn tombstone_horizon(c: &mut mysql_async::Conn, r: &Retention) -> Result<Option<i64>, mysql_async::Error> {
    if r.origins.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT COUNT(*), MIN(GREATEST(commit_ts_us, IFNULL(hb_ts_us, 0))) FROM `drc`.`applied` \
         WHERE origin_zone IN ({}) AND GREATEST(commit_ts_us, IFNULL(hb_ts_us, 0)) > 0",
        vec!["?"; r.origins.len()].join(", ")
    );
    let p: Vec<Value> = r.origins.iter().map(|o| Value::from(o.as_str())).collect();
    let row: Option<(u64, Option<i64>)> = c.exec_first(sql, p).await?;
    Ok(horizon(row, r.origins.len(), now_us(), r.tombstone_age))
}

/// See [`tombstone_horizon`]: `None` unless every origin has applied something.
fn horizon(applied: Option<(u64, Option<i64>)>, origins: usize, now: i64, age: Duration) -> Option<i64> {
    match applied {
        Some((n, Some(min))) if n as usize >= origins => Some(min.min(now) - age.as_micros() as i64),
        _ => None,
    }
}

/// The parameters of a purge: the databases, then the time (µs) before which rows go.
fn params_before(databases: &[String], before_us: i64) -> Vec<Value> {
    let mut p: Vec<Value> = databases.iter().map(|d| Value::from(d.as_str())).collect();
    p.push(Value::from(before_us));
    p
}

async fn purge_chunks(
    c: &mut mysql_async::Conn,
    sql: &str,
    params: Vec<Value>,
    table: &'static str,
    zone: &str,
    shutdown: &crate::pipeline::Shutdown,
) -> Result<u64, mysql_async::Error> {
    let mut total = 0;
    loop {
        c.exec_drop(sql, params.clone()).await?;
        let n = c.affected_rows();
        total += n;
        metrics::counter!(m::RETENTION_PURGED, "zone" => zone.to_string(), "table" => table).increment(n);
        if n < CHUNK || shutdown.requested() {
            return Ok(total);
        }
        // let the applier and the application in between chunks
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sizes of drc's growing tables (InnoDB's estimates), as gauges.
async fn report_sizes(c: &mut mysql_async::Conn, zone: &str) -> Result<(), mysql_async::Error> {
    let rows: Vec<(String, Option<u64>)> = c
        .query(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'drc' AND TABLE_NAME IN ('tombstones', 'conflicts')",
        )
        .await?;
    for (table, n) in rows {
        metrics::gauge!(m::DRC_TABLE_ROWS, "zone" => zone.to_string(), "table" => table).set(n.unwrap_or(0) as f64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_horizon_waits_for_every_origin() {
        let day = Duration::from_secs(86_400);
        let d = day.as_micros() as i64;
        let now = 10 * d;
        // every origin applied up to 5 days ago: tombstones older than 4 days ago... go
        assert_eq!(horizon(Some((2, Some(5 * d))), 2, now, day), Some(4 * d));
        // an origin never applied here holds them all
        assert_eq!(horizon(Some((1, Some(5 * d))), 2, now, day), None);
        assert_eq!(horizon(Some((0, None)), 1, now, day), None);
        assert_eq!(horizon(None, 1, now, day), None);
        // an origin's clock ahead of ours does not move the horizon past now - age
        assert_eq!(horizon(Some((1, Some(20 * d))), 1, now, day), Some(9 * d));
    }
}
