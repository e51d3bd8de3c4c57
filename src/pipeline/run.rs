//! The run loop of one direction and its restart rule.

use super::{Item, Shutdown, Sink, Source};
use crate::error::Error;
use crate::telemetry::status::Direction;
use std::future::Future;
use std::time::Duration;

enum Next<T> {
    Stop,
    Tick,
    Item(Option<T>),
    Failed(Error),
}

/// Moves items from `source` into `sink` (`dir`: the direction whose pause and
/// status apply, if any) until the source ends, an error happens or
/// `shutdown` is requested. When the source fails, the sink is closed
/// ([`Sink::close`]) before the error is returned. Pauses (`drc pause`) and stops only at unit boundaries;
/// flushes the sink whenever the source has nothing more at hand, before a pause
/// and before a clean stop.
pub async fn run<S, K>(mut source: S, mut sink: K, dir: Option<&Direction>, shutdown: &Shutdown) -> Result<(), Error>
where
    S: Source,
    K: Sink,
    K::Item: From<S::Item>,
{
    // inside a unit whose closing item has not come yet
    let mut inside = false;
    loop {
        let next = {
            let tick = sink.tick();
            tokio::select! {
                biased;
                _ = shutdown.wait(), if !inside => Next::Stop,
                r = source.next() => match r {
                    Ok(i) => Next::Item(i),
                    Err(e) => Next::Failed(e),
                },
                _ = tokio::time::sleep(tick.unwrap_or_default()), if tick.is_some() => Next::Tick,
            }
        };
        let item = match next {
            Next::Stop => return sink.flush().await,
            Next::Tick => {
                sink.flush().await?;
                continue;
            }
            Next::Item(None) => return sink.flush().await,
            Next::Failed(e) => {
                // what was read before the failure is made durable (a source that
                // cannot resume from an earlier point, e.g. a restarted Redis, resumes
                // from here)
                if let Err(f) = sink.close().await {
                    tracing::debug!(error = %f, "closing the sink after the source failed");
                }
                return Err(e);
            }
            Next::Item(Some(item)) => item,
        };
        if item.opens() {
            if let Some(dir) = dir.filter(|d| d.is_paused()) {
                // a pause leaves everything applied committed
                sink.flush().await?;
                tokio::select! {
                    _ = dir.wait_if_paused() => {}
                    _ = shutdown.wait() => return Ok(()),
                }
            }
            if shutdown.requested() {
                return sink.flush().await;
            }
        }
        inside = !item.closes();
        sink.write(item.into()).await?;
        // group commit while behind: flush once nothing more is at hand (a sink
        // commits an open multi-fragment unit only on its last fragment)
        if !source.has_ready() {
            sink.flush().await?;
        }
    }
}

/// Runs `session` until it ends, a definite error happens or `shutdown` is
/// requested; a transient error restarts it after a backoff (200 ms doubling to
/// 5 s, back to 200 ms after a session that ran for 30 s). Every session resumes
/// from the position its sink made durable, so a restart neither loses nor repeats
/// anything. On shutdown the session gets [`super::shutdown::DRAIN_TIMEOUT`] to reach
/// a safe point. `what` says in the log what was interrupted.
pub async fn restart_on_transient<F, Fut>(what: &str, shutdown: &Shutdown, mut session: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        if shutdown.requested() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let r = {
            let s = session();
            tokio::pin!(s);
            tokio::select! {
                r = &mut s => r,
                _ = async { shutdown.wait().await; tokio::time::sleep(super::shutdown::DRAIN_TIMEOUT).await } => {
                    tracing::warn!("{what}: no safe point within {:?} of the stop request; cancelled (the open transaction rolls back)", super::shutdown::DRAIN_TIMEOUT);
                    return Ok(());
                }
            }
        };
        if started.elapsed() > Duration::from_secs(30) {
            // a session that ran for a while: the next failure is a new one
            backoff = Duration::from_millis(200);
        }
        match r {
            Err(e) if e.is_transient() && !shutdown.requested() => {
                metrics::counter!(crate::telemetry::metrics::RECONNECTS, "component" => what.to_string()).increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} interrupted; resuming");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) if e.is_transient() => return Ok(()),
            other => return other,
        }
    }
}

/// Runs one session of the direction `dir`, recording its errors in the status
/// registry (`GET /status` → `last_error`).
pub async fn tracked<Fut>(dir: &Direction, session: Fut) -> Result<(), Error>
where
    Fut: Future<Output = Result<(), Error>>,
{
    let r = session.await;
    if let Err(e) = &r {
        dir.error(e);
    }
    r
}
