//! ZooKeeper sync (issue 15): configured subtrees of each zone's ensemble mirrored
//! with its peers' (docs/ZOOKEEPER.md). The same shape as MySQL and Redis: per peer a
//! source ([`source`]: the peer's ensemble, a persistent recursive watch and a full
//! reconcile on every start, reconnect, new session and interval) and a sink
//! ([`sink`]: this zone's ensemble, each change written in one multi with drc's
//! metadata), the run loop of `src/pipeline/`, wired in `src/daemon/zookeeper.rs`.
//!
//! # drc's state in ZooKeeper: `/drc/zk/meta<path>`
//! Beside every node drc writes, in the same multi, a metadata node at
//! `/drc/zk/meta` + the node's path whose data is [`Meta`] (the zone whose write
//! the value is, its modification time there, its zxid there; or a tombstone).
//! Invariants:
//! * **Loop-free.** All operations of one multi get one zxid, so a node whose
//!   `mzxid` equals its metadata node's `mzxid` was last written by drc: the source
//!   never ships it (it is another zone's write). A delete drc applied leaves its
//!   parent's `pzxid` equal to the tombstone's `mzxid`: not shipped either.
//! * **No re-copy.** A node whose metadata already holds the origin's `mzxid` (and
//!   that was not written here since) is not written again: a restart, a reconnect or
//!   a periodic reconcile writes only what changed.
//! * **Deletes only what came from the origin** (two-way roots): a reconcile deletes
//!   a node here only when the origin no longer has it and its metadata says the
//!   origin's value is what drc wrote here; one-way roots are the home's entirely.
//!   Never from an incomplete read or a missing origin root, and at most
//!   `max_deletes_per_pass` per reconcile.

pub mod config;
pub mod sink;
pub mod source;
pub mod wire;

use crate::error::Error;
use crate::tls::{TlsConfig, TlsMode};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zookeeper_client as zk;

/// One mirrored subtree: `[[zookeeper.roots]] path = "/services", mode = "lww"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZkRoot {
    /// Absolute path of the subtree's root (created if missing).
    pub path: String,
    /// How the zones share it (docs/ZOOKEEPER.md).
    #[serde(default)]
    pub mode: ZkMode,
    /// `one_way`: the zone whose subtree the others mirror.
    #[serde(default)]
    pub home: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ZkMode {
    /// The home zone's subtree wins everywhere; writes elsewhere are overwritten and
    /// reported.
    #[default]
    OneWay,
    /// Each zone owns `<path>/<zone>` (two-way without conflicts).
    Partitioned,
    /// Two-way; the later write by origin modification time wins, ties by zone name.
    Lww,
}

/// Where drc keeps its metadata nodes.
pub const META_ROOT: &str = "/drc/zk/meta";
/// Where a Kafka consumer keeps the offset it applied, per origin.
pub const POS_ROOT: &str = "/drc/zk/pos";

/// A mirrored subtree as one direction sees it: `partitioned` roots become the
/// origin's own sub-path, mirrored one way from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub path: String,
    pub mode: ZkMode,
}

/// The roots a direction from `origin` carries (`roots` as configured).
pub fn direction_roots(roots: &[ZkRoot], origin: &str) -> Vec<Root> {
    roots
        .iter()
        .filter_map(|r| match r.mode {
            ZkMode::OneWay => (r.home.as_deref() == Some(origin)).then(|| Root {
                path: r.path.clone(),
                mode: ZkMode::OneWay,
            }),
            ZkMode::Partitioned => Some(Root {
                path: format!("{}/{origin}", r.path),
                mode: ZkMode::OneWay,
            }),
            ZkMode::Lww => Some(Root {
                path: r.path.clone(),
                mode: ZkMode::Lww,
            }),
        })
        .collect()
}

/// The paths drc creates in its own ensemble when missing: every configured root
/// (and a partitioned root's sub-path of this zone).
pub fn own_paths(roots: &[ZkRoot], zone: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in roots {
        out.push(r.path.clone());
        if r.mode == ZkMode::Partitioned {
            out.push(format!("{}/{zone}", r.path));
        }
    }
    out
}

