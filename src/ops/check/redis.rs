//! `drc check`'s Redis findings (`[redis]` and every `[peers.redis]`).

use super::{Finding, Level};

/// The Redis settings drc needs (`[redis]` and every `[peers.redis]`): reachable with
/// the configured credentials; replication (PSYNC) allowed for drc's user on every
/// server it captures (the peers') and on this zone's (a full sync reads its own
/// stream); a backlog that covers an outage; no eviction of synced keys (an evicted
/// key is deleted in every zone: evictions replicate as DEL).
pub async fn redis_checks(cfg: &crate::config::Config) -> Vec<Finding> {
    use Level::*;
    let Some(r) = &cfg.redis else {
        return Vec::new();
    };
    let mut servers = vec![("redis", cfg.zone.clone(), &r.server)];
    for p in &cfg.peers {
        if let Some(s) = &p.redis {
            servers.push(("peers.redis", p.zone.clone(), s));
        }
    }
    let mut f = Vec::new();
    for (section, zone, s) in servers {
        let addr = s.addr();
        let server = match s.endpoint(&cfg.base_dir, section) {
            Ok(e) => e,
            Err(e) => {
                f.push(Finding::bad(Problem, "redis_connect", e, format!("fix [{section}]")));
                continue;
            }
        };
        let con = server.connection();
        let mut con = match tokio::time::timeout(std::time::Duration::from_secs(5), con).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                f.push(Finding::bad(
                    Problem,
                    "redis_connect",
                    format!("zone {zone}'s Redis {addr}: {e}"),
                    match crate::redis::endpoint::is_refused(&e) {
                        true => format!("fix [{section}.tls]"),
                        false => format!("check [{section}] host/port/user/password and that the server runs"),
                    },
                ));
                continue;
            }
            Err(_) => {
                f.push(Finding::bad(
                    Problem,
                    "redis_connect",
                    format!("zone {zone}'s Redis {addr}: no answer in 5 s"),
                    format!("check [{section}] host/port and the network"),
                ));
                continue;
            }
        };
        f.push(Finding::ok(
            "redis_connect",
            format!("zone {zone}'s Redis {addr} answers"),
        ));
        let user = s.user.clone().unwrap_or_else(|| "default".into());
        let dry: redis::RedisResult<String> = redis::cmd("ACL")
            .arg("DRYRUN")
            .arg(&user)
            .arg("PSYNC")
            .arg("?")
            .arg("-1")
            .query_async(&mut con)
            .await;
        match dry {
            Ok(ok) if ok == "OK" => f.push(Finding::ok(
                "redis_replication_allowed",
                format!("{addr}: user {user} may PSYNC"),
            )),
            Ok(msg) => f.push(Finding::bad(
                Problem,
                "redis_replication_allowed",
                format!("{addr}: user {user} may not PSYNC ({msg})"),
                format!("ACL SETUSER {user} +psync +replconf +ping (docs/REDIS.md, grants)"),
            )),
            Err(e) => f.push(Finding::bad(
                Warn,
                "redis_replication_allowed",
                format!("{addr}: cannot check with ACL DRYRUN ({e})"),
                format!("make sure user {user} may run PSYNC and REPLCONF"),
            )),
        }
        let cfg_con = con.clone();
        let config = |name: &'static str| {
            let mut c = cfg_con.clone();
            async move {
                let v: redis::RedisResult<Vec<String>> =
                    redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut c).await;
                v.ok().and_then(|v| v.get(1).cloned())
            }
        };
        let backlog: Option<u64> = config("repl-backlog-size").await.and_then(|v| v.parse().ok());
        let info: String = redis::cmd("INFO")
            .arg("all")
            .query_async(&mut con)
            .await
            .unwrap_or_default();
        let field = |name: &str| -> Option<f64> {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse().ok())
        };
        // average stream rate since start: how long an outage the backlog covers
        let rate = match (field("master_repl_offset"), field("uptime_in_seconds")) {
            (Some(o), Some(u)) if u > 0.0 => o / u,
            _ => 0.0,
        };
        match backlog {
            Some(b) if rate > 0.0 && (b as f64) / rate < 300.0 => f.push(Finding::bad(
                Warn,
                "redis_backlog",
                format!(
                    "{addr}: repl-backlog-size {b} bytes covers {:.0} s of writes at the average rate ({:.0} bytes/s): a daemon outage longer than that means a full sync",
                    b as f64 / rate,
                    rate
                ),
                format!("CONFIG SET repl-backlog-size {} (and in redis.conf): 10 minutes at that rate", ((rate * 600.0) as u64).max(b)),
            )),
            Some(b) => f.push(Finding::ok(
                "redis_backlog",
                if rate > 0.0 {
                    format!("{addr}: repl-backlog-size {b} bytes covers {:.0} s of writes", b as f64 / rate)
                } else {
                    format!("{addr}: repl-backlog-size {b} bytes")
                },
            )),
            None => f.push(Finding::bad(
                Warn,
                "redis_backlog",
                format!("{addr}: cannot read repl-backlog-size"),
                "allow CONFIG GET to drc's user, or check repl-backlog-size yourself (docs/REDIS.md)".to_string(),
            )),
        }
        let maxmemory = field("maxmemory").unwrap_or(0.0);
        let policy = config("maxmemory-policy").await.unwrap_or_default();
        if maxmemory > 0.0 && policy.starts_with("allkeys") {
            f.push(Finding::bad(
                Warn,
                "redis_eviction",
                format!("{addr}: maxmemory {maxmemory} with maxmemory-policy {policy}: an evicted synced key is deleted in every zone (evictions replicate as DEL)"),
                "maxmemory-policy noeviction (or volatile-* with TTLs only on cache keys outside [redis] keys)".to_string(),
            ));
        } else {
            f.push(Finding::ok(
                "redis_eviction",
                format!("{addr}: maxmemory-policy {policy}, maxmemory {maxmemory}"),
            ));
        }
    }
    f
}
