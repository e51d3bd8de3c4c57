//! Last-writer-wins: the decision for one incoming row change, as a pure function.
//!
//! The applier locks the local row and its tombstone (`SELECT … FOR UPDATE`), calls
//! [`decide`], and executes the returned [`Action`] in the same target transaction, so
//! the compare-and-write cannot lose an update under concurrent local writes
//! (ANCHORS.md, hurt #13). docs/CONFLICTS.md states the rules; in short, every write
//! carries a version (the row's version column; a delete carries the time of the
//! delete, never less than the deleted row's version), and each zone keeps, per key,
//! the greatest write:
//!
//! * a row is replaced only by a greater `(version, content)`;
//! * a delete of version `b` removes a local row of version `<= b` and leaves a
//!   tombstone `b`; a row write of version `<= tombstone` is dropped (a delete is never
//!   undone by a late older update);
//! * equal versions: a delete beats a row; two rows compare by a canonical content
//!   string computed by the server (`JSON_OBJECT` of the columns), the same in every zone;
//! * a local write is greater than the row or tombstone it replaces, whatever its
//!   clock says ([`local_write_version`], enforced by drc's triggers).
//!
//! Because "keep the greatest" is commutative, associative and idempotent, every zone
//! converges to the same state whatever the delivery order or duplication; the property
//! tests below check exactly that on random histories.

use std::cmp::Ordering;

/// A version value, comparable across zones: DATETIME(6) as `YYYYMMDDhhmmss.ffffff`
/// scaled to an integer of microseconds-of-the-calendar, or a BIGINT version as is.
pub type Version = i128;

/// What the applier knows about the local state of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Version and canonical content of the local row, if there is one.
    pub row: Option<(Version, String)>,
    /// Greatest tombstone version recorded for the key, if any.
    pub tombstone: Option<Version>,
}

/// The incoming write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Insert or update: the full new row (version, canonical content) and, for an
    /// update, the version of the row it replaced at its origin (its before image).
    Row(Version, String, Option<Version>),
    /// Delete of a row that had this version.
    Delete(Version),
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No local row: insert the incoming row.
    Insert,
    /// Replace the local row with the incoming one (it is greater).
    Overwrite,
    /// Delete the local row and record the tombstone.
    Delete,
    /// Record the tombstone only (no local row, or the local row is newer).
    Tombstone,
    /// Keep the local state. `conflict` names why, when the incoming write lost to a
    /// different local write (logged in the conflict log); `None` for a duplicate.
    Keep(Option<Conflict>),
}

/// Why an incoming write lost; recorded in `drc.conflicts.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The local row has a greater version (or equal version, greater content).
    LocalRowNewer,
    /// A delete of an equal or greater version was already applied here.
    DeletedLater,
    /// The incoming delete is older than the local row, which stays.
    RowNewerThanDelete,
}

impl Conflict {
    pub fn as_str(self) -> &'static str {
        match self {
            Conflict::LocalRowNewer => "local_row_newer",
            Conflict::DeletedLater => "deleted_later",
            Conflict::RowNewerThanDelete => "row_newer_than_delete",
        }
    }
}

fn cmp_rows(a: &(Version, String), b: &(Version, String)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))
}

/// The decision. Pure: the same inputs give the same action in every zone.
pub fn decide(local: &Local, incoming: &Incoming) -> Action {
    match incoming {
        Incoming::Row(v, content, before) => {
            let new = (*v, content.clone());
            match &local.row {
                // A successor: the origin changed exactly the row this zone has, so the
                // change is causally after it and replaces it even when its version is
                // not greater (a statement time older than the row: the origin's
                // journal follows it with a raised version, docs/CONFLICTS.md).
                Some(l) if *before == Some(l.0) && new != *l => Action::Overwrite,
                Some(l) => match cmp_rows(&new, l) {
                    Ordering::Greater => Action::Overwrite,
                    Ordering::Equal => Action::Keep(None),
                    Ordering::Less => Action::Keep(Some(Conflict::LocalRowNewer)),
                },
                None => match local.tombstone {
                    Some(t) if t >= *v => Action::Keep(Some(Conflict::DeletedLater)),
                    _ => Action::Insert,
                },
            }
        }
        Incoming::Delete(b) => match &local.row {
            Some((lv, _)) if *lv <= *b => Action::Delete,
            Some(_) => Action::Tombstone.or_conflict(local, *b),
            None => Action::Tombstone.or_conflict(local, *b),
        },
    }
}

