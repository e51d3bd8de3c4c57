//! Applying a full sync (the origin's snapshot) without undoing this zone's own recent
//! writes and without resurrecting the origin's deletes.
//!
//! A full sync happens on a first start and when the origin's backlog no longer holds
//! drc's position (a long outage, a restarted origin Redis). Then the commands the
//! origin ran in the gap are gone: only its state (the snapshot) is left. Two rules
//! make this zone's state the origin's without losing this zone's own writes:
//!
//! * **This zone's recent writes stand.** `P` is where the origin had applied this
//!   zone's stream (`drc:pos:<this zone>` in the origin's Redis, read just before the
//!   sync). Every key this zone wrote after `P` (read from this zone's own stream from
//!   `P`, read to its end before each group of chunks is applied, with the chunks'
//!   keys watched (`WATCH`) so that a write between that read and the apply aborts
//!   it and the group is decided again) is newer here than in the snapshot, and on its
//!   way to the origin: the snapshot does not replace it and the sweep does not delete
//!   it. A large value's later chunks follow its first whatever happens meanwhile.
//! * **The origin's deletes hold (the sweep).** After the snapshot, every key in
//!   scope here that the snapshot did not hold (recorded in `drc:seen:<origin>` with
//!   the snapshot's own transactions) and that this zone did not write after `P` is
//!   one the origin deleted (or let expire) in the gap: it is deleted here.
//!
//! With no `P` (the origin never applied this zone's data: a first sync) nothing here
//! is the origin's to delete, and every key of the snapshot is taken. When this zone's
//! own backlog no longer holds `P` either, the recent writes cannot be told apart:
//! the snapshot is taken whole and the sweep is skipped, with a warning (run `drc
//! redis verify`).
//!
//! Every write here is a marked transaction (the peer never gets it back); the
//! position after the snapshot is written last, so a crash means a full sync again.

use super::apply::{RedisApplier, RedisPos, SnapshotMark};
use super::own::OwnStream;
use super::scope::Scope;
use super::stream::RedisTx;
use super::verify::Homes;
use crate::error::Error;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Longest time the set of this zone's recent writes may lag its stream while a
/// snapshot is applied.
pub const REFRESH: Duration = Duration::from_millis(20);

/// Snapshot chunks are applied together, up to this many commands or bytes held
/// ([`RedisTx::bytes`]; or [`REFRESH`] after the last look at this zone's recent
/// writes) per round trip. A flush holds about four times its bytes (the commands,
/// the client's copy of them and their encoding): 2 MB keeps a full sync of a
/// million-member set under 50 MB of daemon memory (94 MB at 8 MB with the
/// arguments counted without their vectors), at ~50,000 members per round trip.
const PENDING_COMMANDS: usize = 512;
const PENDING_BYTES: usize = 2 << 20;

/// Keys of the snapshot being applied, per origin (database 0): `drc:seen:<origin>`.
pub const SEEN_PREFIX: &[u8] = b"drc:seen:";

/// Where this zone's Redis is, for reading its own stream.
#[derive(Debug, Clone)]
pub struct Local {
    /// This zone's name (its heartbeat key is `drc:hb:<zone>`).
    pub zone: String,
    pub server: super::endpoint::Endpoint,
}

/// A key: (database, name).
type DbKey = (u64, Vec<u8>);
/// A command in its database.
type Command = (u64, Vec<Vec<u8>>);

/// The state of one full sync being applied.
pub struct FullSync {
    origin: String,
    sync: SnapshotMark,
    scope: Scope,
    homes: Homes,
    /// This zone's own stream from `P`, and the keys written there (not by drc).
    tail: Option<OwnStream>,
    recent: HashSet<(u64, Vec<u8>)>,
    refreshed: Option<Instant>,
    /// The current key of the snapshot is one of the recent writes: its chunks are skipped.
    skipping: bool,
    /// Chunks gathered for one round trip ([`FullSync::flush`]) by key, the keys
    /// seen (for the sweep), and their size.
    /// (key, its chunks, decided: its first chunks were applied, the rest follows
    /// whatever happens here meanwhile)
    pending: Vec<(DbKey, Vec<Command>, bool)>,
    seen: Vec<Vec<u8>>,
    /// The key the snapshot is reading.
    current: Option<DbKey>,
    pending_commands: usize,
    pending_bytes: usize,
    pub skipped_keys: u64,
    pub deleted_keys: u64,
}

