//! Heartbeats: every daemon writes one row into its own zone every
//! `[replication] heartbeat_ms` (default 1,000 ms) — through the real binlog, like any
//! application write — so every peer measures the end-to-end lag continuously, even
//! with no user traffic, and `drc wait --drained` has a sync point to wait for.
//!
//! Row `drc.heartbeat` keyed by the channel key of the writing zone: `seq` +1 per
//! write, `ts_us` the writer's clock, `lags` the lags the writer measured last per
//! origin zone (JSON), from which the peers estimate the clock skew between zones.
//! The applier of a peer applies a heartbeat as a small applier transaction that
//! moves its stored position and records `hb_seq` in `drc.applied` (it does not count
//! as an applied transaction).

use crate::error::Error;
use crate::telemetry::metrics as m;
use crate::telemetry::status::{now_us, registry};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Writes one heartbeat for `key` (`zone` or `zone/channel`); returns its sequence.
pub async fn beat(conn: &mut mysql_async::Conn, key: &str, lags: &str) -> Result<u64, mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    conn.exec_drop(
        "INSERT INTO `drc`.`heartbeat` (origin_zone, seq, ts_us, lags) VALUES (?, 1, ?, ?) \
         ON DUPLICATE KEY UPDATE seq = seq + 1, ts_us = VALUES(ts_us), lags = VALUES(lags)",
        (key, now_us(), lags),
    )
    .await?;
    let seq: Option<u64> = conn
        .exec_first("SELECT seq FROM `drc`.`heartbeat` WHERE origin_zone = ?", (key,))
        .await?;
    conn.query_drop("COMMIT").await?;
    Ok(seq.unwrap_or(0))
}

/// The daemon's heartbeat writer: runs until `shutdown`; reconnects by itself.
pub async fn run(
    opts: mysql_async::Opts,
    zone: String,
    key: String,
    every: Duration,
    shutdown: crate::pipeline::Shutdown,
) -> Result<(), Error> {
    let mut conn: Option<mysql_async::Conn> = None;
    let mut failing = false;
    let warnings = crate::telemetry::ratelimit::RateLimitedLog::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return Ok(()),
        }
        let lags = serde_json::to_string(&registry().lags()).expect("lags serialize");
        let r = async {
            if conn.is_none() {
                conn = Some(mysql_async::Conn::new(opts.clone()).await?);
            }
            beat(conn.as_mut().expect("connected"), &key, &lags).await
        }
        .await;
        match r {
            Ok(_) => {
                metrics::counter!(m::HEARTBEATS_WRITTEN, "zone" => zone.clone()).increment(1);
                if std::mem::take(&mut failing) {
                    tracing::info!(zone, "heartbeats written again");
                }
            }
            Err(e) => {
                conn = None;
                failing = true;
                if let Some(repeats) = warnings.allow("heartbeat") {
                    tracing::warn!(zone, error = %e, repeats, "cannot write the heartbeat into this zone's server; lag is not measured meanwhile");
                }
            }
        }
    }
}
