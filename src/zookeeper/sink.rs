//! The pipeline sink of a ZooKeeper direction: this zone's ensemble. Every change is
//! one multi that writes the node and its metadata node (`/drc/zk/meta<path>`,
//! [`super::Meta`]) together, with the version just read as the expected one: a
//! local write in between fails it, and it is decided again from a fresh read.
//! The metadata is the sink's durable position: what it holds is never written
//! again (a restart's reconcile writes only what changed).
//!
//! # Decisions per mode
//! * `one_way` (the origin is the root's home, or owns the partitioned sub-path): the
//!   origin's value is written; a node here that the origin does not have is deleted
//!   at the reconcile; a value written here is overwritten (both counted as conflicts).
//! * `lww`: the origin's value is written when its (mtime, zone) is later than this
//!   zone's: the metadata's for a value drc wrote, the node's own mtime and this
//!   zone for a value written here, a tombstone's for a deleted node. Ties go to the
//!   greater zone name, and between two writes of one zone in one millisecond to the
//!   later (its ensemble's mzxid; a test once saw zone a keep the earlier of two). A delete is dated when the origin's capture saw it. The
//!   ensembles' clocks are assumed to agree within the replication lag.

use super::source::ZkItem;
use super::{meta_path, parent, zerr, Meta, Read, Root, ZkMode};
use crate::error::Error;
use crate::pipeline::Sink;
use crate::telemetry::metrics as m;
use crate::telemetry::status::ZkDirection;
use std::collections::{HashSet, VecDeque};
use zookeeper_client as zk;

/// What a ZooKeeper sink takes: one item of a capture, or the items of a Kafka
/// message with its offset (written to `/drc/zk/pos/<origin>` in the multi of each
/// change: the offset before the message's while its items are applied, the
/// message's own with its last, so a consumer resumes at the first message not
/// applied whole; its items are idempotent).
#[derive(Debug)]
pub struct ZkDelivery {
    pub items: Vec<ZkItem>,
    pub kafka: Option<i64>,
}

impl From<ZkItem> for ZkDelivery {
    fn from(item: ZkItem) -> Self {
        ZkDelivery {
            items: vec![item],
            kafka: None,
        }
    }
}

impl crate::pipeline::Item for ZkDelivery {
    fn opens(&self) -> bool {
        true
    }
    fn closes(&self) -> bool {
        true
    }
    fn weight(&self) -> usize {
        self.items.iter().map(|i| i.weight()).sum()
    }
}

/// Where a Kafka consumer of `origin`'s topic stands: `/drc/zk/pos/<origin>`, data
/// `<topic> <offset of the last message applied>`.
pub fn position_path(origin: &str) -> String {
    format!("{}/{origin}", super::POS_ROOT)
}

/// The offset of the last message of `topic` applied here, if any (a position in
/// another topic, after a change of `topic_prefix`, is none: every root is read in
/// full again from the new topic's start, which is safe for ZooKeeper data).
pub async fn stored_offset(c: &zk::Client, addr: &str, origin: &str, topic: &str) -> Result<Option<i64>, Error> {
    match c.get_data(&position_path(origin)).await {
        Ok((d, _)) => {
            let text = String::from_utf8_lossy(&d);
            let mut it = text.split_whitespace();
            match (it.next(), it.next().and_then(|o| o.parse().ok())) {
                (Some(t), Some(o)) if t == topic => Ok(Some(o)),
                (Some(t), Some(_)) => {
                    tracing::info!(from = %origin, stored_topic = %t, %topic, "the ZooKeeper position is in another topic: reading the configured one from its start");
                    Ok(None)
                }
                _ => Ok(None),
            }
        }
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(zerr(addr, "reading the Kafka position", e)),
    }
}

/// A change decided again at most this often when local writes keep racing it.
const ATTEMPTS: usize = 5;