impl FullSync {
    /// Starts applying `origin`'s snapshot taken at `sync`; `peer_pos` is `P`.
    pub async fn start(
        applier: &mut RedisApplier,
        local: &Local,
        origin: &str,
        sync: SnapshotMark,
        peer_pos: Option<RedisPos>,
        scope: Scope,
        homes: Homes,
    ) -> Result<FullSync, Error> {
        applier.forget(&seen_key(origin)).await?;
        let tail = match &peer_pos {
            None => None,
            Some(p) => match OwnStream::after(local, p).await? {
                Some(mut own) => {
                    // the snapshot applied here comes back in this stream: read past
                    own.light_marker([super::stream::MARKER_PREFIX, origin.as_bytes()].concat());
                    Some(own)
                }
                None => {
                    tracing::warn!(
                        from = %origin,
                        "full sync from zone {origin}: this zone's Redis no longer holds its stream from where zone {origin} had applied it, so this zone's recent writes cannot be told from old ones: the snapshot is taken whole and keys zone {origin} deleted meanwhile are not deleted here (run `drc redis verify`)"
                    );
                    None
                }
            },
        };
        Ok(FullSync {
            origin: origin.to_string(),
            sync,
            scope,
            homes,
            tail,
            recent: HashSet::new(),
            refreshed: None,
            skipping: false,
            pending: Vec::new(),
            seen: Vec::new(),
            current: None,
            pending_commands: 0,
            pending_bytes: 0,
            skipped_keys: 0,
            deleted_keys: 0,
        })
    }

    /// Reads this zone's own stream up to its current end (at most every [`REFRESH`]
    /// unless `now`): the keys written since `P` by anything but drc.
    async fn refresh(&mut self, applier: &mut RedisApplier, now: bool) -> Result<(), Error> {
        let Some(tail) = self.tail.as_mut() else {
            return Ok(());
        };
        if !now && self.refreshed.is_some_and(|t| t.elapsed() < REFRESH) {
            return Ok(());
        }
        let end = applier.master_offset().await?;
        // drc's application of this origin's own data is not a write of this zone;
        // another zone's data applied here (a third zone) or a repair is: kept
        let own = [super::stream::MARKER_PREFIX, self.origin.as_bytes()].concat();
        let (scope, recent) = (&self.scope, &mut self.recent);
        tail.read_to(end, |tx, _| {
            if tx.applier
                && tx
                    .commands
                    .first()
                    .and_then(|(_, a)| a.get(1))
                    .is_some_and(|k| *k == own)
            {
                return;
            }
            for (db, args) in &tx.commands {
                let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                for i in super::scope::key_positions(&name, args) {
                    if scope.covers(*db, &args[i]) {
                        recent.insert((*db, args[i].clone()));
                    }
                }
            }
        })
        .await?;
        self.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Takes one chunk of the snapshot (`key`: the chunk starts key (db, name)); the
    /// chunks are applied together by [`FullSync::flush`].
    pub async fn chunk(
        &mut self,
        applier: &mut RedisApplier,
        key: Option<(u64, Vec<u8>)>,
        tx: RedisTx,
    ) -> Result<(), Error> {
        if let Some((db, name)) = key {
            self.refresh(applier, false).await?;
            self.current = Some((db, name.clone()));
            self.seen.push([db.to_string().as_bytes(), b":", &name].concat());
            self.skipping = self.recent.contains(&(db, name.clone()));
            if self.skipping {
                // recorded as seen (not deleted by the sweep), not replaced
                self.skipped_keys += 1;
            } else {
                self.pending.push(((db, name), Vec::new(), false));
            }
        }
        if self.skipping {
            return Ok(());
        }
        let Some((_, commands, _)) = self.pending.last_mut() else {
            return Ok(());
        };
        self.pending_bytes += tx.bytes();
        self.pending_commands += tx.commands.len();
        commands.extend(tx.commands);
        if self.pending_commands >= PENDING_COMMANDS
            || self.pending_bytes >= PENDING_BYTES
            || self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH)
        {
            self.flush(applier).await?;
        }
        Ok(())
    }

