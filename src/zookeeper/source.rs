//! The pipeline source of a ZooKeeper direction: the origin zone's ensemble.
//!
//! Per session: a persistent recursive watch on every root **first**, then a full
//! read of every root (a reconcile), then the watch's events. Events are hints (ZooKeeper
//! 3.8 gives them no zxid and replays nothing missed while disconnected): each names a
//! path that is read again, and the read is what is shipped. A disconnect ends the
//! event phase; after the reconnect the watches are added again (the client crate
//! does not re-register persistent watches) and every root is read again; an expired
//! session ends the capture (transient: the direction starts over with a new
//! session). Every `reconcile_every` the roots are read again too.
//!
//! # What it yields
//! * [`ZkItem::Upsert`] for every persistent node the origin wrote itself (not one
//!   drc wrote there: its `mzxid` equals its metadata node's), with its data, ACL,
//!   mtime and mzxid; ephemeral nodes are never shipped (counted);
//! * [`ZkItem::Delete`] for a node the origin deleted itself (not drc's delete: the
//!   parent's `pzxid` equals the tombstone's `mzxid`);
//! * [`ZkItem::Reconciled`] after each complete read of a root, with every path it
//!   holds (the sink deletes what the origin no longer has, guarded).

use super::{meta_path, zerr, Meta, Root};
use crate::error::Error;
use crate::pipeline::{Item, Source};
use crate::telemetry::metrics as m;
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;
use zookeeper_client as zk;

/// Items between the capture task and the run loop.
const QUEUE: usize = 256;

/// One change of a direction.
#[derive(Debug)]
pub enum ZkItem {
    /// A node of the origin as read (`root`: index in the direction's roots);
    /// `live`: read after an event (the lag is measured), not by a reconcile.
    Upsert {
        root: usize,
        path: String,
        data: Vec<u8>,
        acl: Vec<zk::Acl>,
        mtime: i64,
        mzxid: i64,
        live: bool,
    },
    /// The origin deleted `path`; `at_ms`: when the capture saw it.
    Delete { root: usize, path: String, at_ms: i64 },
    /// A complete read of root `root` found `present` (`origin_root`: the root itself
    /// exists in the origin).
    Reconciled {
        root: usize,
        present: HashSet<String>,
        origin_root: bool,
    },
}

impl Item for ZkItem {
    fn opens(&self) -> bool {
        true
    }
    fn closes(&self) -> bool {
        true
    }
    fn weight(&self) -> usize {
        match self {
            ZkItem::Upsert { data, .. } => 1 + data.len() / 1024,
            ZkItem::Delete { .. } => 1,
            ZkItem::Reconciled { present, .. } => 1 + present.len() / 100,
        }
    }
}

/// Where and what to capture.
#[derive(Debug, Clone)]
pub struct ZkCapture {
    pub origin: String,
    /// This zone (metric labels).
    pub zone: String,
    /// The origin's ensemble.
    pub connect: String,
    /// TLS to it (`[peers.zookeeper.tls]`, or `[zookeeper.tls]` when publishing).
    pub tls: Option<zookeeper_client::TlsOptions>,
    pub session_timeout: Duration,
    pub roots: Vec<Root>,
    pub reconcile_every: Duration,
}

