//! Commands for DBAs and failover-drill scripts. All take the zone daemon's
//! `--config`, print text or `--format json`, and exit 0 on success, 1 on an error
//! (unreachable daemon or server, refused call), 3 when the condition was not met
//! (`drc wait` timed out).
//!
//! * `drc status` — `GET /status` of this zone's daemon.
//! * `drc pause [--from ZONE]` / `drc resume [--from ZONE]` — `POST /pause|/resume`.
//! * `drc wait --drained --from a --to b --timeout 60s` — writes a heartbeat in zone
//!   a (a sync point: every transaction committed in a before it precedes it in a's
//!   binlog) and waits until zone b's applier has applied it.
//! * `drc fence --zone a` / `drc unfence --zone a` — `read_only` on zone a's server.

use drc::config::{Config, MysqlConfig};
use drc::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct CommonArgs {
    /// The zone daemon's config file.
    #[arg(long)]
    config: PathBuf,
    /// Output: text or json.
    #[arg(long, default_value = "text")]
    format: String,
}

#[derive(clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Only the direction from this zone (default: every direction).
    #[arg(long)]
    from: Option<String>,
}

#[derive(clap::Args)]
pub struct WaitArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Wait until every transaction committed in `--from` before the call is applied
    /// in `--to`.
    #[arg(long, required = true)]
    drained: bool,
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    /// Give up after this long (e.g. 60s, 500ms, 2m): exit code 3.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

#[derive(clap::Args)]
pub struct FenceArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The zone to fence (this config's zone or one of its `[[peers]]` with `[peers.mysql]`).
    #[arg(long)]
    zone: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 60s, 500ms, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn load(path: &std::path::Path) -> Result<Config, Error> {
    Ok(Config::load(path)?)
}

pub(super) fn cfg_err(cfg: &Config, what: String) -> Error {
    Error::Config(drc::config::ConfigError {
        path: cfg.base_dir.display().to_string(),
        what,
    })
}

/// The admin endpoint's base URL, token, and an HTTP agent for it (trusting
/// `[admin] tls_ca` when the endpoint speaks HTTPS).
fn admin(cfg: &Config) -> Result<(String, Option<String>, ureq::Agent), Error> {
    let a = cfg.admin.as_ref().ok_or_else(|| {
        cfg_err(
            cfg,
            "no [admin] section: the daemon serves no admin endpoint to ask".into(),
        )
    })?;
    let token = a.token(&cfg.base_dir).map_err(|e| cfg_err(cfg, e))?;
    let (base, tls) = a.client(&cfg.base_dir).map_err(|e| cfg_err(cfg, e))?;
    let mut agent = ureq::AgentBuilder::new();
    if let Some(t) = tls {
        agent = agent.tls_config(t);
    }
    Ok((base, token, agent.build()))
}

fn http_err(url: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Status(code, r) => Error::Server {
            addr: url.to_string(),
            what: format!("HTTP {code}: {}", r.into_string().unwrap_or_default().trim()),
        },
        // (ureq keeps rustls' error only as text)
        other if other.to_string().contains("certificate") => Error::Server {
            addr: url.to_string(),
            what: format!("{other}: set [admin] tls_ca to the CA that issued the endpoint's tls_cert"),
        },
        other => Error::Transient {
            addr: url.to_string(),
            what: format!("{other} (is `drc run` running with this config?)"),
        },
    }
}

/// Sends an admin request (5 s timeout) and reads its JSON answer.
fn call(req: ureq::Request, url: &str) -> Result<serde_json::Value, Error> {
    req.timeout(Duration::from_secs(5))
        .call()
        .map_err(|e| http_err(url, e))?
        .into_json()
        .map_err(|e| Error::Server {
            addr: url.to_string(),
            what: e.to_string(),
        })
}

fn print(format: &str, json: &serde_json::Value, text: impl FnOnce() -> String) {
    if format == "json" {
        println!("{json}");
    } else {
        println!("{}", text());
    }
}

