//! The daemon's supervisor: named long tasks, the first failure stops them all, and
//! a panic is an error that names its task (so `drc run` exits non-zero and systemd's
//! `Restart=on-failure` restarts it).

use crate::error::Error;
use crate::pipeline::{Shutdown, ShutdownTrigger};
use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinError, JoinSet};

#[derive(Default)]
pub struct Tasks {
    set: JoinSet<Result<(), Error>>,
    names: HashMap<Id, String>,
}

impl Tasks {
    pub fn spawn<F>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let h = self.set.spawn(task);
        self.names.insert(h.id(), name.into());
    }

    fn outcome(&mut self, r: Result<(Id, Result<(), Error>), JoinError>) -> (String, Result<(), Error>) {
        match r {
            Ok((id, r)) => (self.names.remove(&id).unwrap_or_default(), r),
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or_default();
                let what = if e.is_panic() {
                    let p = e.into_panic();
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".into())
                } else {
                    "cancelled".into()
                };
                (name.clone(), Err(Error::Panicked { task: name, what }))
            }
        }
    }

    /// Runs until `stop` resolves (a signal) or a task ends; then requests shutdown
    /// and waits for every task to reach its safe point. `Ok` only for a clean stop:
    /// a task that failed, panicked or ended by itself makes it an error (the first).
    pub async fn run_until(mut self, stop: impl Future<Output = ()>, trigger: ShutdownTrigger) -> Result<(), Error> {
        let mut result = tokio::select! {
            _ = stop => {
                tracing::info!("stopping on signal");
                Ok(())
            }
            r = self.set.join_next_with_id() => match r {
                None => Ok(()),
                Some(r) => {
                    let (name, r) = self.outcome(r);
                    match r {
                        Err(e) => {
                            tracing::error!(task = name, error = %e, "task failed; stopping the daemon");
                            Err(e)
                        }
                        Ok(()) => Err(Error::Server {
                            addr: "drc".into(),
                            what: format!("task {name} ended without a stop request; stopping the daemon"),
                        }),
                    }
                }
            },
        };
        trigger.trigger();
        while let Some(r) = self.set.join_next_with_id().await {
            let (name, r) = self.outcome(r);
            if let Err(e) = r {
                tracing::error!(task = name, error = %e, "task failed while stopping");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }
}

/// How long a direction stopped by a definite error waits before it tries again.
pub const PARKED_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `session` with restarts on transient errors until `shutdown`; a definite
/// error stops this direction only (a Redis or ZooKeeper one: never the daemon and
/// its MySQL directions): it is logged and `record`ed (`/status`: `failed`), and the
/// direction tries again from its position every [`PARKED_RETRY`].
pub async fn parked<F, Fut>(
    what: &str,
    shutdown: &Shutdown,
    record: impl Fn(&Error),
    mut session: F,
) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    loop {
        let r = crate::pipeline::restart_on_transient(what, shutdown, || {
            let s = session();
            async {
                let r = s.await;
                if let Err(e) = &r {
                    record(e);
                }
                r
            }
        })
        .await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %e, retry_in_secs = PARKED_RETRY.as_secs(), "{what} stopped (the daemon and its other directions go on); fix the cause, it is tried again from its position");
                tokio::select! {
                    _ = tokio::time::sleep(PARKED_RETRY) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Shutdown;

    #[tokio::test]
    async fn a_panicking_task_is_an_error_that_names_it() {
        let (trigger, shutdown) = ShutdownTrigger::new();
        let mut t = Tasks::default();
        let s = shutdown.clone();
        t.spawn("steady", async move {
            s.wait().await;
            Ok(())
        });
        t.spawn("heartbeat", async { panic!("boom") });
        let r = t.run_until(std::future::pending(), trigger).await;
        match r {
            Err(Error::Panicked { task, what }) => {
                assert_eq!(task, "heartbeat");
                assert_eq!(what, "boom");
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_signal_drains_every_task_and_is_a_clean_stop() {
        let (trigger, shutdown) = ShutdownTrigger::new();
        let drained = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut t = Tasks::default();
        for i in 0..3 {
            let (s, d): (Shutdown, _) = (shutdown.clone(), drained.clone());
            t.spawn(format!("t{i}"), async move {
                s.wait().await;
                d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            });
        }
        t.run_until(async {}, trigger).await.expect("clean stop");
        assert_eq!(drained.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_definite_error_stops_the_others() {
        let (trigger, shutdown) = ShutdownTrigger::new();
        let mut t = Tasks::default();
        let s = shutdown.clone();
        t.spawn("waits", async move {
            s.wait().await;
            Ok(())
        });
        t.spawn("fails", async {
            Err(Error::Server {
                addr: "x".into(),
                what: "definite".into(),
            })
        });
        let r = t.run_until(std::future::pending(), trigger).await;
        assert!(matches!(r, Err(Error::Server { .. })), "{r:?}");
    }
}
