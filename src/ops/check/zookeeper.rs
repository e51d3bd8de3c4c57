//! `drc check`'s ZooKeeper findings (`[zookeeper]` and every `[peers.zookeeper]`).

use super::{Finding, Level};

/// The ZooKeeper settings drc needs (`[zookeeper]` and every `[peers.zookeeper]`):
/// each ensemble reachable, persistent recursive watches supported (ZooKeeper 3.6+),
/// the mirrored roots readable; in this zone's, drc's identity can create and delete
/// under `/drc/zk` (its metadata).
pub async fn zk_checks(cfg: &crate::config::Config) -> Vec<Finding> {
    use zookeeper_client as zk;
    use Level::*;
    let mut f = Vec::new();
    let Some(z) = &cfg.zookeeper else {
        return f;
    };
    let mut ensembles = vec![("zookeeper", cfg.zone.clone(), z.connect.clone(), z.client_tls.clone())];
    for p in &cfg.peers {
        if let Some(s) = &p.zookeeper {
            ensembles.push((
                "peers.zookeeper",
                p.zone.clone(),
                s.connect.clone(),
                s.client_tls.clone(),
            ));
        }
    }
    for (section, zone, connect, tls) in ensembles {
        let session = std::time::Duration::from_millis(z.session_timeout_ms);
        let c = match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            crate::zookeeper::connect(&connect, tls.as_ref(), session),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                f.push(Finding::bad(
                    Problem,
                    "zk_connect",
                    format!("zone {zone}: {e}"),
                    fix(section, tls.is_some()),
                ));
                continue;
            }
            Err(_) if tls.is_some() => {
                f.push(Finding::bad(
                    Problem,
                    "zk_connect",
                    format!("zone {zone}: {connect}: no session over TLS within 10 s"),
                    fix(section, true),
                ));
                continue;
            }
            Err(_) => {
                f.push(Finding::bad(
                    Problem,
                    "zk_connect",
                    format!("zone {zone}: {connect}: no session within 10 s"),
                    format!("fix [{section}] connect, or start the ensemble"),
                ));
                continue;
            }
        };
        f.push(Finding::ok(
            "zk_connect",
            format!("zone {zone}: {connect}, session timeout {:?}", c.session_timeout()),
        ));
        // (srvr is asked in plain text; over TLS, zk_watch below is the 3.6+ check)
        let servers = match tls {
            Some(_) => {
                f.push(Finding::ok(
                    "zk_tls",
                    format!("zone {zone}: session over TLS ({section}.tls)"),
                ));
                ""
            }
            None => connect.as_str(),
        };
        for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match zk_version(server).await {
                Some(v) if zk_at_least_3_6(&v) => f.push(Finding::ok(
                    "zk_version",
                    format!("zone {zone}: {server}: ZooKeeper {v}"),
                )),
                Some(v) => f.push(Finding::bad(
                    Problem,
                    "zk_version",
                    format!("zone {zone}: {server}: ZooKeeper {v}"),
                    "ZooKeeper 3.6 or later is needed (persistent recursive watches)",
                )),
                None => f.push(Finding::bad(
                    Warn,
                    "zk_version",
                    format!("zone {zone}: {server}: no answer to the four-letter command srvr"),
                    "allow it (4lw.commands.whitelist=srvr, the default) to let drc check read the version",
                )),
            }
        }
        match c.watch("/", zk::AddWatchMode::PersistentRecursive).await {
            Ok(_) => f.push(Finding::ok(
                "zk_watch",
                format!("zone {zone}: persistent recursive watches supported"),
            )),
            Err(e) => f.push(Finding::bad(
                Problem,
                "zk_watch",
                format!("zone {zone}: persistent recursive watch refused: {e}"),
                "ZooKeeper 3.6 or later is needed (AddWatch)",
            )),
        }
        let roots: Vec<String> = if section == "zookeeper" {
            crate::zookeeper::own_paths(&z.roots, &cfg.zone)
        } else {
            crate::zookeeper::direction_roots(&z.roots, &zone)
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        for root in roots {
            match c.get_children(&root).await {
                Ok(_) => f.push(Finding::ok("zk_root", format!("zone {zone}: {root} readable"))),
                Err(zk::Error::NoNode) => f.push(Finding::ok(
                    "zk_root",
                    format!("zone {zone}: {root} missing (created by the daemon of zone {zone})"),
                )),
                Err(e) => f.push(Finding::bad(
                    Problem,
                    "zk_root",
                    format!("zone {zone}: {root}: {e}"),
                    "give drc's identity READ on the root and its nodes",
                )),
            }
        }
        if section == "zookeeper" {
            let probe = format!("/drc/zk/check-{}", std::process::id());
            let r = async {
                crate::zookeeper::ensure_path(&c, &connect, "/drc/zk").await?;
                c.create(
                    &probe,
                    b"",
                    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
                )
                .await
                .map_err(|e| crate::zookeeper::zerr(&connect, "creating", e))?;
                c.delete(&probe, None)
                    .await
                    .map_err(|e| crate::zookeeper::zerr(&connect, "deleting", e))
            };
            match r.await {
                Ok(()) => f.push(Finding::ok(
                    "zk_rights",
                    format!("zone {zone}: drc can write its metadata under /drc/zk"),
                )),
                Err(e) => f.push(Finding::bad(
                    Problem,
                    "zk_rights",
                    format!("zone {zone}: {e}"),
                    "give drc's identity CREATE, DELETE, READ and WRITE on /drc and on the mirrored roots",
                )),
            }
        }
    }
    f
}

/// What to fix when no session comes (`tls`: over TLS).
fn fix(section: &str, tls: bool) -> String {
    if tls {
        format!("set [{section}] connect to the servers' secureClientPort, and [{section}.tls] ca to the CA that issued their certificates (for the host names in connect)")
    } else {
        format!("fix [{section}] connect, or start the ensemble")
    }
}

/// The version a ZooKeeper server reports to the four-letter command `srvr`
/// (allowed by default): `3.8.0-...`.
async fn zk_version(server: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(server).await.ok()?;
        s.write_all(b"srvr").await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Zookeeper version: "))
            .map(|v| v.split([',', '-']).next().unwrap_or(v).trim().to_string())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), io)
        .await
        .ok()
        .flatten()
}

fn zk_at_least_3_6(v: &str) -> bool {
    let mut it = v
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (3, 6)
}

#[cfg(test)]
mod zk_version_tests {
    #[test]
    fn persistent_watches_need_3_6() {
        assert!(super::zk_at_least_3_6("3.8.0"));
        assert!(super::zk_at_least_3_6("3.6.3"));
        assert!(super::zk_at_least_3_6("4.0.0"));
        assert!(!super::zk_at_least_3_6("3.5.9"));
        assert!(!super::zk_at_least_3_6("garbage"));
    }
}
