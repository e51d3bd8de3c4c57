//! `drc binlog tail --config FILE`: the reader of the daemon, on its own.
//!
//! Prints committed transactions as JSON lines (change_event v1) to stdout, or appends
//! them to `--output FILE`. The position after each printed transaction is saved in the
//! state directory (see `drc::mysql::reader::checkpoint`):
//! * with `--output FILE` the file length is saved with it and the file is truncated to
//!   that length on restart, so the file holds every transaction exactly once however
//!   the process is stopped;
//! * on stdout a `kill -9` between printing and saving can print the last transaction
//!   again on restart (at-least-once); lines carry `gtid`/`file`/`pos` to de-duplicate.

use drc::config::Config;
use drc::error::Error;
use drc::mysql::reader::checkpoint::{CheckpointStore, Saved};
use drc::mysql::reader::live::{LiveReader, StartSpec};
use drc::output::write_transaction;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TailArgs {
    /// The zone daemon's config file.
    #[arg(long)]
    config: PathBuf,
    /// Start position when the state directory has none: now | beginning |
    /// gtid:<set> | file:<name>:<offset> (overrides [reader] start).
    #[arg(long)]
    from: Option<String>,
    /// Forget the saved position (and truncate --output) before starting.
    #[arg(long)]
    reset: bool,
    /// Append to this file instead of stdout (exactly-once across restarts).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Stop after this many complete transactions.
    #[arg(long)]
    max_transactions: Option<u64>,
}

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File { w: BufWriter<File>, len: u64 },
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::File { w, .. } => w,
        }
    }
}

pub async fn run(a: TailArgs) -> i32 {
    match tail(a).await {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

fn open_output(path: &PathBuf, saved: Option<&Saved>, reset: bool) -> Result<(File, u64), String> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("--output {}: {e}", path.display()))?;
    let cur = f.metadata().map_err(|e| e.to_string())?.len();
    let keep = match (saved.and_then(|s| s.output_len), reset) {
        (_, true) => 0,
        (Some(len), false) if cur >= len => len,
        (Some(len), false) => {
            return Err(format!(
                "--output {} has {cur} bytes but the saved position says {len} were written: the file was changed outside drc. Restore it, or start over with --reset",
                path.display()
            ))
        }
        (None, false) if cur == 0 => 0,
        (None, false) => {
            return Err(format!(
                "--output {} is not empty and the state directory has no position for it; use another file or --reset",
                path.display()
            ))
        }
    };
    if keep < cur {
        tracing::info!(file = %path.display(), from = cur, to = keep, "truncating output to the last saved transaction");
    }
    f.set_len(keep).map_err(|e| e.to_string())?;
    f.seek(SeekFrom::Start(keep)).map_err(|e| e.to_string())?;
    Ok((f, keep))
}

async fn tail(a: TailArgs) -> Result<(), Error> {
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let cfg = Config::load(&a.config)?;
    let cfg_err = |what: String| {
        Error::Config(drc::config::ConfigError {
            path: a.config.display().to_string(),
            what,
        })
    };
    let spec = StartSpec::parse(a.from.as_deref().unwrap_or(&cfg.reader.start))
        .map_err(|e| cfg_err(format!("--from: {e}")))?;
    let store = CheckpointStore::open(&cfg.state_dir())?;
    if a.reset {
        store.clear()?;
    }
    let saved = store.load()?;
    let mut sink = match &a.output {
        None => Sink::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout())),
        Some(p) => {
            let (f, len) = open_output(p, saved.as_ref(), a.reset).map_err(cfg_err)?;
            Sink::File {
                w: BufWriter::with_capacity(1 << 16, f),
                len,
            }
        }
    };
    let settings = drc::daemon::topology::live_settings(&cfg, &cfg.zone, &cfg.mysql).map_err(cfg_err)?;
    let start = LiveReader::start(settings, saved.as_ref().map(|s| s.checkpoint.clone()), &spec);
    let mut reader = tokio::select! {
        r = start => r?,
        _ = &mut shutdown => {
            tracing::info!("stopping on signal before the reader started");
            return Ok(());
        }
    };
    let info = reader.server_info().clone();
    if let Some(s) = &saved {
        if s.source_server_id != info.server_id || s.source_uuid != info.server_uuid {
            return Err(Error::State {
                dir: cfg.state_dir().display().to_string(),
                what: format!(
                    "the saved position belongs to server_id {} {:?}, but {} is server_id {} {:?}; use the right config or --reset",
                    s.source_server_id, s.source_uuid, cfg.mysql.addr(), info.server_id, info.server_uuid
                ),
            });
        }
    }
    if saved.is_none() {
        // Pin the start position before anything is written: a restart before the first
        // transaction then resumes from the same place instead of a new "now".
        store.save(&Saved {
            checkpoint: reader.resume_point().clone(),
            source_server_id: info.server_id,
            source_uuid: info.server_uuid.clone(),
            output_len: match &sink {
                Sink::File { len, .. } => Some(*len),
                Sink::Stdout(_) => None,
            },
            saved_at_ms: chrono::Utc::now().timestamp_millis(),
        })?;
        store.flush()?;
    }
    let mut done: u64 = 0;
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        let batch = tokio::select! {
            b = reader.next() => b?,
            _ = &mut shutdown => { tracing::info!("stopping on signal"); break; }
        };
        for tx in batch {
            let n = write_transaction(sink.writer(), &tx)?;
            if !tx.last {
                // a fragment of a large transaction: streamed out, no checkpoint yet
                sink.writer().flush()?;
                continue;
            }
            // The transaction is complete: make its bytes reach the OS, then record the
            // position (and the output length) that follows it.
            sink.writer().flush()?;
            let output_len = match &mut sink {
                Sink::File { w, len } => {
                    *len = w.get_mut().stream_position()?;
                    Some(*len)
                }
                Sink::Stdout(_) => None,
            };
            let cp = tx.checkpoint.clone().expect("last fragment carries a checkpoint");
            store.save(&Saved {
                checkpoint: cp,
                source_server_id: info.server_id,
                source_uuid: info.server_uuid.clone(),
                output_len,
                saved_at_ms: chrono::Utc::now().timestamp_millis(),
            })?;
            dirty = true;
            if n > 0 || tx.ddl {
                done += 1;
            }
        }
        if dirty && last_flush.elapsed() >= Duration::from_millis(200) {
            make_durable(&mut sink, &store)?;
            dirty = false;
            last_flush = Instant::now();
        }
        if a.max_transactions.is_some_and(|m| done >= m) {
            break;
        }
    }
    make_durable(&mut sink, &store)?;
    tracing::info!(resume_from = %reader.resume_point(), transactions = done, "tail stopped; position saved");
    Ok(())
}

/// fsync the output, then the checkpoint: a checkpoint is never durable before the
/// bytes it counts.
fn make_durable(sink: &mut Sink, store: &CheckpointStore) -> Result<(), Error> {
    sink.writer().flush()?;
    if let Sink::File { w, .. } = sink {
        w.get_ref().sync_data()?;
    }
    store.flush()
}

/// Installs the SIGTERM/SIGINT handlers now (so a signal during start-up is not lost)
/// and returns a future that completes on the first of them.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
