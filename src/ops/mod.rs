//! Operator tools: [`check`] (`drc check`), [`metrics`] (every metric name),
//! [`status`] (live state, pause/resume, lag bookkeeping), [`heartbeat`] (the lag
//! probe written through the binlog), [`admin`] (the HTTP endpoint), [`fence`]
//! (read-only fencing for failover drills), [`ratelimit`] (logging once per kind
//! during an outage).

pub mod admin;
pub mod check;
pub mod fence;
pub mod heartbeat;
pub mod metrics;
pub mod ratelimit;
pub mod status;
