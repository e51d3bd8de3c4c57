//! Operator tools. Today: [`check`], the server readiness check behind `drc check`.

pub mod check;