pub fn status(a: CommonArgs) -> i32 {
    let r = (|| {
        let cfg = load(&a.config)?;
        let (base, _, agent) = admin(&cfg)?;
        let url = format!("{base}/status");
        let v = call(agent.get(&url), &url)?;
        print(&a.format, &v, || {
            let mut out = format!("zone {}\n", v["zone"].as_str().unwrap_or("?"));
            for d in v["directions"].as_array().into_iter().flatten() {
                out += &format!(
                    "{} -> {}: {}{} lag {} applied {} transactions, position {}{}\n",
                    d["from_zone"].as_str().unwrap_or("?"),
                    d["to_zone"].as_str().unwrap_or("?"),
                    d["state"].as_str().unwrap_or("?"),
                    if d["paused"].as_bool() == Some(true) {
                        " (paused)"
                    } else {
                        ""
                    },
                    lag_text(d),
                    d["transactions"],
                    d["applied_gtid"].as_str().unwrap_or("-"),
                    error_text(d),
                );
            }
            for d in v["redis"].as_array().into_iter().flatten() {
                out += &format!(
                    "redis {} -> {}: {} lag {} applied {} transactions ({} commands), {} full sync(s), position {}{}\n",
                    d["from_zone"].as_str().unwrap_or("?"),
                    d["to_zone"].as_str().unwrap_or("?"),
                    d["state"].as_str().unwrap_or("?"),
                    lag_text(d),
                    d["transactions"],
                    d["commands"],
                    d["full_syncs"],
                    d["position"].as_str().unwrap_or("-"),
                    error_text(d),
                );
            }
            for d in v["zookeeper"].as_array().into_iter().flatten() {
                out += &format!(
                    "zookeeper {} -> {}: {} lag {} wrote {} node(s), deleted {}, {} conflict(s), {} full read(s){}\n",
                    d["from_zone"].as_str().unwrap_or("?"),
                    d["to_zone"].as_str().unwrap_or("?"),
                    d["state"].as_str().unwrap_or("?"),
                    lag_text(d),
                    d["nodes_written"],
                    d["nodes_deleted"],
                    d["conflicts"],
                    d["reconciles"],
                    error_text(d),
                );
            }
            out.trim_end().to_string()
        });
        Ok::<(), Error>(())
    })();
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

pub fn pause(a: PauseArgs, on: bool) -> i32 {
    let r = (|| {
        let cfg = load(&a.common.config)?;
        let (base, token, agent) = admin(&cfg)?;
        let mut url = format!("{base}/{}", if on { "pause" } else { "resume" });
        if let Some(f) = &a.from {
            url += &format!("?from={f}");
        }
        let mut req = agent.post(&url);
        if let Some(t) = &token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let v = call(req, &url)?;
        print(&a.common.format, &v, || {
            format!("{} from {}", if on { "paused" } else { "resumed" }, v["from_zones"])
        });
        Ok::<(), Error>(())
    })();
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

/// The MySQL connection of `zone` from the config: its own or a peer's.
fn zone_mysql<'c>(cfg: &'c Config, zone: &str) -> Result<&'c MysqlConfig, Error> {
    cfg.zone_mysql(zone).map_err(|e| cfg_err(cfg, e))
}