/// What drc knows of a node it wrote (the data of its metadata node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The zone whose write the value (or the delete) is.
    pub zone: String,
    /// Its modification time there (ms since the epoch; a delete: when it was seen).
    pub mtime: i64,
    /// Its zxid there (0 for a delete).
    pub mzxid: i64,
    #[serde(default)]
    pub deleted: bool,
}

impl Meta {
    pub fn parse(data: &[u8]) -> Option<Meta> {
        serde_json::from_slice(data).ok()
    }

    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("meta serializes")
    }
}

/// The metadata path of `path`.
pub fn meta_path(path: &str) -> String {
    format!("{META_ROOT}{path}")
}

/// The parent of an absolute path (`None` for `/`).
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// A node as read: data, stat.
pub type Read = Option<(Vec<u8>, zk::Stat)>;

/// Reads `path` and its metadata node in one request (a consistent view).
pub async fn read_with_meta(c: &zk::Client, addr: &str, path: &str) -> Result<(Read, Read), Error> {
    let mut r = c.new_multi_reader();
    r.add_get_data(path).map_err(|e| zerr(addr, "reading", e))?;
    r.add_get_data(&meta_path(path)).map_err(|e| zerr(addr, "reading", e))?;
    let mut out = r
        .commit()
        .await
        .map_err(|e| zerr(addr, &format!("reading {path}"), e))?;
    let one = |x: zk::MultiReadResult| -> Result<Read, Error> {
        match x {
            zk::MultiReadResult::Data { data, stat } => Ok(Some((data, stat))),
            zk::MultiReadResult::Error { err: zk::Error::NoNode } => Ok(None),
            zk::MultiReadResult::Error { err } => Err(zerr(addr, &format!("reading {path}"), err)),
            _ => Ok(None),
        }
    };
    let meta = one(out.pop().expect("two results"))?;
    let node = one(out.pop().expect("two results"))?;
    Ok((node, meta))
}

/// Connects to the ensemble `connect` (`host:port[,host:port]`), over TLS to every
/// server when `tls` is set (their `secureClientPort`).
pub async fn connect(
    connect: &str,
    tls: Option<&zk::TlsOptions>,
    session_timeout: Duration,
) -> Result<zk::Client, Error> {
    let c = zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(Duration::from_secs(5));
    let r = match tls {
        Some(t) => c.with_tls(t.clone()).secure_connect(connect).await,
        None => c.connect(connect).await,
    };
    r.map_err(|e| {
        let what = match tls {
            // (a refused certificate, like a plain port, ends in a timeout)
            Some(_) => "connecting over TLS (a timeout here is also what a certificate the CA in [zookeeper.tls] / [peers.zookeeper.tls] did not issue, or a plain port, looks like)",
            None => "connecting",
        };
        zerr(connect, what, e)
    })
}

/// The ZooKeeper client's TLS from a `[zookeeper.tls]` / `[peers.zookeeper.tls]`
/// table (`section`); `None` without one, or when disabled. Reads the files now. The client always
/// checks the certificate against `ca`: `verify-full` (default) also checks it was
/// issued for the host in `connect`, `verify-ca` does not; `required` and
/// `server_name` are refused, naming what to use instead.
pub fn tls_options(
    t: Option<&TlsConfig>,
    base_dir: &std::path::Path,
    section: &str,
) -> Result<Option<zk::TlsOptions>, String> {
    let Some(t) = t else {
        return Ok(None);
    };
    t.validate(section)?;
    match t.mode {
        TlsMode::Disabled => return Ok(None),
        TlsMode::Required => {
            return Err(format!(
                "[{section}] mode = \"required\": drc's ZooKeeper client always checks the certificate; set ca and mode = \"verify-ca\" (or \"verify-full\")"
            ))
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull => {}
    }
    if t.server_name.is_some() {
        return Err(format!(
            "[{section}] server_name: drc's ZooKeeper client checks each server against its host in connect; remove server_name and use names the certificates list, or mode = \"verify-ca\""
        ));
    }
    let Some(ca) = &t.ca else {
        return Err(format!(
            "[{section}] ca: set the CA (PEM) that issued the ensemble's certificates"
        ));
    };
    crate::tls::install_default_provider();
    let read = |key: &str, p: &std::path::Path| {
        let path = base_dir.join(p);
        crate::tls::read_pem_file(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("[{section}] {key} {}: {e}", path.display()))
    };
    let mut o = zk::TlsOptions::new()
        .with_pem_ca(&read("ca", ca)?)
        .map_err(|e| format!("[{section}] ca {}: {e}", base_dir.join(ca).display()))?;
    if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
        o = o
            .with_pem_identity(&read("cert", cert)?, &read("key", key)?)
            .map_err(|e| format!("[{section}] cert/key: {e}"))?;
    }
    if t.mode == TlsMode::VerifyCa {
        // SAFETY (the crate's marker for a weaker check): the mode the operator chose;
        // the chain is still verified against ca
        o = unsafe { o.with_no_hostname_verification() };
    }
    Ok(Some(o))
}

