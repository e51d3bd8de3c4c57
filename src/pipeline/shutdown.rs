//! Shutdown as a type: one [`ShutdownTrigger`] per daemon, a [`Shutdown`] clone in
//! every long task. A task that sees it finishes its current unit, makes its
//! position durable and returns `Ok`.

use std::time::Duration;
use tokio::sync::watch;

/// How long a task may take to reach a safe point after shutdown was requested
/// before it is cancelled (a cancelled MySQL transaction rolls back: still safe).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests the shutdown of every task holding a [`Shutdown`] from it.
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view of the shutdown request.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// A shutdown that is never requested (tools and tests that run one session).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Shutdown(rx)
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when shutdown is requested (at once if it already was). Cancel-safe.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}
