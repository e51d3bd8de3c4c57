//! `drc run --config FILE`: the zone daemon ([`drc::daemon`]).
//! `drc init --config FILE`: creates (or upgrades) the drc schema and removes the triggers
//! an older drc put on the application's tables.

use drc::config::Config;
use drc::error::Error;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The zone daemon's config file.
    #[arg(long)]
    config: PathBuf,
}

pub async fn init(a: RunArgs) -> i32 {
    let r = async {
        let cfg = Config::load(&a.config)?;
        let n = drc::daemon::init(&cfg, &a.config).await?;
        println!(
            "zone {}: drc schema ready on {}; {n} trigger(s) of an older drc removed",
            cfg.zone,
            cfg.mysql.addr()
        );
        Ok::<(), Error>(())
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

/// Exit 0 only on a clean stop (a signal, every task drained); 1 when a task
/// failed or panicked (the message names it).
pub async fn run(a: RunArgs) -> i32 {
    let r = async {
        let cfg = Config::load(&a.config)?;
        drc::daemon::run(cfg, &a.config, super::tail::shutdown_signal()).await
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}