/// The journal's raise (docs/CONFLICTS.md): a local write of version `written` that
/// replaced a row of version `replaced` (an update's before image) or followed a
/// tombstone `replaced` (an insert) went back in version, ties included, so every other
/// zone would drop it. If the key's current row (version `current`) is still not above
/// `replaced`, the journal rewrites it with the returned version, `replaced + 1`;
/// otherwise (a greater write already followed, or the row is gone) nothing to do.
#[cfg_attr(not(test), allow(dead_code))] // the model tests use it; the journal will
fn journal_raise(written: Version, replaced: Version, current: Option<Version>) -> Option<Version> {
    match current {
        Some(c) if written <= replaced && c <= replaced => Some(replaced + 1),
        _ => None,
    }
}

impl Action {
    /// A tombstone that would not raise the recorded one is a no-op; a delete that
    /// loses to a newer row is a conflict (the tombstone is still recorded).
    fn or_conflict(self, local: &Local, b: Version) -> Action {
        let raises = local.tombstone.is_none_or(|t| b > t);
        match (&local.row, raises) {
            (Some(_), true) => Action::Tombstone,
            (Some(_), false) => Action::Keep(Some(Conflict::RowNewerThanDelete)),
            (None, true) => Action::Tombstone,
            (None, false) => Action::Keep(None),
        }
    }

    /// Applies the action to an in-memory key state (the model the tests use, and the
    /// meaning of each action).
    pub fn apply(&self, local: &mut Local, incoming: &Incoming) {
        match (self, incoming) {
            (Action::Insert | Action::Overwrite, Incoming::Row(v, c, _)) => local.row = Some((*v, c.clone())),
            (Action::Delete, Incoming::Delete(b)) => {
                local.row = None;
                local.tombstone = Some(local.tombstone.map_or(*b, |t| t.max(*b)));
            }
            (Action::Tombstone, Incoming::Delete(b)) => {
                local.tombstone = Some(local.tombstone.map_or(*b, |t| t.max(*b)));
            }
            _ => {}
        }
    }
}