/// The source: the receiving end of the capture task.
pub struct ZkSource {
    rx: mpsc::Receiver<Result<ZkItem, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ZkSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ZkSource {
    pub fn start(s: ZkCapture) -> ZkSource {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(async move {
            if let Err(e) = capture(&s, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        ZkSource { rx, task }
    }
}

impl Source for ZkSource {
    type Item = ZkItem;

    async fn next(&mut self) -> Result<Option<ZkItem>, Error> {
        match self.rx.recv().await {
            Some(Ok(i)) => Ok(Some(i)),
            Some(Err(e)) => Err(e),
            // the capture ends only by sending its error: it panicked
            None => Err(Error::Transient {
                addr: String::new(),
                what: "the ZooKeeper capture task ended unexpectedly (a bug: see the log); starting over".into(),
            }),
        }
    }

    fn has_ready(&mut self) -> bool {
        !self.rx.is_empty()
    }
}

type Out = mpsc::Sender<Result<ZkItem, Error>>;

struct Counters {
    loops: metrics::Counter,
    ephemeral: metrics::Counter,
    sequential: metrics::Counter,
}

fn expired(addr: &str) -> Error {
    Error::Transient {
        addr: addr.to_string(),
        what: "ZooKeeper session expired (or closed): starting over with a new session and a full reconcile".into(),
    }
}

async fn capture(s: &ZkCapture, out: &Out) -> Result<(), Error> {
    let addr = s.connect.as_str();
    let labels = [("from_zone", s.origin.clone()), ("to_zone", s.zone.clone())];
    let counters = Counters {
        loops: metrics::counter!(m::ZK_LOOPS_SUPPRESSED, &labels),
        ephemeral: metrics::counter!(m::ZK_SKIPPED, "from_zone" => s.origin.clone(), "to_zone" => s.zone.clone(), "reason" => "ephemeral"),
        sequential: metrics::counter!(m::ZK_SKIPPED, "from_zone" => s.origin.clone(), "to_zone" => s.zone.clone(), "reason" => "sequential"),
    };
    let c = super::connect(addr, s.tls.as_ref(), s.session_timeout).await?;
    let mut states = c.state_watcher();
    let mut reason = "start";
    loop {
        // the watches first: a change after a root's read is an event
        let mut watchers = Vec::new();
        for r in &s.roots {
            watchers.push(
                c.watch(&r.path, zk::AddWatchMode::PersistentRecursive)
                    .await
                    .map_err(|e| zerr(addr, &format!("watching {}", r.path), e))?,
            );
        }
        for (i, r) in s.roots.iter().enumerate() {
            if !reconcile(&c, s, i, r, out, &counters).await? {
                return Ok(());
            }
        }
        let mut l = labels.to_vec();
        l.push(("reason", reason.to_string()));
        metrics::counter!(m::ZK_RECONCILES, &l).increment(1);
        tracing::debug!(from = %s.origin, reason, "ZooKeeper roots read in full");
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + s.reconcile_every, s.reconcile_every);
        loop {
            let event = async {
                if watchers.is_empty() {
                    return std::future::pending().await;
                }
                let futs = watchers.iter_mut().map(|w| Box::pin(w.changed()));
                let (e, i, _) = futures_util::future::select_all(futs).await;
                (e, i)
            };
            tokio::select! {
                st = states.changed() => {
                    if st.is_terminated() {
                        return Err(expired(addr));
                    }
                    // (the state watcher keeps the latest state only: a short disconnect
                    // may show as SyncConnected alone; either way, read everything again)
                    if matches!(st, zk::SessionState::Disconnected | zk::SessionState::SyncConnected) {
                        reconnected(&c, &mut states, s, addr).await?;
                        reason = "reconnect";
                        break;
                    }
                }
                (e, i) = event => {
                    if e.event_type == zk::EventType::Session {
                        if e.session_state.is_terminated() {
                            return Err(expired(addr));
                        }
                        // a disconnect, however short: changes made meanwhile are not
                        // replayed (ZOOKEEPER-4698)
                        reconnected(&c, &mut states, s, addr).await?;
                        reason = "reconnect";
                        break;
                    }
                    if !changed(&c, s, i, &e.path, out, &counters).await? {
                        return Ok(());
                    }
                }
                _ = tick.tick() => {
                    reason = "interval";
                    break;
                }
            }
        }
    }
}

/// Waits until the session is connected again (logged); an expired one is an error.
async fn reconnected(c: &zk::Client, states: &mut zk::StateWatcher, s: &ZkCapture, addr: &str) -> Result<(), Error> {
    tracing::info!(from = %s.origin, ensemble = %addr, "ZooKeeper connection interrupted; reading every root again once connected");
    loop {
        let st = c.state();
        if st.is_terminated() {
            return Err(expired(addr));
        }
        if st == zk::SessionState::SyncConnected {
            return Ok(());
        }
        let st = states.changed().await;
        if st.is_terminated() {
            return Err(expired(addr));
        }
    }
}

/// Reads `path` (named by an event) and ships what the origin did to it; `false`
/// when the direction is gone.
async fn changed(
    c: &zk::Client,
    s: &ZkCapture,
    root: usize,
    path: &str,
    out: &Out,
    k: &Counters,
) -> Result<bool, Error> {
    let addr = s.connect.as_str();
    let (node, meta) = super::read_with_meta(c, addr, path).await?;
    let meta = meta.and_then(|(d, st)| Meta::parse(&d).map(|m| (m, st.mzxid)));
    let item = match node {
        Some((data, stat)) => {
            if stat.ephemeral_owner != 0 {
                k.ephemeral.increment(1);
                return Ok(true);
            }
            if skipped_sequential(&s.roots[root], path) {
                k.sequential.increment(1);
                return Ok(true);
            }
            if meta.as_ref().is_some_and(|(_, mz)| *mz == stat.mzxid) {
                k.loops.increment(1);
                return Ok(true);
            }
            let acl = acl(c, addr, path).await?;
            let Some(acl) = acl else { return Ok(true) };
            ZkItem::Upsert {
                root,
                path: path.to_string(),
                data,
                acl,
                mtime: stat.mtime,
                mzxid: stat.mzxid,
                live: true,
            }
        }
        None if skipped_sequential(&s.roots[root], path) => return Ok(true),
        None => {
            // drc's own delete: the tombstone was written in the delete's multi, whose
            // zxid the parent's pzxid still holds
            if let (Some((m, mz)), Some(p)) = (&meta, super::parent(path)) {
                let pz = c
                    .check_stat(p)
                    .await
                    .map_err(|e| zerr(addr, "reading", e))?
                    .map(|st| st.pzxid);
                if m.deleted && pz == Some(*mz) {
                    k.loops.increment(1);
                    return Ok(true);
                }
            }
            ZkItem::Delete {
                root,
                path: path.to_string(),
                at_ms: crate::telemetry::status::now_us() / 1000,
            }
        }
    };
    Ok(out.send(Ok(item)).await.is_ok())
}

/// The ACL of `path` (`None`: it is gone).
async fn acl(c: &zk::Client, addr: &str, path: &str) -> Result<Option<Vec<zk::Acl>>, Error> {
    match c.get_acl(path).await {
        Ok((acl, _)) => Ok(Some(acl)),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(zerr(addr, &format!("reading the ACL of {path}"), e)),
    }
}

/// Reads root `i` breadth-first (node, metadata and children of each in one request),
/// ships the origin's own persistent nodes, then [`ZkItem::Reconciled`]; `false` when
/// the direction is gone.
async fn reconcile(
    c: &zk::Client,
    s: &ZkCapture,
    i: usize,
    root: &Root,
    out: &Out,
    k: &Counters,
) -> Result<bool, Error> {
    let addr = s.connect.as_str();
    let mut present = HashSet::new();
    let mut origin_root = false;
    let mut queue = VecDeque::from([root.path.clone()]);
    while let Some(path) = queue.pop_front() {
        let mut r = c.new_multi_reader();
        let add = |r: &mut zk::MultiReader<'_>, p: &str| -> Result<(), Error> {
            r.add_get_data(p).map_err(|e| zerr(addr, "reading", e))?;
            r.add_get_data(&meta_path(p)).map_err(|e| zerr(addr, "reading", e))?;
            r.add_get_children(p).map_err(|e| zerr(addr, "reading", e))
        };
        add(&mut r, &path)?;
        let res = r
            .commit()
            .await
            .map_err(|e| zerr(addr, &format!("reading {path}"), e))?;
        let mut it = res.into_iter();
        let (Some(node), Some(meta), Some(children)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let zk::MultiReadResult::Data { data, stat } = node else {
            continue; // gone meanwhile (an event follows)
        };
        if path == root.path {
            origin_root = true;
        }
        if stat.ephemeral_owner != 0 {
            k.ephemeral.increment(1);
            continue;
        }
        if root.mode == super::ZkMode::Lww && sequential(&path) {
            // (it exists in the origin: listed, so nothing here is deleted for it)
            present.insert(path.clone());
            k.sequential.increment(1);
            continue;
        }
        present.insert(path.clone());
        let drc_wrote = match meta {
            zk::MultiReadResult::Data { data: md, stat: ms } => Meta::parse(&md).is_some() && ms.mzxid == stat.mzxid,
            _ => false,
        };
        if drc_wrote {
            k.loops.increment(1);
        } else if let Some(acl) = acl(c, addr, &path).await? {
            let item = ZkItem::Upsert {
                root: i,
                path: path.clone(),
                data,
                acl,
                mtime: stat.mtime,
                mzxid: stat.mzxid,
                live: false,
            };
            if out.send(Ok(item)).await.is_err() {
                return Ok(false);
            }
        }
        if let zk::MultiReadResult::Children { mut children } = children {
            children.sort();
            for ch in children {
                queue.push_back(format!("{}/{ch}", path.trim_end_matches('/')));
            }
        }
    }
    let item = ZkItem::Reconciled {
        root: i,
        present,
        origin_root,
    };
    Ok(out.send(Ok(item)).await.is_ok())
}

/// In an `lww` root, `path` is a sequential node or below one (never shipped).
fn skipped_sequential(root: &Root, path: &str) -> bool {
    root.mode == super::ZkMode::Lww
        && path.strip_prefix(&root.path).is_some_and(|rest| {
            rest.split('/')
                .filter(|p| !p.is_empty())
                .any(|name| sequential(&format!("/{name}")))
        })
}

/// A sequential node's name ends with the 10-digit counter ZooKeeper appends (its
/// Stat does not say so): in two-way (`lww`) roots two zones' sequences would collide,
/// so such nodes are not shipped (one-way and partitioned roots copy them by name).
pub fn sequential(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    name.len() >= 10 && name.bytes().rev().take(10).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sequential_names_end_with_ten_digits() {
        assert!(super::sequential("/q/job-0000000042"));
        assert!(super::sequential("/q/0000000001"));
        assert!(!super::sequential("/q/job-42"));
        assert!(!super::sequential("/q/v2024120712x"));
        let lww = super::Root {
            path: "/q".into(),
            mode: super::super::ZkMode::Lww,
        };
        assert!(super::skipped_sequential(&lww, "/q/job-0000000007/status"));
        assert!(!super::skipped_sequential(&lww, "/q/job-7/status"));
        let one_way = super::Root {
            path: "/q".into(),
            mode: super::super::ZkMode::OneWay,
        };
        assert!(!super::skipped_sequential(&one_way, "/q/job-0000000007"));
    }
}