/// A ZooKeeper error as drc's: connection, session and throttling problems are
/// transient (the direction starts again with a new session and a full reconcile);
/// refusals (no rights, a bad ACL) are definite.
pub fn zerr(addr: &str, what: &str, e: zk::Error) -> Error {
    use zk::Error as E;
    let transient = matches!(
        e,
        E::ConnectionLoss
            | E::Timeout
            | E::Throttled
            | E::SessionExpired
            | E::SessionMoved
            | E::ClientClosed
            | E::NoHosts
            | E::Custom(_)
            | E::NotReadOnly
    );
    let what = format!("ZooKeeper {what}: {e}");
    if transient {
        Error::Transient {
            addr: addr.to_string(),
            what,
        }
    } else {
        Error::Server {
            addr: addr.to_string(),
            what,
        }
    }
}

/// Creates `path` and its missing ancestors as persistent nodes with no data (ACL:
/// anyone), as drc does for the configured roots and its own `/drc/zk/meta`.
pub async fn ensure_path(c: &zk::Client, addr: &str, path: &str) -> Result<(), Error> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match c.create(&at, b"", &opts).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(zerr(addr, &format!("creating {at}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(text: &str) -> Result<Option<zk::TlsOptions>, String> {
        let t: TlsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        tls_options(Some(&t), std::path::Path::new("/nonexistent"), "zookeeper.tls")
    }

    #[test]
    fn tls_modes_the_client_cannot_honour_are_refused_with_what_to_use() {
        let e = tls("mode = \"required\"").unwrap_err();
        assert!(e.contains("verify-ca"), "{e}");
        let e = tls("ca = \"ca.pem\"\nserver_name = \"zk1\"").unwrap_err();
        assert!(e.contains("server_name") && e.contains("connect"), "{e}");
        let e = tls("mode = \"verify-full\"").unwrap_err();
        assert!(e.contains("[zookeeper.tls] ca"), "{e}");
        let e = tls("ca = \"ca.pem\"").unwrap_err();
        assert!(e.contains("[zookeeper.tls] ca /nonexistent/ca.pem"), "{e}");
        assert!(tls("mode = \"disabled\"").unwrap().is_none());
        let e = tls("ca = \"/dev/zero\"").unwrap_err();
        assert!(e.contains("1 MiB"), "{e}");
    }

    #[test]
    fn directions_carry_the_roots_their_origin_writes() {
        let roots = vec![
            ZkRoot {
                path: "/shared".into(),
                mode: ZkMode::Lww,
                home: None,
            },
            ZkRoot {
                path: "/from-a".into(),
                mode: ZkMode::OneWay,
                home: Some("a".into()),
            },
            ZkRoot {
                path: "/reg".into(),
                mode: ZkMode::Partitioned,
                home: None,
            },
        ];
        let paths = |o| {
            direction_roots(&roots, o)
                .into_iter()
                .map(|r| r.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(paths("a"), ["/shared", "/from-a", "/reg/a"]);
        assert_eq!(paths("b"), ["/shared", "/reg/b"]);
        assert_eq!(own_paths(&roots, "b"), ["/shared", "/from-a", "/reg", "/reg/b"]);
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(meta_path("/a/b"), "/drc/zk/meta/a/b");
    }

    #[test]
    fn meta_reads_back_and_rejects_garbage() {
        let m = Meta {
            zone: "a".into(),
            mtime: 5,
            mzxid: 7,
            deleted: false,
        };
        assert_eq!(Meta::parse(&m.bytes()), Some(m));
        assert_eq!(Meta::parse(b""), None);
        assert_eq!(Meta::parse(b"not json"), None);
    }
}
