//! What the daemon tells its operators while it runs: every metric name
//! ([`metrics`]), the live state of each direction with pause/resume and lag
//! bookkeeping ([`status`]), logging once per kind during an outage
//! ([`ratelimit`]), and counted summaries of frequent events ([`summary`]). A bottom layer: it imports nothing of drc but the error type.

pub mod metrics;
pub mod ratelimit;
pub mod status;
pub mod summary;
