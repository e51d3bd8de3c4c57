//! The journal's wiring: this zone's own binlog → [`JournalSink`] (no channel: the
//! journal keeps up with one server's writes, and a backlog stays in the binlog).
//!
//! # Resumption
//! The position is `drc.journal`, written with the journal's tombstones and raises;
//! a restart re-reads from it (the journal's work is idempotent). A first start pins
//! "now". One journal per channel and server: the session holds a server-side claim
//! (`GET_LOCK`) while it runs.

use crate::error::Error;
use crate::mysql::applier::apply::{session_opts, ApplierSettings};
use crate::mysql::journal::{self, JournalSink};
use crate::mysql::reader::live::{LiveReader, LiveSettings, StartSpec};
use crate::mysql::reader::source::BinlogSource;
use crate::pipeline::{self, Shutdown};
use std::sync::Arc;

/// The journal of this zone: `reader` reads the zone's own server.
pub struct JournalSide {
    pub reader: LiveSettings,
    pub start: StartSpec,
    pub opts: mysql_async::Opts,
    pub applier: Arc<ApplierSettings>,
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
    let reader = LiveReader::start(j.reader.clone(), pos.clone(), &j.start).await?;
    if pos.is_none() {
        journal::pin(&mut conn, &channel, reader.resume_point(), &s.addr).await?;
    }
    let floor = reader.resume_point().file.clone();
    tracing::info!(zone = %s.zone, resume = %reader.resume_point(), "journal reading this zone's binlog");
    pipeline::run(
        BinlogSource::new(reader),
        JournalSink::new(conn, s.clone(), floor),
        None,
        shutdown,
    )
    .await
}
