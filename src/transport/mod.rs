//! Transports: how one zone's transactions reach the appliers of the others.
//!
//! | file | role |
//! |---|---|
//! | [`direct`] | the applier's daemon reads the peer zone's binlog itself (no broker) |
//! | [`kafka`] | each daemon publishes its own zone's transactions to a topic and applies its peers' topics |
//! | [`wire`] | the versioned message format on Kafka (`schemas/kafka_message.v1.json`) |
//!
//! The contract is the reader's: a stream of [`crate::model::Transaction`] fragments
//! in commit order, restartable from a position that the applier stores in the target
//! database with the rows (a binlog [`crate::position::Checkpoint`], or a Kafka offset).

pub mod direct;
pub mod kafka;
pub mod wire;

use crate::error::Error;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Runs `session` until it ends, a definite error happens or `shutdown` turns true;
/// a transient error restarts it after a backoff (200 ms doubling to 5 s, back to
/// 200 ms after a session that ran for 30 s). Every
/// session resumes from the position stored with the applied rows, so a restart
/// neither loses nor repeats anything. `what` says in the log what was interrupted.
pub async fn restart_on_transient<F, Fut>(
    what: &str,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = std::time::Instant::now();
        let r = tokio::select! {
            r = session() => r,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        if started.elapsed() > Duration::from_secs(30) {
            // a session that ran for a while: the next failure is a new one
            backoff = Duration::from_millis(200);
        }
        match r {
            Err(e) if e.is_transient() => {
                metrics::counter!(crate::ops::metrics::RECONNECTS, "component" => what.to_string()).increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} interrupted; resuming");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// A transaction boundary: if the direction is paused, commits the applier's open
/// group (so a pause leaves everything applied committed) and waits for resume.
pub async fn pause_point(
    dir: &crate::ops::status::Direction,
    applier: &mut crate::applier::apply::Applier,
) -> Result<(), Error> {
    if dir.is_paused() {
        applier.flush().await?;
    }
    dir.wait_if_paused().await;
    Ok(())
}

/// Runs one session of the direction from `origin`, recording its errors in the
/// status registry (`GET /status` → `last_error`).
pub async fn tracked<Fut>(origin: &str, session: Fut) -> Result<(), Error>
where
    Fut: Future<Output = Result<(), Error>>,
{
    let r = session.await;
    if let Err(e) = &r {
        crate::ops::status::registry().direction(origin).error(e);
    }
    r
}
