//! Direct transport: the daemon of zone B reads zone A's binlog (a replica connection
//! to A's primary) and feeds A's transactions to B's applier through a bounded channel.
//!
//! # Resumption
//! The position is the one the applier committed in `drc.applied` together with the
//! rows; on any transient error both ends are restarted from it, so nothing is lost
//! or applied twice. The reader keeps no state of its own in this mode.

use crate::applier::apply::{Applier, ApplierSettings};
use crate::error::Error;
use crate::reader::live::{LiveReader, LiveSettings, StartSpec};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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
}

/// Runs a direction until `shutdown` turns true or a definite error happens.
pub async fn run(d: Direction, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let what = format!("replication from zone {}", d.origin);
    super::restart_on_transient(&what, shutdown, || super::tracked(&d.origin, session(&d))).await
}

async fn session(d: &Direction) -> Result<(), Error> {
    let mut applier = Applier::connect(d.applier_opts.clone(), d.applier.clone()).await?;
    let pos = applier.applied_position(&d.origin).await?;
    let mut reader = LiveReader::start(d.reader.clone(), pos.clone(), &d.start).await?;
    if pos.is_none() {
        applier.pin_position(&d.origin, reader.resume_point()).await?;
    }
    tracing::info!(from = %d.origin, to = %d.applier.zone, resume = %reader.resume_point(), "replicating");
    let dir = crate::ops::status::registry().direction(&d.origin);
    dir.set_state("applying");
    let shipped =
        metrics::counter!(crate::ops::metrics::TXNS_SHIPPED, "from_zone" => d.origin.clone(), "transport" => "direct");
    let (tx, mut rx) = mpsc::channel::<(crate::model::Transaction, u32)>(CHANNEL_FRAGMENTS);
    let budget = Arc::new(tokio::sync::Semaphore::new(CHANNEL_ROWS));
    let reader_budget = budget.clone();
    let mut reading = tokio::spawn(async move {
        loop {
            for t in reader.next().await? {
                // rows in the channel are bounded: wait for the applier to take some
                let n = t.changes.len().clamp(1, CHANNEL_ROWS) as u32;
                match reader_budget.acquire_many(n).await {
                    Ok(p) => p.forget(),
                    Err(_) => return Ok::<(), Error>(()),
                }
                if tx.send((t, n)).await.is_err() {
                    return Ok::<(), Error>(());
                }
            }
        }
    });
    let origin = d.origin.clone();
    let mut report = tokio::time::interval(Duration::from_secs(60));
    report.tick().await;
    let result = loop {
        tokio::select! {
            _ = report.tick() => {
                let s = &applier.stats;
                tracing::info!(from = %origin, transactions = s.transactions, rows = s.rows, conflicts = s.conflicts,
                    quarantined = s.quarantined, loops_suppressed = s.loops_suppressed, duplicates_skipped = s.duplicates_skipped,
                    "applier totals since start");
            }
            t = rx.recv() => match t {
                Some((t, n)) => {
                    budget.add_permits(n as usize);
                    if t.fragment == 0 {
                        if let Err(e) = super::pause_point(&dir, &mut applier).await {
                            break Err(e);
                        }
                        if t.last {
                            shipped.increment(1);
                        }
                    }
                    // group commit while behind: commit once nothing more is queued
                    let r = match applier.apply_grouped(&origin, t).await {
                        Ok(_) if rx.is_empty() => applier.flush().await,
                        r => r.map(|_| ()),
                    };
                    if let Err(e) = r {
                        break Err(e);
                    }
                }
                None => break applier.flush().await,
            },
            r = &mut reading => break match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(join) => Err(Error::Transient { addr: d.reader.addr.clone(), what: format!("reader task ended: {join}") }),
            },
        }
    };
    reading.abort();
    result
}