pub struct ZkSink {
    c: zk::Client,
    addr: String,
    origin: String,
    zone: String,
    roots: Vec<Root>,
    max_deletes: usize,
    /// Metadata paths known to exist (their parents need no look); behind a lock only
    /// to be filled from `&self` across awaits.
    meta_known: std::sync::Mutex<HashSet<String>>,
    nodes: metrics::Counter,
    deletes: metrics::Counter,
    conflicts: metrics::Counter,
    guarded: metrics::Counter,
    lag: metrics::Gauge,
    status: std::sync::Arc<ZkDirection>,
    /// The Kafka offset of the item being applied (written with its change), and the
    /// topic.
    at: Option<i64>,
    topic: Option<String>,
}

impl ZkSink {
    pub fn new(
        c: zk::Client,
        addr: &str,
        origin: &str,
        zone: &str,
        roots: Vec<Root>,
        max_deletes: usize,
        status: std::sync::Arc<ZkDirection>,
    ) -> Self {
        let labels = [("from_zone", origin.to_string()), ("to_zone", zone.to_string())];
        ZkSink {
            c,
            addr: addr.to_string(),
            origin: origin.to_string(),
            zone: zone.to_string(),
            roots,
            max_deletes,
            meta_known: Default::default(),
            nodes: metrics::counter!(m::ZK_NODES, &labels),
            deletes: metrics::counter!(m::ZK_DELETES, &labels),
            conflicts: metrics::counter!(m::ZK_CONFLICTS, &labels),
            guarded: metrics::counter!(m::ZK_GUARDED, &labels),
            lag: metrics::gauge!(m::ZK_LAG_SECONDS, &labels),
            status,
            at: None,
            topic: None,
        }
    }

    /// Over Kafka: the consumer's topic (its offsets are written with each change).
    pub fn over_kafka(mut self, topic: String) -> Self {
        self.topic = Some(topic);
        self
    }

    /// Adds the Kafka position to a change's multi (over Kafka).
    fn position(&self, w: &mut zk::MultiWriter<'_>) -> Result<(), Error> {
        match (self.at, &self.topic) {
            (Some(k), Some(t)) => w
                .add_set_data(&position_path(&self.origin), format!("{t} {k}").as_bytes(), None)
                .map_err(|e| self.err("writing the position", e)),
            _ => Ok(()),
        }
    }

    fn conflict(&self) {
        self.conflicts.increment(1);
        self.status.update(|s| s.conflicts += 1);
    }

    fn err(&self, what: &str, e: zk::Error) -> Error {
        zerr(&self.addr, what, e)
    }

    /// Adds creates of `path`'s missing ancestors below `stop` (exclusive) to `w`,
    /// parent first, with no data and `acl` (`meta`: metadata nodes, whose known
    /// paths need no look).
    async fn missing_ancestors(
        &self,
        w: &mut zk::MultiWriter<'_>,
        path: &str,
        stop: &str,
        acl: zk::Acls<'_>,
        meta: bool,
    ) -> Result<Vec<String>, Error> {
        let mut missing = Vec::new();
        let mut at = parent(path);
        while let Some(p) = at {
            if p.len() <= stop.len() || (meta && self.known().contains(p)) {
                break;
            }
            match self.c.check_stat(p).await.map_err(|e| self.err("reading", e))? {
                Some(_) => {
                    if meta {
                        self.known().insert(p.to_string());
                    }
                    break;
                }
                None => missing.push(p.to_string()),
            }
            at = parent(p);
        }
        missing.reverse();
        let opts = zk::CreateMode::Persistent.with_acls(acl);
        for p in &missing {
            w.add_create(p, b"", &opts).map_err(|e| self.err("creating", e))?;
        }
        Ok(missing)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.meta_known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This zone's version of a node for `lww`: (mtime, zone, the zone's mzxid) of
    /// what it holds. The mzxid orders two writes of one zone within one millisecond
    /// (mtime has no finer grain): it is compared only when mtime and zone are equal,
    /// so only between zxids of the same ensemble.
    fn local_version(&self, node: &Read, meta: &Option<(Meta, i64)>) -> Option<(i64, String, i64)> {
        match (node, meta) {
            (Some((_, st)), Some((m, mz))) if st.mzxid == *mz => Some((m.mtime, m.zone.clone(), m.mzxid)),
            (Some((_, st)), _) => Some((st.mtime, self.zone.clone(), st.mzxid)),
            (None, Some((m, _))) if m.deleted => Some((m.mtime, m.zone.clone(), m.mzxid)),
            (None, _) => None,
        }
    }