/// Unit tests of the rules, then a simulation of the whole conflict model, checked as
/// property tests.
///
/// The simulation: 2 or 3 zones, 3 keys, each zone's clock skewed by up to ±5 µs. A
/// random history interleaves three kinds of steps:
///
/// * a zone's application writes a key against its own current state (insert, update
///   or delete), with its clock's time or a stale one (up to 2 µs older than the row it
///   replaces, ties included: a skewed clock, a statement time taken before a lock
///   wait). The write goes to the zone's outbox and to its journal's queue; a delete
///   records no tombstone yet, so the applier does not see it (the window);
/// * a zone's journal processes its next queued binlog entries (rules 1 to 4 of the
///   brief: the delete's tombstone `max(row version, delete time)` and its shipped
///   tombstone write; the raise of an update that went back, ties included; the raise
///   of an insert not above the tombstone; the window repair of an applier insert);
/// * a zone's applier receives the next writes of one origin's outbox (FIFO per
///   origin, any interleaving across origins), or replays a part it already received
///   (duplicates), deciding each with [`decide`] and [`Action::apply`]; an applier
///   insert is queued for the journal (rule 4).
///
/// At the end every journal and every outbox is drained until nothing moves, and all
/// zones must hold the same rows. Each mutation test removes one rule and asserts a
/// fixed-seed run FINDS a divergence: `NoUpdateRaise` (rule 2), `NoTieRaise` (rule 2
/// for equal versions), `NoInsertRaise` (rule 3), `NoWindowRepair` (rule 4),
/// `NoSuccessor` (the successor case of `decide`: incoming rows lose their before
/// version), `DeleteAtRowVersion` (rule 1 with `X = r` instead of `max(r, t)`).
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
    use std::collections::VecDeque;

    fn row(v: Version, c: &str) -> Incoming {
        Incoming::Row(v, c.into(), None)
    }

    #[test]
    fn rules() {
        let empty = Local {
            row: None,
            tombstone: None,
        };
        assert_eq!(decide(&empty, &row(5, "x")), Action::Insert);
        let l = Local {
            row: Some((5, "x".into())),
            tombstone: None,
        };
        assert_eq!(decide(&l, &row(6, "y")), Action::Overwrite);
        assert_eq!(decide(&l, &row(4, "y")), Action::Keep(Some(Conflict::LocalRowNewer)));
        assert_eq!(decide(&l, &row(5, "x")), Action::Keep(None), "duplicate");
        assert_eq!(decide(&l, &row(5, "y")), Action::Overwrite, "tie: greater content wins");
        assert_eq!(decide(&l, &row(5, "a")), Action::Keep(Some(Conflict::LocalRowNewer)));
        let successor = Incoming::Row(4, "y".into(), Some(5));
        assert_eq!(decide(&l, &successor), Action::Overwrite, "successor: older but after");
        let dup = Incoming::Row(5, "x".into(), Some(5));
        assert_eq!(decide(&l, &dup), Action::Keep(None), "a successor equal to the row");
        let other = Incoming::Row(4, "y".into(), Some(3));
        assert_eq!(decide(&l, &other), Action::Keep(Some(Conflict::LocalRowNewer)));
        assert_eq!(
            decide(&l, &Incoming::Delete(5)),
            Action::Delete,
            "tie: delete beats row"
        );
        assert_eq!(decide(&l, &Incoming::Delete(4)), Action::Tombstone);
        let dead = Local {
            row: None,
            tombstone: Some(7),
        };
        assert_eq!(decide(&dead, &row(7, "z")), Action::Keep(Some(Conflict::DeletedLater)));
        assert_eq!(decide(&dead, &row(8, "z")), Action::Insert);
        assert_eq!(decide(&dead, &Incoming::Delete(7)), Action::Keep(None));
    }

    #[test]
    fn the_journal_raises_what_went_back() {
        assert_eq!(journal_raise(9, 5, Some(9)), None, "clock ahead: its own time");
        assert_eq!(journal_raise(4, 5, Some(4)), Some(6), "clock behind the row");
        assert_eq!(journal_raise(5, 5, Some(5)), Some(6), "same microsecond");
        assert_eq!(journal_raise(4, 5, Some(8)), None, "a greater write followed");
        assert_eq!(journal_raise(4, 5, None), None, "deleted since");
        assert_eq!(journal_raise(7, 7, Some(7)), Some(8), "re-insert at the tombstone");
    }

    /// One rule of the model removed (`None`: the model as designed).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mutation {
        None,
        NoUpdateRaise,
        NoTieRaise,
        NoInsertRaise,
        NoWindowRepair,
        NoSuccessor,
        DeleteAtRowVersion,
    }

    const KEYS: usize = 3;

    #[derive(Debug, Clone)]
    enum Step {
        /// `zone`'s application writes `key`: a delete if `del` and there is a row, else
        /// an insert or update to `content`; at `stale` µs before the row it replaces
        /// (before its clock, for an insert), else at its clock. The clock first moves
        /// on by `tick` (0: equal times across zones).
        Write {
            zone: usize,
            key: usize,
            del: bool,
            content: u8,
            stale: Option<Version>,
            tick: Version,
        },
        /// `zone`'s journal processes its next `n` binlog entries.
        Journal { zone: usize, n: usize },
        /// `to` receives the next `n` writes of `from`.
        Deliver { to: usize, from: usize, n: usize },
        /// `to` receives again `from`'s writes from position `start` up to where it is.
        Replay { to: usize, from: usize, start: usize },
    }

    /// A binlog entry the journal has still to process.
    #[derive(Debug, Clone)]
    enum Entry {
        Delete {
            key: usize,
            r: Version,
            t: Version,
        },
        Update {
            key: usize,
            v: Version,
            b: Version,
        },
        Insert {
            key: usize,
            v: Version,
        },
        /// An insert by the applier (rule 4).
        Applied {
            key: usize,
            v: Version,
        },
    }

    #[derive(Debug, Clone, Default)]
    struct Zone {
        keys: Vec<Local>,
        /// Entries for the journal, in binlog order.
        journal: VecDeque<Entry>,
        /// Writes shipped to the other zones, in order.
        outbox: Vec<(usize, Incoming)>,
        /// Per origin: how much of its outbox this zone has received.
        received: Vec<usize>,
    }

    struct Sim {
        zones: Vec<Zone>,
        skew: Vec<Version>,
        clock: Version,
        m: Mutation,
    }

    impl Sim {
        fn new(skew: &[Version], m: Mutation) -> Sim {
            let empty = Local {
                row: None,
                tombstone: None,
            };
            let zone = Zone {
                keys: vec![empty; KEYS],
                received: vec![0; skew.len()],
                ..Zone::default()
            };
            Sim {
                zones: vec![zone; skew.len()],
                skew: skew.to_vec(),
                clock: 100,
                m,
            }
        }

        fn step(&mut self, s: &Step) {
            match *s {
                Step::Write {
                    zone,
                    key,
                    del,
                    content,
                    stale,
                    tick,
                } => {
                    self.clock += tick;
                    let now = self.clock + self.skew[zone];
                    let content = ["a", "b", "c"][content as usize].to_string();
                    let z = &mut self.zones[zone];
                    let st = &mut z.keys[key];
                    let t = match (stale, &st.row) {
                        (Some(s), Some((r, _))) => r - s,
                        (Some(s), None) => now - s - 1,
                        (None, _) => now,
                    };
                    match st.row.clone() {
                        Some((r, _)) if del => {
                            st.row = None; // no tombstone before the journal's
                            z.outbox.push((key, Incoming::Delete(r)));
                            z.journal.push_back(Entry::Delete { key, r, t });
                        }
                        Some(old) if old == (t, content.clone()) => {} // no change, no event
                        Some((b, _)) => {
                            st.row = Some((t, content.clone()));
                            z.outbox.push((key, Incoming::Row(t, content, Some(b))));
                            z.journal.push_back(Entry::Update { key, v: t, b });
                        }
                        None => {
                            st.row = Some((t, content.clone()));
                            z.outbox.push((key, Incoming::Row(t, content, None)));
                            z.journal.push_back(Entry::Insert { key, v: t });
                        }
                    }
                }
                Step::Journal { zone, n } => (0..n).for_each(|_| self.journal(zone)),
                Step::Deliver { to, from, n } => {
                    let upto = (self.zones[to].received[from] + n).min(self.zones[from].outbox.len());
                    while self.zones[to].received[from] < upto {
                        let i = self.zones[to].received[from];
                        self.receive(to, from, i);
                        self.zones[to].received[from] += 1;
                    }
                }
                Step::Replay { to, from, start } => {
                    for i in start..self.zones[to].received[from] {
                        self.receive(to, from, i);
                    }
                }
            }
        }

        /// `to`'s applier applies write `i` of `from`.
        fn receive(&mut self, to: usize, from: usize, i: usize) {
            let (key, w) = self.zones[from].outbox[i].clone();
            let seen = match (&w, self.m) {
                (Incoming::Row(v, c, _), Mutation::NoSuccessor) => Incoming::Row(*v, c.clone(), None),
                _ => w,
            };
            let z = &mut self.zones[to];
            let action = decide(&z.keys[key], &seen);
            action.apply(&mut z.keys[key], &seen);
            if let (Action::Insert, Incoming::Row(v, ..)) = (action, seen) {
                z.journal.push_back(Entry::Applied { key, v });
            }
        }

        /// `zone`'s journal processes its next entry, if any.
        fn journal(&mut self, zone: usize) {
            let m = self.m;
            let z = &mut self.zones[zone];
            let Some(e) = z.journal.pop_front() else { return };
            let key = match e {
                Entry::Delete { key, .. }
                | Entry::Update { key, .. }
                | Entry::Insert { key, .. }
                | Entry::Applied { key, .. } => key,
            };
            let st = &mut z.keys[key];
            let current = st.row.as_ref().map(|r| r.0);
            let raise = match e {
                Entry::Delete { r, t, .. } => {
                    let x = if m == Mutation::DeleteAtRowVersion { r } else { r.max(t) };
                    st.tombstone = Some(st.tombstone.map_or(x, |t| t.max(x)));
                    z.outbox.push((key, Incoming::Delete(x)));
                    None
                }
                Entry::Update { v, b, .. } => match m {
                    Mutation::NoUpdateRaise => None,
                    Mutation::NoTieRaise if v == b => None,
                    _ => journal_raise(v, b, current),
                },
                Entry::Insert { v, .. } if m != Mutation::NoInsertRaise => {
                    st.tombstone.and_then(|t| journal_raise(v, t, current))
                }
                Entry::Insert { .. } => None,
                Entry::Applied { v, .. } => {
                    if m != Mutation::NoWindowRepair && st.tombstone >= Some(v) && current == Some(v) {
                        st.row = None;
                        z.outbox.push((key, Incoming::Delete(v)));
                    }
                    None
                }
            };
            if let (Some(n), Some((cv, c))) = (raise, st.row.clone()) {
                st.row = Some((n, c.clone()));
                z.outbox.push((key, Incoming::Row(n, c, Some(cv))));
            }
        }

        /// Every journal and every outbox drained, until nothing moves.
        fn drain(&mut self) {
            let n = self.zones.len();
            loop {
                let before: usize = self.zones.iter().map(|z| z.outbox.len() + z.journal.len()).sum();
                let received: usize = self.zones.iter().flat_map(|z| &z.received).sum();
                for zone in 0..n {
                    while !self.zones[zone].journal.is_empty() {
                        self.journal(zone);
                    }
                }
                for to in 0..n {
                    for from in (0..n).filter(|&f| f != to) {
                        self.step(&Step::Deliver {
                            to,
                            from,
                            n: usize::MAX / 2,
                        });
                    }
                }
                let after: usize = self.zones.iter().map(|z| z.outbox.len() + z.journal.len()).sum();
                let received_after: usize = self.zones.iter().flat_map(|z| &z.received).sum();
                if after == before && received_after == received && self.zones.iter().all(|z| z.journal.is_empty()) {
                    return;
                }
            }
        }
    }

    /// Runs a history, drains, and checks every zone holds the same rows.
    fn converges(skew: &[Version], steps: &[Step], m: Mutation) -> Result<(), TestCaseError> {
        let mut sim = Sim::new(skew, m);
        steps.iter().for_each(|s| sim.step(s));
        sim.drain();
        let rows = |z: &Zone| z.keys.iter().map(|l| l.row.clone()).collect::<Vec<_>>();
        for z in &sim.zones[1..] {
            prop_assert_eq!(rows(&sim.zones[0]), rows(z));
        }
        Ok(())
    }

    fn step(zones: usize) -> impl Strategy<Value = Step> {
        let write = (
            0..zones,
            0..KEYS,
            any::<bool>(),
            0..3u8,
            prop::option::weighted(0.3, 0..3i128),
            0..3i128,
        );
        prop_oneof![
            4 => write.prop_map(|(zone, key, del, content, stale, tick)| Step::Write { zone, key, del, content, stale, tick }),
            2 => (0..zones, 1..4usize).prop_map(|(zone, n)| Step::Journal { zone, n }),
            3 => (0..zones, 1..zones, 1..4usize).prop_map(move |(to, off, n)| Step::Deliver { to, from: (to + off) % zones, n }),
            1 => (0..zones, 1..zones, 0..6usize).prop_map(move |(to, off, start)| Step::Replay { to, from: (to + off) % zones, start }),
        ]
    }

    /// 2 or 3 zones, their clock skews, and a history.
    fn history() -> impl Strategy<Value = (Vec<Version>, Vec<Step>)> {
        (2..=3usize).prop_flat_map(|n| {
            (
                prop::collection::vec(-5i128..=5, n),
                prop::collection::vec(step(n), 1..40),
            )
        })
    }

    fn runner(cases: u32) -> TestRunner {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn any_history_converges((skew, steps) in history()) {
            converges(&skew, &steps, Mutation::None)?;
        }

        #[test]
        fn decide_is_idempotent(lv in prop::option::of((0i128..10, "[ab]")), t in prop::option::of(0i128..10), v in 0i128..10, c in "[ab]", del in any::<bool>(), before in prop::option::of(0i128..10)) {
            let mut l = Local { row: lv, tombstone: t };
            let inc = if del { Incoming::Delete(v) } else { Incoming::Row(v, c, before) };
            decide(&l, &inc).apply(&mut l, &inc);
            let once = l.clone();
            decide(&l, &inc).apply(&mut l, &inc);
            prop_assert_eq!(once, l);
        }
    }

    /// Asserts that with `m`, a fixed-seed search finds a history that diverges, and
    /// prints the minimal one.
    fn diverges_without(m: Mutation) {
        match runner(3000).run(&history(), |(skew, steps)| converges(&skew, &steps, m)) {
            Err(TestError::Fail(why, (skew, steps))) => {
                eprintln!("{m:?}: skew {skew:?}\n{steps:#?}\n{why}");
            }
            other => panic!("{m:?}: no divergence found: {other:?}"),
        }
    }

    #[test]
    fn needs_the_update_raise() {
        diverges_without(Mutation::NoUpdateRaise);
    }

    #[test]
    fn needs_the_tie_raise() {
        diverges_without(Mutation::NoTieRaise);
    }

    #[test]
    fn needs_the_insert_raise() {
        diverges_without(Mutation::NoInsertRaise);
    }

    #[test]
    fn needs_the_window_repair() {
        diverges_without(Mutation::NoWindowRepair);
    }

    #[test]
    fn needs_the_successor_rule() {
        diverges_without(Mutation::NoSuccessor);
    }

    #[test]
    fn needs_the_delete_time() {
        diverges_without(Mutation::DeleteAtRowVersion);
    }
}
