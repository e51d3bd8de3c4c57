//! The shape every sync shares (MySQL today; Redis and ZooKeeper next): a
//! [`Source`] that yields committed items in order, a [`Sink`] that applies them and
//! owns the durable resume position, an optional bounded [`channel`] between them,
//! one run loop per direction ([`run::run`]), restart-on-transient with backoff
//! ([`run::restart_on_transient`]) and a [`Shutdown`] every long task takes.
//!
//! # Invariants
//! * The sink makes its data and its position durable together (MySQL:
//!   `drc.applied` in the same target transaction as the rows; Kafka producer: the
//!   reader checkpoint advances only to the oldest unacknowledged message). A
//!   restart resumes from the sink's position, so nothing is lost or applied twice.
//! * The run loop pauses and stops only at a unit boundary ([`Item::opens`]): a
//!   multi-item unit (a large transaction's fragments) is never split by a pause; a
//!   shutdown inside one leaves it uncommitted (rolled back, re-read on start).
//! * The sink is flushed whenever the source has nothing more at hand, so batching
//!   (group commit) only happens while the direction is behind.
//!
//! This layer knows no kind of data: it imports only [`crate::error`] and
//! [`crate::telemetry`].

pub mod channel;
pub mod run;
pub mod shutdown;

pub use channel::channel;
pub use run::{restart_on_transient, run, tracked};
pub use shutdown::{Shutdown, ShutdownTrigger};

use crate::error::Error;
use std::future::Future;
use std::time::Duration;

/// One item of a stream: a unit of work or a fragment of one.
pub trait Item: Send + 'static {
    /// The item starts a unit (a transaction): the pipeline may pause or stop before it.
    fn opens(&self) -> bool;
    /// The item ends its unit.
    fn closes(&self) -> bool;
    /// Its weight in a bounded channel (rows), at least 1.
    fn weight(&self) -> usize;
}

/// A stream of committed items in commit order.
pub trait Source: Send {
    type Item: Item;
    /// The next item; `None` when the source has ended. Cancel-safe: the run loop
    /// drops the future on shutdown or on a sink tick.
    fn next(&mut self) -> impl Future<Output = Result<Option<Self::Item>, Error>> + Send;
    /// Whether another item is at hand without waiting (the sink is flushed when not).
    fn has_ready(&mut self) -> bool;
}

/// Applies items and owns the durable position.
pub trait Sink: Send {
    type Item: Send;
    /// Applies one item; may keep it open (a group) until [`Sink::flush`].
    fn write(&mut self, item: Self::Item) -> impl Future<Output = Result<(), Error>> + Send;
    /// Makes everything written so far (at a unit boundary) durable, position included.
    fn flush(&mut self) -> impl Future<Output = Result<(), Error>> + Send;
    /// The source failed: make durable what can be, waiting a bounded time for what
    /// waits on something else (a broker's acknowledgements), so that the next
    /// session resumes as late as possible. By default [`Sink::flush`].
    fn close(&mut self) -> impl Future<Output = Result<(), Error>> + Send {
        self.flush()
    }
    /// Work that waits on something else (a broker's acknowledgements): while the
    /// source is idle the run loop calls [`Sink::flush`] again after this long.
    fn tick(&self) -> Option<Duration> {
        None
    }
}
