//! Later-write-wins for keys without a home (`[redis] conflicts = "later_write"`).
//!
//! # The rule
//! Two writes of a key are **concurrent** when neither zone had applied the other's
//! write when it made its own. Every write has a **version**: (its origin's clock, the
//! origin zone), where the clock is the origin daemon's last heartbeat value
//! (`drc:hb:<zone>`, ms) before the write **in the origin's stream**. Between two
//! concurrent writes of a key that both set its whole value (SET and its kin, DEL,
//! RESTORE, RENAME, ...: [`whole`]) the greater version stands in every zone: the
//! zone that wrote the lesser one applies the greater, the zone that wrote the greater
//! does not apply the lesser (`drc_redis_conflicts_total{rule="later_write"}`). A
//! write that follows another zone's write it had seen is not concurrent with it and
//! is applied whatever the clocks say. When one of the two changed only part of the
//! value (HSET, SADD, APPEND, EXPIRE, ...) both are applied
//! (`rule="merged"`): changes to different fields or members converge, others may
//! not (`drc redis verify` reports them).
//!
//! # Why both zones decide the same
//! A version is a function of the origin's stream alone: the clock a capture carries
//! in every position ([`RedisPos::clock`]) is the one this zone's own reading of its
//! stream computes ([`super::own`]). Concurrency is read from the streams too: the
//! origin's stream says how far it had applied this zone's stream before each write
//! ([`RedisPos::seen`], from the `drc:pos:<zone>` it set), and this zone's own stream
//! says where it wrote the key: a write of this zone past that point is concurrent.
//! So zone A judging (B's write, A's write) and zone B judging (A's write, B's
//! write) see the same two versions and the same concurrency, and keep the same one.
//!
//! # Exactness
//! Before a batch touching such keys is applied, the keys are watched (`WATCH`), this
//! zone's stream is read to its end, the batch is judged, and MULTI/EXEC fails if a
//! watched key was written meanwhile (then it is judged again): no local write slips
//! between the judgement and the apply. This zone's writes are kept only until the
//! origin has applied them (they can no longer be concurrent with its next writes):
//! the window is as long as the lag.
//!
//! # Limits
//! * Clock resolution is `heartbeat_ms`: writes closer than that compare by zone
//!   name; zones' clocks must agree to well within it (NTP).
//! * With three zones, a third zone's write applied here is not one of this zone's
//!   writes: concurrency is judged pairwise, between the origin and this zone.

use super::apply::{RedisApplier, RedisPos};
use super::fullsync::Local;
use super::own::OwnStream;
use super::scope::{key_positions, Scope};
use super::stream::RedisTx;
use super::verify::Homes;
use crate::error::Error;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use wildmatch::WildMatch;

/// `[redis] conflicts`: how concurrent writes of a key without a home are settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflicts {
    /// Every write applied as it comes.
    #[default]
    Apply,
    /// The later write (origin heartbeat time, then zone name) stands everywhere.
    LaterWrite,
}

/// Which keys the later write settles.
#[derive(Debug, Clone)]
pub struct Rules {
    enabled: bool,
    counters: Vec<WildMatch>,
    homes: Homes,
    scope: Scope,
}

