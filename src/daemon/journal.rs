//! The journal's wiring: this zone's own binlog → [`JournalSink`] (no channel: the
//! journal keeps up with one server's writes, and a backlog stays in the binlog).
//!
//! # Resumption
//! The position is `drc.journal`, written with the journal's tombstones and raises;
//! a restart re-reads from it (the journal's work is idempotent). A first start pins
//! "now". One journal per channel and server: the session holds a server-side claim
//! (`GET_LOCK`) while it runs.

use crate::error::Error;
use crate::mysql::applier::apply::{session_opts, Applier, ApplierSettings};
use crate::mysql::journal::{self, JournalSink};
use crate::mysql::reader::assembler::JournalFilter;
use crate::mysql::reader::live::{LiveReader, LiveSettings, StartSpec};
use crate::mysql::reader::source::BinlogSource;
use crate::pipeline::{self, Shutdown};
use crate::position::FilePos;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long an applier session waits for the journal at its start before it goes on
/// without (the journal's window check still undoes what it decides wrongly).
const BARRIER_WAIT: Duration = Duration::from_secs(60);

/// The position up to which the journal has read this zone's binlog and committed
/// everything it had to write (published by the journal, read by the appliers).
pub type Progress = watch::Receiver<Option<FilePos>>;

/// Before an applier session decides anything, the journal has read the local binlog
/// up to its end as of now: the tombstones of local deletes made while the daemon was
/// down (or while this session was away) are then visible to the applier. In steady
/// state the journal follows within milliseconds; this closes the large window a
/// restart would otherwise open.
pub async fn barrier(applier: &mut Applier, progress: &Progress, shutdown: &Shutdown) -> Result<(), Error> {
    let Some(target) = applier.local_binlog_end().await? else {
        return Ok(());
    };
    let mut rx = progress.clone();
    let started = Instant::now();
    let mut said = Instant::now();
    loop {
        let at = rx.borrow_and_update().clone();
        if at.as_ref().is_some_and(|p| !p.file.is_empty() && *p >= target) {
            applier.set_journal_through(target);
            return Ok(());
        }
        if started.elapsed() >= BARRIER_WAIT {
            tracing::warn!(%target, journal = ?at, "the journal has not caught up with this zone's binlog; applying anyway");
            return Ok(());
        }
        if said.elapsed() >= Duration::from_secs(10) {
            said = Instant::now();
            tracing::info!(%target, journal = ?at, "waiting for the journal to read this zone's local writes");
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.wait() => return Ok(()),
        }
    }
}

/// The journal of this zone: `reader` reads the zone's own server.
pub struct JournalSide {
    pub reader: LiveSettings,
    pub start: StartSpec,
    pub opts: mysql_async::Opts,
    pub applier: Arc<ApplierSettings>,
    /// Where the journal publishes its progress ([`Progress`]).
    pub progress: watch::Sender<Option<FilePos>>,
}

/// Runs the journal until `shutdown` or a definite error.
pub async fn run(j: JournalSide, shutdown: Shutdown) -> Result<(), Error> {
    let what = format!("journal of zone {}", j.applier.zone);
    pipeline::restart_on_transient(&what, &shutdown, || session(&j, &shutdown)).await
}

async fn session(j: &JournalSide, shutdown: &Shutdown) -> Result<(), Error> {
    let s = &j.applier;
    let channel = s.channel_key(&s.zone);
    let mut conn = mysql_async::Conn::new(session_opts(j.opts.clone()))
        .await
        .map_err(|e| crate::mysql::error::classify(&s.addr, "connect", e))?;
    crate::mysql::claim::claim(&mut conn, &format!("journal of zone {channel}"), &s.addr).await?;
    let pos = journal::position(&mut conn, &channel, &s.addr).await?;
    let mut reader = LiveReader::start(j.reader.clone(), pos.clone(), &j.start).await?;
    if pos.is_none() {
        journal::pin(&mut conn, &channel, reader.resume_point(), &s.addr).await?;
    }
    let floor = reader.resume_point().file.clone();
    tracing::info!(zone = %s.zone, resume = %reader.resume_point(), "journal reading this zone's binlog");
    let global: Vec<(String, String)> = s.global_tables.iter().map(|(p, _, h)| (p.clone(), h.clone())).collect();
    let homes = journal::global_homes(&mut conn, &channel, &global, &s.addr).await?;
    let mut sink = JournalSink::new(conn, s.clone(), floor.clone(), j.progress.clone()).with_global_homes(homes);
    sink.load_pending().await?;
    reader.set_journal_filter(JournalFilter::new(floor, sink.pending_flag()));
    pipeline::run(BinlogSource::new(reader), sink, None, shutdown).await
}
