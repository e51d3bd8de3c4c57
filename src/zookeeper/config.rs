//! `[zookeeper]` and `[peers.zookeeper]` (the top-level config composes them):
//! this zone's ensemble, the mirrored roots and their modes (docs/ZOOKEEPER.md).

use super::{ZkMode, ZkRoot};
use crate::tls::TlsConfig;
use serde::Deserialize;
use zookeeper_client as zk;

/// `[zookeeper]`: this zone's ensemble and the mirrored subtrees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZkConfig {
    /// The ensemble: `connect = "127.0.0.1:2181"` (several `host:port` with commas).
    pub connect: String,
    /// Session timeout asked for (the server bounds it): `session_timeout_ms = 10000`.
    #[serde(default = "default_zk_session")]
    pub session_timeout_ms: u64,
    /// Seconds between full reconciles of every root (besides every start, reconnect
    /// and new session): writes a one-way root's other zones made are overwritten then.
    #[serde(default = "default_zk_reconcile")]
    pub reconcile_interval_secs: u64,
    /// At most this many nodes deleted by one reconcile (the deletion guard); more
    /// waits for the operator, counted in `drc_zk_guarded_deletes_total`.
    #[serde(default = "default_zk_max_deletes")]
    pub max_deletes_per_pass: usize,
    /// The mirrored subtrees.
    pub roots: Vec<ZkRoot>,
    /// TLS to this zone's ensemble (`[zookeeper.tls]`): the `[mysql.tls]` table, `ca`
    /// required, mode `verify-full` (default) or `verify-ca`; `connect` then names the
    /// servers' `secureClientPort`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The client's TLS built from `tls` at config load ([`super::tls_options`]).
    #[serde(skip)]
    pub client_tls: Option<zk::TlsOptions>,
}

/// A peer's ZooKeeper ensemble.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZkServer {
    pub connect: String,
    /// TLS to the peer's ensemble (`[peers.zookeeper.tls]`), as `[zookeeper.tls]`.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The client's TLS built from `tls` at config load ([`super::tls_options`]).
    #[serde(skip)]
    pub client_tls: Option<zk::TlsOptions>,
}

fn default_zk_session() -> u64 {
    10_000
}

fn default_zk_reconcile() -> u64 {
    300
}

fn default_zk_max_deletes() -> usize {
    500
}

impl ZkConfig {
    /// Checks the section (`peers`: the peer zones' names).
    pub fn validate(&self, zone: &str, peers: &[&str]) -> Result<(), String> {
        if self.connect.trim().is_empty() {
            return Err("[zookeeper] connect is empty: name this zone's ensemble (host:port[,host:port])".into());
        }
        if self.roots.is_empty() {
            return Err("[zookeeper] has no [[zookeeper.roots]] (leave [zookeeper] out to sync no znodes)".into());
        }
        let zones: Vec<&str> = std::iter::once(zone).chain(peers.iter().copied()).collect();
        for (i, r) in self.roots.iter().enumerate() {
            let p = &r.path;
            if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
                return Err(format!(
                    "[[zookeeper.roots]] path = {p:?}: an absolute path like \"/services\" (not / itself)"
                ));
            }
            if p == "/drc" || p.starts_with("/drc/") || p == "/zookeeper" || p.starts_with("/zookeeper/") {
                return Err(format!(
                    "[[zookeeper.roots]] path = {p:?}: /drc holds drc's own state and /zookeeper the server's"
                ));
            }
            for other in &self.roots[..i] {
                let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
                if nested(p, &other.path) || nested(&other.path, p) {
                    return Err(format!(
                        "[[zookeeper.roots]] {p:?} and {:?} overlap: a node belongs to one root",
                        other.path
                    ));
                }
            }
            match (r.mode, &r.home) {
                (ZkMode::OneWay, None) => {
                    return Err(format!(
                        "[[zookeeper.roots]] {p:?} is one_way: name its home zone (home = \"a\")"
                    ))
                }
                (ZkMode::OneWay, Some(h)) if !zones.contains(&h.as_str()) => {
                    return Err(format!(
                        "[[zookeeper.roots]] {p:?}: home = {h:?} is not this zone ({zone:?}) nor a [[peers]] zone"
                    ))
                }
                (ZkMode::Lww | ZkMode::Partitioned, Some(_)) => {
                    return Err(format!("[[zookeeper.roots]] {p:?}: home is for one_way roots only"))
                }
                _ => {}
            }
        }
        if self.session_timeout_ms < 2000 {
            return Err("[zookeeper] session_timeout_ms must be at least 2000".into());
        }
        if self.reconcile_interval_secs == 0 {
            return Err("[zookeeper] reconcile_interval_secs must be positive".into());
        }
        Ok(())
    }
}