pub async fn wait(a: WaitArgs) -> i32 {
    let started = Instant::now();
    let r = async {
        let cfg = load(&a.common.config)?;
        let from = zone_mysql(&cfg, &a.from)?
            .opts(&cfg.base_dir)
            .map_err(|e| cfg_err(&cfg, e))?;
        let to = zone_mysql(&cfg, &a.to)?
            .opts(&cfg.base_dir)
            .map_err(|e| cfg_err(&cfg, e))?;
        let from_addr = format!("{}:{}", from.ip_or_hostname(), from.tcp_port());
        let to_addr = format!("{}:{}", to.ip_or_hostname(), to.tcp_port());
        let channel = cfg.replication.as_ref().map_or("", |r| r.channel.as_str());
        let key = drc::mysql::applier::apply::channel_key(channel, &a.from);
        let mut c = mysql_async::Conn::new(from)
            .await
            .map_err(|e| drc::mysql::error::classify(&from_addr, "connecting", e))?;
        let mut d = mysql_async::Conn::new(to)
            .await
            .map_err(|e| drc::mysql::error::classify(&to_addr, "connecting", e))?;
        let r = drc::mysql::drain::drained(&mut c, &mut d, &key, a.timeout)
            .await
            .map_err(|e| {
                drc::mysql::error::classify(
                    &format!("{from_addr} -> {to_addr}"),
                    "waiting for the sync heartbeat",
                    e,
                )
            })?;
        Ok::<(bool, u64, u64), Error>((r.drained, r.target, r.seen))
    }
    .await;
    match r {
        Ok((drained, target, seen)) => {
            let ms = started.elapsed().as_millis() as u64;
            let v = serde_json::json!({"drained": drained, "from": a.from, "to": a.to, "waited_ms": ms, "sync_seq": target, "applied_seq": seen});
            print(&a.common.format, &v, || {
                if drained {
                    format!(
                        "drained: every transaction committed in {} before the call is applied in {} ({ms} ms)",
                        a.from, a.to
                    )
                } else {
                    format!("NOT drained after {ms} ms: zone {} has not applied {}'s sync point (heartbeat {target}, at {seen}); is the daemon of zone {} running?", a.to, a.from, a.to)
                }
            });
            if drained {
                0
            } else {
                3
            }
        }
        Err(e) => super::fail(e),
    }
}

pub async fn fence(a: FenceArgs, on: bool) -> i32 {
    let r = async {
        let cfg = load(&a.common.config)?;
        let m = zone_mysql(&cfg, &a.zone)?;
        let opts = m.opts(&cfg.base_dir).map_err(|e| cfg_err(&cfg, e))?;
        let addr = m.addr();
        let log = drc::ops::audit::path(&cfg);
        let action = if on { "fence" } else { "unfence" };
        let audit = |outcome: String| {
            let e = drc::ops::audit::Entry::new(action, "cli", drc::ops::audit::os_user(), a.zone.clone(), outcome);
            drc::ops::audit::record(&log, &e).map_err(|what| Error::Server {
                addr: addr.clone(),
                what: format!("not done: it could not be audited ({what})"),
            })
        };
        // recorded before it is done (a fence half done is still on the record)
        audit("started".into())?;
        let report = drc::ops::fence::set_fence(&a.zone, opts, on).await;
        audit(match &report {
            Ok(r) => format!("ok: read_only = {}", if r.read_only { "ON" } else { "OFF" }),
            Err(e) => format!("failed: {e}"),
        })?;
        let report = report.map_err(|e| drc::mysql::error::classify(&addr, "setting read_only", e))?;
        let v = serde_json::to_value(&report).expect("report serializes");
        print(&a.common.format, &v, || {
            format!(
                "zone {} ({}): read_only = {}; drc's applier can write: {}; other sessions in a transaction: {}",
                report.zone,
                report.server,
                if report.read_only { "ON (fenced)" } else { "OFF (open)" },
                if report.drc_can_write { "yes" } else { "NO" },
                report.open_transactions.map_or("unknown (no PROCESS privilege)".into(), |n| n.to_string())
            )
        });
        if on && !report.drc_can_write {
            return Err(Error::Server {
                addr,
                what: "fenced, but drc's user cannot write under read_only either: grant it READ_ONLY ADMIN (MariaDB) or CONNECTION_ADMIN (MySQL 8), see docs/OPERATIONS.md".into(),
            });
        }
        Ok::<(), Error>(())
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => super::fail(e),
    }
}

/// A direction's lag in `drc status` text (`-`: none measured yet).
fn lag_text(d: &serde_json::Value) -> String {
    d["lag_seconds"]
        .as_f64()
        .map(|l| format!("{l:.3}s"))
        .unwrap_or("-".into())
}

/// `, last error: …` when the direction has one.
fn error_text(d: &serde_json::Value) -> String {
    d["last_error"]
        .as_str()
        .map(|e| format!(", last error: {e}"))
        .unwrap_or_default()
}
