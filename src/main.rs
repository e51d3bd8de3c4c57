//! The `drc` command line. Each subcommand lives in `cli/`; this file only parses
//! arguments, sets up logging and maps errors to exit codes:
//! 0 success, 1 definite error (the message says what to fix), 2 usage error,
//! 3 the condition checked was not met (`drc check` found problems, `drc wait` timed out).

mod cli;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "drc",
    version,
    about = "Data Replication Center: active-active MySQL/MariaDB replication"
)]
struct Args {
    /// Log format on stderr: text or json. Level via DRC_LOG (e.g. DRC_LOG=debug).
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Binlog tools: decode files, tail a server.
    Binlog {
        #[command(subcommand)]
        cmd: BinlogCmd,
    },
    /// Check whether the zone's server is ready for drc; prints what to change if not.
    Check(cli::check::CheckArgs),
    /// Run the zone daemon: replicate from every peer zone into this zone.
    Run(cli::run::RunArgs),
    /// Create (or upgrade) drc's schema in this zone's server; removes an older drc's triggers.
    Init(cli::run::RunArgs),
    /// Show the daemon's state per direction: positions, lag, last error (admin API).
    Status(cli::ops::CommonArgs),
    /// Pause applying (every direction, or --from ZONE) at the next transaction boundary.
    Pause(cli::ops::PauseArgs),
    /// Resume applying.
    Resume(cli::ops::PauseArgs),
    /// Wait until every transaction committed in --from before the call is applied in --to.
    Wait(cli::ops::WaitArgs),
    /// Make a zone's server refuse application writes (read_only); drc keeps applying.
    Fence(cli::ops::FenceArgs),
    /// Undo `drc fence`.
    Unfence(cli::ops::FenceArgs),
    /// Compare two zones' replicated tables (chunk checksums in each server); exit 3 if they differ.
    Verify(cli::verify::VerifyArgs),
    /// Settle what `drc verify` finds with last-writer-wins (deletes included), marked so it never loops; dry run unless --apply.
    Repair(cli::verify::RepairArgs),
    /// Copy the replicated tables from a peer zone into this zone while the peer takes writes (resumable).
    Seed(cli::verify::SeedArgs),
    /// Redis sync tools: compare (and repair) the zones' synced keys.
    Redis {
        #[command(subcommand)]
        cmd: RedisCmd,
    },
}

#[derive(Subcommand)]
enum RedisCmd {
    /// Compare this zone's synced Redis keys with each peer's; exit 3 if they differ.
    Verify(cli::redis::VerifyArgs),
}

#[derive(Subcommand)]
enum BinlogCmd {
    /// Decode binlog files offline into JSON lines (schemas/change_event.v1.json).
    Dump {
        /// Zone name to tag events with (optional).
        #[arg(long, default_value = "")]
        zone: String,
        /// Binlog or relay-log files, decoded in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Connect to the zone's server as a replica and print committed transactions live.
    Tail(cli::tail::TailArgs),
    /// Read and decode the binlog up to the server's current end, output nothing, print a summary.
    Drain(cli::drain::DrainArgs),
}

fn main() {
    drc::tls::install_default_provider();
    let args = Args::parse();
    init_logging(&args.log_format);
    let code = match args.cmd {
        Cmd::Binlog {
            cmd: BinlogCmd::Dump { zone, files },
        } => cli::dump::run(&zone, &files),
        Cmd::Binlog {
            cmd: BinlogCmd::Tail(t),
        } => runtime().block_on(cli::tail::run(t)),
        Cmd::Binlog {
            cmd: BinlogCmd::Drain(d),
        } => runtime().block_on(cli::drain::run(d)),
        Cmd::Check(c) => runtime().block_on(cli::check::run(c)),
        Cmd::Run(r) => runtime().block_on(cli::run::run(r)),
        Cmd::Init(r) => runtime().block_on(cli::run::init(r)),
        Cmd::Status(a) => cli::ops::status(a),
        Cmd::Pause(a) => cli::ops::pause(a, true),
        Cmd::Resume(a) => cli::ops::pause(a, false),
        Cmd::Wait(a) => runtime().block_on(cli::ops::wait(a)),
        Cmd::Fence(a) => runtime().block_on(cli::ops::fence(a, true)),
        Cmd::Unfence(a) => runtime().block_on(cli::ops::fence(a, false)),
        Cmd::Verify(a) => runtime().block_on(cli::verify::run(a)),
        Cmd::Repair(a) => runtime().block_on(cli::verify::repair(a)),
        Cmd::Seed(a) => runtime().block_on(cli::verify::seed(a)),
        Cmd::Redis {
            cmd: RedisCmd::Verify(a),
        } => runtime().block_on(cli::redis::verify_cmd(a)),
    };
    std::process::exit(code);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn init_logging(format: &str) {
    // (the ZooKeeper client logs every session it opens and closes at info: drc says
    // what matters itself)
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("DRC_LOG").unwrap_or_else(|_| "info,zookeeper_client=warn".into());
    // colours only on a terminal: journald and log files get plain text
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}
