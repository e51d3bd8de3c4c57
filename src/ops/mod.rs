//! Operator tools: [`check`] (`drc check`), [`admin`] (the HTTP endpoint: metrics,
//! status, pause/resume), [`fence`] (read-only fencing for failover drills).

pub mod admin;
pub mod check;
pub mod fence;
