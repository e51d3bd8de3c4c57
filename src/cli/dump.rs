//! `drc binlog dump FILE...`: offline decoding to JSON lines on stdout.

use drc::mysql::reader::file::read_file;
use drc::mysql::reader::Limits;
use drc::output::write_transaction;
use std::io::Write;
use std::path::PathBuf;

pub fn run(zone: &str, files: &[PathBuf]) -> i32 {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for f in files {
        let r = read_file(f, zone, Limits::default(), |tx| {
            write_transaction(&mut out, &tx).map(|_| ())
        });
        match r {
            Ok(s) => {
                tracing::debug!(file = %f.display(), events = s.events, transactions = s.transactions, "decoded");
                if s.incomplete > 0 {
                    tracing::warn!(file = %f.display(), count = s.incomplete, "incomplete transactions were skipped");
                }
            }
            Err(e) => {
                let _ = out.flush();
                return super::fail(e);
            }
        }
    }
    match out.flush() {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => super::fail(format!("stdout: {e}")),
    }
}