    /// Applies the chunks gathered so far, exactly against this zone's own writes:
    /// their keys are watched (`WATCH`), this zone's stream is read to its end, the
    /// keys written here meanwhile are left out, and the rest is applied in one marked
    /// MULTI/EXEC (no position) that fails if a watched key changed after all; then
    /// it is decided again. A key's later chunks (a large value) follow its first.
    pub async fn flush(&mut self, applier: &mut RedisApplier) -> Result<(), Error> {
        if self.pending.is_empty() && self.seen.is_empty() {
            // (this zone's own stream is read on: its connection stays acknowledged)
            return self.refresh(applier, false).await;
        }
        loop {
            let keys: Vec<DbKey> = self.pending.iter().filter(|p| !p.2).map(|p| p.0.clone()).collect();
            applier.watch(&keys).await?;
            self.refresh(applier, true).await?;
            let before = self.pending.len();
            let had_current = self.pending.iter().any(|p| Some(&p.0) == self.current.as_ref());
            let recent = &self.recent;
            self.pending.retain(|(k, _, decided)| *decided || !recent.contains(k));
            self.skipped_keys += (before - self.pending.len()) as u64;
            if had_current && !self.pending.iter().any(|p| Some(&p.0) == self.current.as_ref()) {
                // the key being read was written here: its further chunks are left out too
                self.skipping = true;
            }
            // (the chunks are queued from where they are: a copy would double the memory)
            let seen = (!self.seen.is_empty()).then(|| {
                let mut sadd = vec![b"SADD".to_vec(), seen_key(&self.origin)];
                sadd.extend(self.seen.iter().cloned());
                (0, sadd)
            });
            let commands = self.pending.iter().flat_map(|(_, c, _)| c.iter()).chain(seen.iter());
            if applier
                .apply_snapshot_watched(&self.origin, commands, &self.sync)
                .await?
            {
                break;
            }
            // a watched key was written here after all: decide again
        }
        // the key being read goes on in the next chunks: decided now
        let current = self
            .pending
            .last()
            .map(|p| p.0.clone())
            .filter(|k| Some(k) == self.current.as_ref());
        self.pending.clear();
        if let Some(k) = current {
            self.pending.push((k, Vec::new(), true));
        }
        self.seen.clear();
        self.pending_commands = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    /// The sweep, then the position after the snapshot.
    pub async fn finish(mut self, applier: &mut RedisApplier, pos: &RedisPos) -> Result<(), Error> {
        self.flush(applier).await?;
        if self.tail.is_some() {
            for db in self.scope.databases().to_vec() {
                let mut cursor = 0u64;
                loop {
                    let (next, keys) = applier.scan(db, cursor).await?;
                    // keys homed in another zone than the origin are not the origin's to delete
                    let keys: Vec<Vec<u8>> = keys
                        .into_iter()
                        .filter(|k| self.scope.covers(db, k) && self.homes.of(k).is_none_or(|h| h == self.origin))
                        .collect();
                    if !keys.is_empty() {
                        self.refresh(applier, true).await?;
                        let members: Vec<Vec<u8>> = keys
                            .iter()
                            .map(|k| [db.to_string().as_bytes(), b":", k].concat())
                            .collect();
                        let seen = applier.smismember(&seen_key(&self.origin), &members).await?;
                        let gone: Vec<Vec<u8>> = keys
                            .into_iter()
                            .zip(seen)
                            .filter(|(k, seen)| !seen && !self.recent.contains(&(db, k.clone())))
                            .map(|(k, _)| k)
                            .collect();
                        if !gone.is_empty() {
                            self.deleted_keys += gone.len() as u64;
                            let mut del = vec![b"DEL".to_vec()];
                            del.extend(gone);
                            let tx = RedisTx {
                                commands: vec![(db, del)],
                                ..Default::default()
                            };
                            applier.apply_snapshot(&self.origin, &tx, &self.sync).await?;
                        }
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        applier.forget(&seen_key(&self.origin)).await?;
        applier.apply(&self.origin, &RedisTx::default(), pos).await?;
        tracing::info!(
            from = %self.origin,
            kept_recent = self.skipped_keys,
            deleted = self.deleted_keys,
            swept = self.tail.is_some(),
            "Redis full sync applied: this zone's newer writes kept, keys deleted in zone {} meanwhile deleted here",
            self.origin
        );
        Ok(())
    }
}

fn seen_key(origin: &str) -> Vec<u8> {
    [SEEN_PREFIX, origin.as_bytes()].concat()
}
