//! Subcommands of the `drc` binary. Each returns the process exit code.

pub mod check;
pub mod drain;
pub mod dump;
pub mod ops;
pub mod redis;
pub mod run;
pub mod tail;
pub mod verify;

/// Prints a definite error for the operator and returns exit code 1.
pub fn fail(e: impl std::fmt::Display) -> i32 {
    eprintln!("drc: error: {e}");
    1
}