impl Rules {
    pub fn new(conflicts: Conflicts, counters: &[String], homes: Homes, scope: Scope) -> Rules {
        Rules {
            enabled: conflicts == Conflicts::LaterWrite,
            counters: counters.iter().map(|p| WildMatch::new(p)).collect(),
            homes,
            scope,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `key` of database `db` is settled by the later write: synced, without a home,
    /// not a counter.
    pub fn decides(&self, db: u64, key: &[u8]) -> bool {
        if !self.enabled || !self.scope.covers(db, key) || self.homes.of(key).is_some() {
            return false;
        }
        let k = String::from_utf8_lossy(key);
        !self.counters.iter().any(|p| p.matches(&k))
    }

    /// The keys of `tx` the later write settles.
    pub fn keys<'a>(&'a self, tx: &'a RedisTx) -> impl Iterator<Item = (u64, Vec<u8>)> + 'a {
        tx.commands.iter().flat_map(move |(db, args)| {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            key_positions(&name, args)
                .into_iter()
                .filter(move |&i| self.decides(*db, &args[i]))
                .map(move |i| (*db, args[i].clone()))
        })
    }
}

/// A command that sets the whole value of its keys (what was there before does not
/// matter): between two such writes the later one is the value.
pub fn whole(name: &str) -> bool {
    matches!(
        name,
        "SET"
            | "SETEX"
            | "PSETEX"
            | "SETNX"
            | "GETSET"
            | "GETDEL"
            | "MSET"
            | "MSETNX"
            | "DEL"
            | "UNLINK"
            | "RESTORE"
            | "RENAME"
            | "RENAMENX"
    )
}

/// This zone's last write of a key.
#[derive(Debug, Clone, Copy)]
struct Write {
    /// The offset after it in this zone's stream.
    offset: u64,
    /// This zone's clock before it.
    clock: i64,
    whole: bool,
}

/// What judging a batch found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Commands not applied: this zone's concurrent write is later.
    pub lost: u64,
    /// Concurrent writes applied both (one of them partial).
    pub merged: u64,
    /// A key of the first conflict (for the log).
    pub example: Option<Vec<u8>>,
}

/// How often this zone's stream is read at least, even with nothing to judge (its
/// server keeps what this replica has not read).
const KEEP_UP: Duration = Duration::from_millis(500);

/// This zone's recent writes of the keys the later write settles, the origin has not
/// applied yet.
pub struct Window {
    origin: String,
    local: Local,
    rules: Rules,
    own: Option<OwnStream>,
    /// The replication id of this zone's stream as read (offsets compare within it),
    /// and the offset the reading started after.
    replid: String,
    start: u64,
    /// It started from where the origin had applied this zone's stream (or tried to:
    /// that backlog was gone), not from an offset taken from the server.
    anchored: bool,
    writes: HashMap<(u64, Vec<u8>), Write>,
    read_at: Option<Instant>,
}

impl Window {
    /// The window of the direction `origin` → this zone (`local`).
    pub fn new(origin: &str, local: Local, rules: Rules) -> Window {
        Window {
            origin: origin.to_string(),
            local,
            rules,
            own: None,
            replid: String::new(),
            start: 0,
            anchored: false,
            writes: HashMap::new(),
            read_at: None,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// This zone's writes of settled keys the origin may not have seen (for tests and
    /// `/status`).
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Reads this zone's stream to its current end. The first time, it starts where
    /// the origin had applied it (`from`: the `seen` of the batch's first position),
    /// so that every write of this zone the origin has not seen is known.
    ///
    /// A window started without that point (the origin had not applied this zone's
    /// stream yet: its first full sync) starts again once the origin says where it is,
    /// if that is earlier than where it started.
    ///
    /// `end`: the offset to read to, when the caller took it (after its `WATCH`).
    pub async fn catch_up(
        &mut self,
        applier: &mut RedisApplier,
        from: Option<&RedisPos>,
        end: Option<u64>,
    ) -> Result<(), Error> {
        if let Some(f) = from {
            if self.own.is_some() && !self.anchored && f.replid == self.replid && f.offset < self.start {
                tracing::info!(from = %self.origin, "later-write-wins: zone {} has now applied this zone's stream; its writes since are read again", self.origin);
                self.own = None;
                self.writes.clear();
            }
        }
        if self.own.is_none() {
            let zone = self.local.zone.clone();
            let mut own = match from {
                Some(p) => OwnStream::after(&self.local, p).await?,
                None => None,
            };
            if let (None, Some(f)) = (&own, from) {
                // the backlog no longer goes back that far (a restarted server's starts
                // at its restart): from its oldest point, the clock of `from` the best
                // known (exact unless a heartbeat fell in the gap)
                if let Some((replid, start)) = applier.backlog_start().await?.filter(|(_, s)| *s > f.offset) {
                    let at = RedisPos {
                        replid,
                        offset: start,
                        clock: f.clock,
                        ..Default::default()
                    };
                    if let Some(mut o) = OwnStream::after(&self.local, &at).await? {
                        tracing::warn!(from = %self.origin, gap = start - f.offset, "later-write-wins: this zone's Redis holds its stream only from offset {start}, not from {} where zone {} had applied it (a restarted server, or a backlog too small): writes of this zone in between are not known, and zone {}'s concurrent writes of those keys are applied as they come", f.offset, self.origin, self.origin);
                        o.db_unknown();
                        own = Some(o);
                    }
                }
            }
            self.own = Some(match own {
                Some(o) => o,
                None => {
                    if from.is_some() {
                        tracing::warn!(from = %self.origin, "later-write-wins: this zone's Redis no longer holds its stream from where zone {} had applied it: this zone's writes before now are not known, and concurrent writes of them are applied as they come until zone {} has applied this zone's stream to now", self.origin, self.origin);
                    }
                    let p = applier.now(&zone).await?;
                    let mut o = OwnStream::after(&self.local, &p)
                        .await?
                        .ok_or_else(|| Error::Transient {
                            addr: self.local.server.addr.clone(),
                            what: "this zone's Redis refused to continue its own stream from its current offset".into(),
                        })?;
                    o.db_unknown();
                    o
                }
            });
            let own = self.own.as_mut().expect("just set");
            // the window ignores drc's own transactions whole
            own.light_applier();
            (self.replid, self.start) = (own.at().0.to_string(), own.at().1);
            self.anchored = from.is_some();
        }
        let end = match end {
            Some(e) => e,
            None => applier.master_offset().await?,
        };
        let own = self.own.as_mut().expect("started above");
        let (rules, writes) = (&self.rules, &mut self.writes);
        own.read_to(end, |tx, clock| {
            // drc's writes (the origin's data, repairs) are not this zone's
            if tx.applier {
                return;
            }
            for (db, args) in &tx.commands {
                let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                for i in key_positions(&name, args) {
                    if rules.decides(*db, &args[i]) {
                        let w = Write {
                            offset: tx.offset,
                            clock,
                            whole: whole(&name),
                        };
                        tracing::debug!(key = %String::from_utf8_lossy(&args[i]), offset = tx.offset, clock, whole = w.whole, "local write");
                        writes.insert((*db, args[i].clone()), w);
                    }
                }
            }
        })
        .await?;
        self.replid = own.at().0.to_string();
        self.read_at = Some(Instant::now());
        Ok(())
    }

    /// Keeps this zone's stream read while nothing is judged (at most every
    /// [`KEEP_UP`]).
    pub async fn keep_up(&mut self, applier: &mut RedisApplier) -> Result<(), Error> {
        if self.own.is_some() && self.read_at.is_none_or(|t| t.elapsed() >= KEEP_UP) {
            self.catch_up(applier, None, None).await?;
        }
        Ok(())
    }

    /// Judges `batch` (transactions of the origin with the positions after them;
    /// `zone`: this zone) against this zone's writes read so far: commands whose
    /// settled key this zone wrote later, concurrently, are taken out.
    pub fn judge(&mut self, batch: &mut [(RedisTx, RedisPos)], zone: &str) -> Verdict {
        let mut v = Verdict::default();
        for (tx, pos) in batch.iter_mut() {
            // how far the origin had applied this zone's stream: this zone's writes
            // past it are concurrent with the origin's (unknown: all are)
            let seen = pos.seen_of(zone).filter(|s| s.replid == self.replid).map(|s| s.offset);
            if !tx.commands.is_empty() && !self.writes.is_empty() {
                let remote = (pos.clock, self.origin.as_str());
                let mut lost = HashSet::new();
                for (ci, (db, args)) in tx.commands.iter().enumerate() {
                    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
                    for i in key_positions(&name, args) {
                        let Some(w) = self.writes.get(&(*db, args[i].clone())) else {
                            continue;
                        };
                        if seen.is_some_and(|s| w.offset <= s) || !self.rules.decides(*db, &args[i]) {
                            continue;
                        }
                        if v.example.is_none() {
                            v.example = Some(args[i].clone());
                        }
                        tracing::debug!(key = %String::from_utf8_lossy(&args[i]), local_offset = w.offset, local_clock = w.clock, remote_clock = pos.clock, remote_offset = pos.offset, ?seen, whole = w.whole, "concurrent writes");
                        if w.whole && whole(&name) {
                            if (w.clock, zone) > remote {
                                lost.insert(ci);
                            }
                        } else {
                            v.merged += 1;
                        }
                    }
                }
                if !lost.is_empty() {
                    v.lost += lost.len() as u64;
                    let mut ci = 0;
                    tx.commands.retain(|_| {
                        ci += 1;
                        !lost.contains(&(ci - 1))
                    });
                }
            }
            if let Some(s) = seen {
                self.writes.retain(|_, w| w.offset > s);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(
            Conflicts::LaterWrite,
            &["counter:*".into()],
            Homes::new(&[("route:*".to_string(), "a".to_string())].into()),
            Scope::new(&[0], &["*".into()]),
        )
    }

    /// Zone b's window with its writes (key, offset, clock, whole).
    fn window(writes: &[(&str, u64, i64, bool)]) -> Window {
        let local = Local {
            zone: "b".into(),
            server: crate::redis::endpoint::Endpoint::plain(""),
        };
        let mut w = Window::new("a", local, rules());
        w.replid = "own".into();
        for &(k, offset, clock, whole) in writes {
            w.writes
                .insert((0, k.as_bytes().to_vec()), Write { offset, clock, whole });
        }
        w
    }

    fn tx(cmds: &[&[&str]]) -> RedisTx {
        RedisTx {
            commands: cmds
                .iter()
                .map(|c| (0, c.iter().map(|a| a.as_bytes().to_vec()).collect()))
                .collect(),
            ..Default::default()
        }
    }

    /// A position of zone a at `clock` that had applied zone b's stream to `seen`.
    fn pos(clock: i64, seen: Option<u64>) -> RedisPos {
        let mut p = RedisPos {
            replid: "origin".into(),
            clock,
            ..Default::default()
        };
        if let Some(s) = seen {
            p.set_seen(
                "b",
                RedisPos {
                    replid: "own".into(),
                    offset: s,
                    ..Default::default()
                },
            );
        }
        p
    }

    fn names(t: &RedisTx) -> Vec<String> {
        t.commands
            .iter()
            .map(|(_, a)| String::from_utf8_lossy(&a[1]).into_owned())
            .collect()
    }

    #[test]
    fn a_concurrent_later_local_overwrite_keeps_the_origins_earlier_one_out() {
        let mut w = window(&[("k", 100, 2_000, true), ("old", 40, 9_000, true)]);
        // zone a wrote k at 1,000 having seen b's stream to 50: b's k (at 100) is concurrent and later
        let mut batch = vec![(
            tx(&[&["SET", "k", "a"], &["SET", "old", "a"], &["SET", "other", "a"]]),
            pos(1_000, Some(50)),
        )];
        let v = w.judge(&mut batch, "b");
        assert_eq!(v.lost, 1);
        // `old` (offset 40) was seen by zone a before it wrote: its write follows, applied
        assert_eq!(names(&batch[0].0), ["old", "other"]);
        // what zone a has seen can no longer be concurrent: forgotten
        assert!(!w.writes.contains_key(&(0, b"old".to_vec())));
        assert!(w.writes.contains_key(&(0, b"k".to_vec())));
    }

    #[test]
    fn the_origins_later_write_and_ties_by_zone_name_are_applied_by_the_lesser_zone() {
        // a later origin write
        let mut w = window(&[("k", 100, 1_000, true)]);
        let mut batch = vec![(tx(&[&["DEL", "k"]]), pos(2_000, Some(50)))];
        assert_eq!(w.judge(&mut batch, "b").lost, 0);
        assert_eq!(batch[0].0.commands.len(), 1);
        // the same clock: zone b > zone a, so b's write stands in b...
        let mut batch = vec![(tx(&[&["SET", "k", "a"]]), pos(1_000, Some(50)))];
        assert_eq!(w.judge(&mut batch, "b").lost, 1);
        // ...and judged from zone a's side (origin b, this zone a) b's is applied
        let local = Local {
            zone: "a".into(),
            server: crate::redis::endpoint::Endpoint::plain(""),
        };
        let mut wa = Window::new("b", local, rules());
        wa.replid = "own".into();
        wa.writes.insert(
            (0, b"k".to_vec()),
            Write {
                offset: 7,
                clock: 1_000,
                whole: true,
            },
        );
        let mut p = pos(1_000, None);
        p.replid = "b".into();
        let mut batch = vec![(tx(&[&["SET", "k", "b"]]), p)];
        assert_eq!(wa.judge(&mut batch, "a").lost, 0);
    }

    #[test]
    fn partial_changes_counters_homed_keys_and_unknown_positions() {
        let mut w = window(&[
            ("h", 100, 5_000, false),
            ("s", 100, 5_000, true),
            ("counter:n", 100, 5_000, true),
            ("route:1", 100, 5_000, true),
        ]);
        let mut batch = vec![(
            tx(&[
                &["HSET", "h", "f", "1"],
                &["SADD", "s", "m"],
                &["SET", "counter:n", "1"],
                &["SET", "route:1", "x"],
            ]),
            // no `seen` of zone b: everything b wrote is concurrent
            pos(1_000, None),
        )];
        let v = w.judge(&mut batch, "b");
        // HSET over a partial write, SADD over a whole one: merged, both applied;
        // counters and homed keys are not settled by the later write
        assert_eq!((v.lost, v.merged), (0, 2));
        assert_eq!(batch[0].0.commands.len(), 4);
        // an unknown position forgets nothing
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn positions_carry_clock_and_seen_and_read_older_texts() {
        let mut p = pos(1_234, Some(77));
        p.offset = 9;
        p.db = 2;
        let back = RedisPos::parse(&p.text()).unwrap();
        assert_eq!(back, p);
        p.kafka = Some(5);
        assert_eq!(RedisPos::parse(&p.text()).unwrap(), p);
        let old = RedisPos::parse("abc 10 0 4").unwrap();
        assert_eq!((old.offset, old.kafka, old.clock, old.seen.len()), (10, Some(4), 0, 0));
        assert!(RedisPos::parse("abc 10 0 - 5 b:x").is_none());
    }
}