    async fn read(&self, path: &str) -> Result<(Read, Option<(Meta, i64)>, bool), Error> {
        let (node, meta) = super::read_with_meta(&self.c, &self.addr, path).await?;
        let meta_exists = meta.is_some();
        let meta = meta.and_then(|(d, st)| Meta::parse(&d).map(|m| (m, st.mzxid)));
        Ok((node, meta, meta_exists))
    }

    /// Writes the origin's node (see the module doc for when).
    #[allow(clippy::too_many_arguments)]
    async fn upsert(
        &mut self,
        root: &Root,
        path: &str,
        data: &[u8],
        acl: &[zk::Acl],
        mtime: i64,
        mzxid: i64,
        live: bool,
    ) -> Result<(), Error> {
        for _ in 0..ATTEMPTS {
            let (node, meta, meta_exists) = self.read(path).await?;
            let drc_wrote = matches!((&node, &meta), (Some((_, st)), Some((_, mz))) if st.mzxid == *mz);
            let local_acl = match &node {
                Some(_) => match self.c.get_acl(path).await {
                    Ok((a, _)) => Some(a),
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => return Err(self.err("reading an ACL", e)),
                },
                None => None,
            };
            let same_acl = local_acl.as_deref() == Some(acl);
            if drc_wrote
                && same_acl
                && meta
                    .as_ref()
                    .is_some_and(|(m, _)| !m.deleted && m.zone == self.origin && m.mzxid == mzxid)
            {
                return Ok(()); // applied before (an ACL change moves no zxid: compared too)
            }
            if root.mode == ZkMode::Lww {
                let theirs = (mtime, self.origin.clone(), mzxid);
                if let Some(mine) = self.local_version(&node, &meta) {
                    if theirs <= mine {
                        // this zone's is later: it is on its way to the origin
                        if mine.1 == self.zone {
                            self.conflict();
                        }
                        return Ok(());
                    }
                }
            }
            if let Some((d, _)) = &node {
                if d == data && same_acl {
                    return Ok(()); // a value this zone already has
                }
                if root.mode == ZkMode::OneWay && !drc_wrote {
                    self.conflict();
                    tracing::warn!(path, from = %self.origin, "a node of a one-way root was written in this zone; overwritten with zone {}'s value (its home)", self.origin);
                }
            }
            let m = Meta {
                zone: self.origin.clone(),
                mtime,
                mzxid,
                deleted: false,
            };
            let c = self.c.clone();
            let mut w = c.new_multi_writer();
            let created = self
                .missing_ancestors(&mut w, path, "", zk::Acls::new(acl), false)
                .await?;
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acl));
            match &node {
                Some((_, st)) => w.add_set_data(path, data, Some(st.version)),
                None => w.add_create(path, data, &opts),
            }
            .map_err(|e| self.err("writing", e))?;
            let mp = meta_path(path);
            let meta_created = self
                .missing_ancestors(&mut w, &mp, super::META_ROOT, zk::Acls::anyone_all(), true)
                .await?;
            let meta_opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            if meta_exists {
                w.add_set_data(&mp, &m.bytes(), None)
            } else {
                w.add_create(&mp, &m.bytes(), &meta_opts)
            }
            .map_err(|e| self.err("writing", e))?;
            self.position(&mut w)?;
            match w.commit().await {
                Ok(_) => {
                    self.known().extend(meta_created);
                    if !created.is_empty() {
                        tracing::debug!(?created, "parents created for {path}");
                    }
                    if local_acl.is_some_and(|a| a != acl) {
                        self.c
                            .set_acl(path, acl, None)
                            .await
                            .map_err(|e| self.err(&format!("setting the ACL of {path}"), e))?;
                    }
                    self.nodes.increment(1);
                    let lag = live.then(|| {
                        let now = crate::telemetry::status::now_us() / 1000;
                        (now - mtime).max(0) as f64 / 1e3
                    });
                    if let Some(l) = lag {
                        self.lag.set(l);
                    }
                    self.status.update(|s| {
                        s.nodes_written += 1;
                        if lag.is_some() {
                            s.lag_seconds = lag;
                        }
                    });
                    return Ok(());
                }
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode,
                    ..
                }) => {
                    // written here meanwhile: decide again
                    self.known().clear();
                    continue;
                }
                Err(e) => return Err(self.err(&format!("writing {path}"), e.into())),
            }
        }
        tracing::warn!(path, from = %self.origin, "ZooKeeper node written here {ATTEMPTS} times while drc applied zone {}'s value; left as it is (the next reconcile decides again)", self.origin);
        Ok(())
    }

    /// Deletes `path` with a tombstone; `whole`: its local children first (a one-way
    /// root's node); `Ok(false)`: not deleted (changed here, or children here).
    async fn delete(&mut self, root: &Root, path: &str, at_ms: i64) -> Result<bool, Error> {
        for _ in 0..ATTEMPTS {
            let (node, meta, meta_exists) = self.read(path).await?;
            let Some((_, st)) = &node else { return Ok(true) };
            if st.ephemeral_owner != 0 {
                return Ok(false);
            }
            if root.mode == ZkMode::Lww {
                if let Some(mine) = self.local_version(&node, &meta) {
                    // (a delete has no zxid: it loses a tie with a write of its zone)
                    if (at_ms, self.origin.clone(), 0) <= mine {
                        if mine.1 == self.zone {
                            self.conflict();
                        }
                        return Ok(false);
                    }
                }
            }
            if st.num_children > 0 {
                if root.mode != ZkMode::OneWay {
                    self.conflict();
                    tracing::warn!(path, from = %self.origin, "zone {} deleted a node that has children in this zone; kept", self.origin);
                    return Ok(false);
                }
                // a one-way root's subtree is the home's: children first
                let kids = self.c.list_children(path).await.map_err(|e| self.err("reading", e))?;
                for k in kids {
                    Box::pin(self.delete(root, &format!("{path}/{k}"), at_ms)).await?;
                }
                continue;
            }
            let m = Meta {
                zone: self.origin.clone(),
                mtime: at_ms,
                mzxid: 0,
                deleted: true,
            };
            let c = self.c.clone();
            let mut w = c.new_multi_writer();
            w.add_delete(path, Some(st.version))
                .map_err(|e| self.err("deleting", e))?;
            let mp = meta_path(path);
            let meta_created = self
                .missing_ancestors(&mut w, &mp, super::META_ROOT, zk::Acls::anyone_all(), true)
                .await?;
            if meta_exists {
                w.add_set_data(&mp, &m.bytes(), None)
            } else {
                w.add_create(
                    &mp,
                    &m.bytes(),
                    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
                )
            }
            .map_err(|e| self.err("writing", e))?;
            self.position(&mut w)?;
            match w.commit().await {
                Ok(_) => {
                    self.known().extend(meta_created);
                    self.deletes.increment(1);
                    self.status.update(|s| s.nodes_deleted += 1);
                    return Ok(true);
                }
                Err(zk::MultiWriteError::OperationFailed {
                    source: zk::Error::BadVersion | zk::Error::NotEmpty | zk::Error::NoNode | zk::Error::NodeExists,
                    ..
                }) => {
                    self.known().clear();
                    continue;
                }
                Err(e) => return Err(self.err(&format!("deleting {path}"), e.into())),
            }
        }
        Ok(false)
    }

    /// After a complete read of `root` in the origin: deletes here what the origin no
    /// longer has (one-way: every such node; lww: those whose value here is the
    /// origin's, written by drc), deepest first, at most `max_deletes`.
    async fn sweep(&mut self, root: &Root, present: &HashSet<String>, origin_root: bool) -> Result<(), Error> {
        if !origin_root {
            tracing::warn!(root = %root.path, from = %self.origin, "the root is missing in zone {}: nothing deleted here (deletion guard); create it there, or remove the root from [zookeeper]", self.origin);
            return Ok(());
        }
        let mut gone: Vec<(usize, String, bool)> = Vec::new();
        let mut queue = VecDeque::from([root.path.clone()]);
        while let Some(path) = queue.pop_front() {
            let (node, meta, _) = self.read(&path).await?;
            let Some((_, st)) = &node else { continue };
            if st.ephemeral_owner != 0 {
                continue;
            }
            if !present.contains(&path) {
                let drc_wrote = meta.as_ref().is_some_and(|(m, mz)| *mz == st.mzxid && !m.deleted);
                let origins = meta.as_ref().is_some_and(|(m, _)| m.zone == self.origin);
                if root.mode == ZkMode::OneWay || (drc_wrote && origins) {
                    gone.push((path.matches('/').count(), path.clone(), drc_wrote && origins));
                }
            }
            if st.num_children > 0 {
                let mut kids = self.c.list_children(&path).await.map_err(|e| self.err("reading", e))?;
                kids.sort();
                queue.extend(kids.into_iter().map(|k| format!("{path}/{k}")));
            }
        }
        gone.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if gone.len() > self.max_deletes {
            let held = gone.len() - self.max_deletes;
            self.guarded.increment(held as u64);
            tracing::warn!(root = %root.path, from = %self.origin, would_delete = gone.len(), deleting = self.max_deletes, "more nodes to delete than [zookeeper] max_deletes_per_pass allows: the deepest are deleted now, the rest at the next reconciles (check zone {}'s tree if this is unexpected)", self.origin);
            gone.truncate(self.max_deletes);
        }
        let now = crate::telemetry::status::now_us() / 1000;
        for (_, path, ours) in gone {
            if !ours {
                self.conflict();
                tracing::warn!(path = %path, from = %self.origin, "a node of a one-way root exists only in this zone; deleted (zone {} is its home)", self.origin);
            }
            self.delete(root, &path, now).await?;
        }
        Ok(())
    }
}

