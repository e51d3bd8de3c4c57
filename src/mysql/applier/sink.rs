//! The applier as a pipeline [`Sink`]: delivered transaction fragments of one origin
//! zone, applied with group commit; the durable position is `drc.applied`, written in
//! the same target transaction as the rows ([`super::apply`]).

use super::apply::Applier;
use crate::error::Error;
use crate::model::Delivered;
use crate::pipeline::Sink;
use std::time::{Duration, Instant};

/// How often the applier's totals are logged.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub struct ApplierSink {
    applier: Applier,
    origin: String,
    reported: Instant,
}

impl ApplierSink {
    pub fn new(applier: Applier, origin: &str) -> ApplierSink {
        ApplierSink {
            applier,
            origin: origin.to_string(),
            reported: Instant::now(),
        }
    }

    pub fn applier(&mut self) -> &mut Applier {
        &mut self.applier
    }
}

impl Sink for ApplierSink {
    type Item = Delivered;

    async fn write(&mut self, d: Delivered) -> Result<(), Error> {
        if d.transport.is_some() {
            self.applier.set_transport_position(d.transport);
        }
        self.applier.apply_grouped(&self.origin, d.tx).await.map(|_| ())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.applier.flush().await?;
        if self.reported.elapsed() >= REPORT_EVERY {
            self.reported = Instant::now();
            let s = &self.applier.stats;
            tracing::info!(from = %self.origin, transactions = s.transactions, rows = s.rows, conflicts = s.conflicts,
                quarantined = s.quarantined, loops_suppressed = s.loops_suppressed, duplicates_skipped = s.duplicates_skipped,
                "applier totals since start");
        }
        Ok(())
    }
}
