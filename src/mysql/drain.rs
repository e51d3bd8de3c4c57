//! "Has zone B applied everything zone A committed before now?" — a sync heartbeat
//! written in zone A (`drc.heartbeat`, replicated like any transaction) and waited for
//! in zone B's `drc.applied` (`hb_seq`, written by B's applier with the position).
//! Used by `drc wait --drained` (failover drills) and `drc verify` (a difference is
//! read again only after replication has caught up).

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::{Duration, Instant};

/// What a wait found: the heartbeat's sequence and the one applied in the target.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub drained: bool,
    pub target: u64,
    pub seen: u64,
}

/// Writes a sync heartbeat for `key` (the origin zone, or `zone/channel`) in `from`
/// and waits up to `timeout` until `to` has applied it.
pub async fn drained(
    from: &mut Conn,
    to: &mut Conn,
    key: &str,
    timeout: Duration,
) -> Result<Drain, mysql_async::Error> {
    let started = Instant::now();
    let target = super::heartbeat::beat(from, key, "{}").await?;
    loop {
        let seen: Option<Option<u64>> = to
            .exec_first("SELECT hb_seq FROM drc.applied WHERE origin_zone = ?", (key,))
            .await?;
        let seen = seen.flatten().unwrap_or(0);
        if seen >= target || started.elapsed() >= timeout {
            return Ok(Drain {
                drained: seen >= target,
                target,
                seen,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
