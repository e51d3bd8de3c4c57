//! `drc check --config FILE`: server readiness, one line per finding.

use drc::config::Config;
use drc::ops::check::{run_checks_for, Level};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The zone daemon's config file.
    #[arg(long)]
    config: PathBuf,
    /// Output: text (one line per finding) or json (one object per line).
    #[arg(long, default_value = "text")]
    format: String,
}

pub async fn run(a: CheckArgs) -> i32 {
    let cfg = match Config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    let opts = match cfg.mysql.opts(&cfg.base_dir) {
        Ok(o) => o,
        Err(e) => return super::fail(e),
    };
    let addr = cfg.mysql.addr();
    let mut conn = match mysql_async::Conn::new(opts).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(hint) = drc::mysql::error::tls_hint(&e) {
                return super::fail(format!("cannot connect to {addr}: {hint} ({})", a.config.display()));
            }
            return super::fail(format!(
                "cannot connect to {addr} as {}: {e}. Check [mysql] host/port/user/password in {}",
                cfg.mysql.user,
                a.config.display()
            ));
        }
    };
    let findings = match run_checks_for(&mut conn, cfg.reader.server_id, Some(&cfg)).await {
        Ok(f) => f,
        Err(e) => return super::fail(format!("{addr}: {e}")),
    };
    let _ = conn.disconnect().await;
    let mut findings = findings;
    findings.extend(drc::ops::check::redis_checks(&cfg).await);
    findings.extend(drc::ops::check::zk_checks(&cfg).await);
    findings.extend(drc::ops::check::kafka_checks(&cfg).await);
    let problems = findings.iter().filter(|f| f.level == Level::Problem).count();
    for f in &findings {
        if a.format == "json" {
            println!("{}", serde_json::to_string(f).expect("finding serializes"));
        } else {
            let tag = match f.level {
                Level::Pass => "ok     ",
                Level::Warn => "WARN   ",
                Level::Problem => "PROBLEM",
            };
            if f.fix.is_empty() {
                println!("{tag} {:<28} {}", f.check, f.found);
            } else {
                println!("{tag} {:<28} {} -> fix: {}", f.check, f.found, f.fix);
            }
        }
    }
    if a.format != "json" {
        if problems == 0 {
            println!("{addr} is ready for drc");
        } else {
            println!("{addr}: {problems} problem(s) to fix before drc can run");
        }
    }
    if problems == 0 {
        0
    } else {
        3
    }
}
