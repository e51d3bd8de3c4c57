//! Direct wiring of one direction (no broker): the daemon of zone B reads zone A's
//! binlog itself. `BinlogSource` (A) → bounded channel → `ApplierSink` (B).
//!
//! # Resumption
//! The position is the one the applier committed in `drc.applied` together with the
//! rows; on any transient error both ends are restarted from it, so nothing is lost
//! or applied twice. The reader keeps no state of its own in this mode.

use crate::error::Error;
use crate::model::Transaction;
use crate::mysql::applier::apply::{Applier, ApplierSettings};
use crate::mysql::applier::sink::ApplierSink;
use crate::mysql::reader::live::{LiveReader, LiveSettings, StartSpec};
use crate::mysql::reader::source::BinlogSource;
use crate::pipeline::{self, Item, Shutdown, Source};
use std::sync::Arc;

/// Fragments buffered between the reader and the applier: enough for the reader to
/// run ahead while the applier commits a group (group commit needs a backlog), and
/// bounded in memory by rows as well.
const CHANNEL_FRAGMENTS: usize = 4096;
/// At most this many rows wait between the reader and the applier (about two
/// fragments of a large transaction; thousands of small transactions).
const CHANNEL_ROWS: usize = 20_000;

/// One direction: `reader` (of the peer zone) → applier (of this zone).
pub struct Direction {
    pub origin: String,
    pub reader: LiveSettings,
    pub start: StartSpec,
    pub applier_opts: mysql_async::Opts,
    pub applier: Arc<ApplierSettings>,
    /// The journal's progress: the session starts once it has read the local binlog.
    pub journal: super::journal::Progress,
}

/// Runs a direction until `shutdown` or a definite error.
pub async fn run(d: Direction, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("replication from zone {}", d.origin);
    let dir = crate::telemetry::status::registry().direction(&d.origin);
    pipeline::restart_on_transient(&what, &shutdown, || pipeline::tracked(&dir, session(&d, &shutdown))).await
}

/// Counts transactions as they leave the reader (`drc_transactions_shipped_total`).
struct Counted<S> {
    inner: S,
    shipped: metrics::Counter,
}

impl<S: Source<Item = Transaction>> Source for Counted<S> {
    type Item = Transaction;

    async fn next(&mut self) -> Result<Option<Transaction>, Error> {
        let t = self.inner.next().await?;
        if let Some(t) = &t {
            if t.opens() && t.closes() {
                self.shipped.increment(1);
            }
        }
        Ok(t)
    }

    fn has_ready(&mut self) -> bool {
        self.inner.has_ready()
    }
}

async fn session(d: &Direction, shutdown: &Shutdown) -> Result<(), Error> {
    let mut applier = Applier::connect(d.applier_opts.clone(), d.applier.clone()).await?;
    applier.claim(&d.origin).await?;
    super::journal::barrier(&mut applier, &d.journal, shutdown).await?;
    let pos = applier.applied_position(&d.origin).await?;
    let reader = LiveReader::start(d.reader.clone(), pos.clone(), &d.start).await?;
    if pos.is_none() {
        applier.pin_position(&d.origin, reader.resume_point()).await?;
    }
    tracing::info!(from = %d.origin, to = %d.applier.zone, resume = %reader.resume_point(), "replicating");
    let dir = crate::telemetry::status::registry().direction(&d.origin);
    dir.set_state("applying");
    let source = Counted {
        inner: BinlogSource::new(reader),
        shipped: metrics::counter!(crate::telemetry::metrics::TXNS_SHIPPED, "from_zone" => d.origin.clone(), "transport" => "direct"),
    };
    let (tx, rx) = pipeline::channel::<Transaction>(CHANNEL_FRAGMENTS, CHANNEL_ROWS);
    let reading = tokio::spawn(tx.pump(source));
    let r = pipeline::run(rx, ApplierSink::new(applier, &d.origin), Some(&dir), shutdown).await;
    reading.abort();
    r
}