impl Sink for ZkSink {
    type Item = ZkDelivery;

    async fn write(&mut self, d: ZkDelivery) -> Result<(), Error> {
        let n = d.items.len();
        for (j, item) in d.items.into_iter().enumerate() {
            self.at = d.kafka.map(|k| if j + 1 == n { k } else { k - 1 });
            self.apply(item).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        // every change is committed when written
        Ok(())
    }
}

impl ZkSink {
    async fn apply(&mut self, item: ZkItem) -> Result<(), Error> {
        match item {
            ZkItem::Upsert {
                root,
                path,
                data,
                acl,
                mtime,
                mzxid,
                live,
            } => {
                let r = self.roots[root].clone();
                self.upsert(&r, &path, &data, &acl, mtime, mzxid, live).await
            }
            ZkItem::Delete { root, path, at_ms } => {
                let r = self.roots[root].clone();
                self.delete(&r, &path, at_ms).await.map(|_| ())
            }
            ZkItem::Reconciled {
                root,
                present,
                origin_root,
            } => {
                let r = self.roots[root].clone();
                self.sweep(&r, &present, origin_root).await?;
                if root + 1 == self.roots.len() {
                    self.status.update(|s| {
                        s.state = "applying".into();
                        s.reconciles += 1;
                    });
                }
                Ok(())
            }
        }
    }
}
