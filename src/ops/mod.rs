//! Operator tools: [`check`] (`drc check`), [`admin`] (the HTTP endpoint: metrics,
//! status, pause/resume), [`fence`] (read-only fencing for failover drills), [`audit`]
//! (the log of every mutating operation).

pub mod admin;
pub mod audit;
pub mod check;
pub mod fence;
