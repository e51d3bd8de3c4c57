//! `drc redis verify`: compares this zone's synced Redis keys with each peer's
//! (docs/REDIS.md, "Anti-entropy"); with `--repair`, keys with a home zone get the
//! home's version. Exit 0 when the zones agree (or every difference was repaired), 3
//! when differences remain, 1 on an error.

use drc::config::Config;
use drc::redis::scope::Scope;
use drc::redis::verify::{verify, Homes, Side};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The zone daemon's config file (its `[redis]` and `[peers.redis]`).
    #[arg(long)]
    config: PathBuf,
    /// Only the peer zone ZONE (default: every peer with `[peers.redis]`).
    #[arg(long)]
    peer: Option<String>,
    /// Give keys with a home zone (`[redis.homes]`) the home's version where they differ.
    #[arg(long)]
    repair: bool,
    /// A key that differs is read again after this many ms before it counts (a change in flight is not a difference).
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

pub async fn verify_cmd(a: VerifyArgs) -> i32 {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    let Some(r) = &cfg.redis else {
        return super::fail(format!(
            "{}: no [redis] section: this zone syncs no Redis data",
            a.config.display()
        ));
    };
    let scope = Scope::new(&r.databases, &r.keys);
    let homes = Homes::new(&r.homes);
    let local_server = match r.server.endpoint(&cfg.base_dir, "redis") {
        Ok(e) => e,
        Err(e) => return super::fail(e),
    };
    let mut remaining = 0usize;
    let mut out = Vec::new();
    for p in cfg
        .peers
        .iter()
        .filter(|p| a.peer.as_ref().is_none_or(|z| *z == p.zone))
    {
        let Some(ps) = &p.redis else { continue };
        let run = async {
            let mut local = Side::connect(&cfg.zone, &local_server).await?;
            let peer_server =
                ps.endpoint(&cfg.base_dir, "peers.redis")
                    .map_err(|what| drc::redis::verify::VerifyError {
                        addr: ps.addr(),
                        source: redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "config", what)),
                    })?;
            let mut peer = Side::connect(&p.zone, &peer_server).await?;
            verify(
                &mut local,
                &mut peer,
                &scope,
                &homes,
                Duration::from_millis(a.settle_ms),
                a.repair,
            )
            .await
        };
        let report = match run.await {
            Ok(r) => r,
            Err(e) => return super::fail(e),
        };
        remaining += report.differences.iter().filter(|d| !d.repaired).count();
        if a.format == "json" {
            out.push(serde_json::json!({"zone": cfg.zone, "peer": p.zone, "report": report}));
        } else {
            println!(
                "zone {} vs zone {}: {} / {} synced keys, {} differ{}",
                cfg.zone,
                p.zone,
                report.keys_local,
                report.keys_peer,
                report.differences.len(),
                if a.repair {
                    format!(
                        ", {} repaired",
                        report.differences.iter().filter(|d| d.repaired).count()
                    )
                } else {
                    String::new()
                }
            );
            for d in &report.differences {
                println!(
                    "  db {} {}: here {}, in {} {}{}{}",
                    d.db,
                    d.key,
                    d.local,
                    p.zone,
                    d.peer,
                    d.home.as_ref().map(|h| format!(" (home {h})")).unwrap_or_else(|| " (no home zone: give its pattern one in [redis.homes] to repair it)".into()),
                    if d.repaired { " repaired" } else { "" }
                );
            }
        }
    }
    if a.format == "json" {
        println!("{}", serde_json::Value::Array(out));
    }
    if remaining > 0 {
        3
    } else {
        0
    }
}
