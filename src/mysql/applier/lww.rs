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
    /// Insert or update: the full new row (version, canonical content).
    Row(Version, String),
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
        Incoming::Row(v, content) => {
            let new = (*v, content.clone());
            match &local.row {
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

/// The version a local write (the application's, not the applier's) ends with, from
/// its clock's `now` and drc's triggers: an update is raised above the row it replaces,
/// an insert above the key's tombstone, a delete is never older than the row it
/// removes (docs/CONFLICTS.md, "Local writes never go back in version"). Without the
/// raise, a zone whose clock is behind (or a statement that waited on the applier's
/// row lock) would keep a write every other zone drops as older.
pub fn local_write_version(local: &Local, now: Version, delete: bool) -> Version {
    match (&local.row, delete) {
        (Some((v, _)), true) => now.max(*v),
        (Some((v, _)), false) if now <= *v => v + 1,
        (None, false) => match local.tombstone {
            Some(t) if now <= t => t + 1,
            _ => now,
        },
        _ => now,
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
            (Action::Insert | Action::Overwrite, Incoming::Row(v, c)) => local.row = Some((*v, c.clone())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(v: Version, c: &str) -> Incoming {
        Incoming::Row(v, c.into())
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
    fn local_writes_are_raised_above_what_they_replace() {
        let l = Local {
            row: Some((5, "x".into())),
            tombstone: Some(3),
        };
        assert_eq!(local_write_version(&l, 9, false), 9, "clock ahead: its own time");
        assert_eq!(local_write_version(&l, 4, false), 6, "clock behind the row");
        assert_eq!(local_write_version(&l, 5, false), 6, "same microsecond");
        assert_eq!(
            local_write_version(&l, 4, true),
            5,
            "a delete: never older than the row"
        );
        let dead = Local {
            row: None,
            tombstone: Some(7),
        };
        assert_eq!(
            local_write_version(&dead, 7, false),
            8,
            "re-insert after a newer delete"
        );
        assert_eq!(local_write_version(&dead, 9, false), 9);
    }

    /// A write made in some zone: key, and the write.
    #[derive(Debug, Clone)]
    struct Write {
        key: u8,
        w: Incoming,
    }

    /// Builds a random history: each zone makes local writes against its own current
    /// state and receives the other zone's writes at random moments, possibly more
    /// than once. Versions come from a clock that only moves forward; zone b's runs
    /// `skew` ticks apart from zone a's (any sign), and a local write gets the version
    /// drc's triggers give it (`local_write_version`).
    fn run(ops: &[(bool, u8, u8, u8)], skew: Version) -> (Vec<Local>, Vec<Local>) {
        const KEYS: usize = 3;
        let mut zones = [
            vec![
                Local {
                    row: None,
                    tombstone: None
                };
                KEYS
            ],
            vec![
                Local {
                    row: None,
                    tombstone: None
                };
                KEYS
            ],
        ];
        let mut outbox: [Vec<Write>; 2] = [Vec::new(), Vec::new()];
        let mut delivered = [0usize; 2];
        let mut clock: Version = 0;
        for &(zone_b, key, kind, deliver) in ops {
            let z = zone_b as usize;
            let key = key % KEYS as u8;
            let state = &mut zones[z][key as usize];
            // local write
            clock += 1 + (kind as Version % 2); // equal versions across zones happen too
            let now = if z == 1 { clock + skew } else { clock };
            let delete = kind % 3 == 0 && state.row.is_some();
            let v = local_write_version(state, now, delete);
            let w = if delete {
                Incoming::Delete(v)
            } else {
                Incoming::Row(v, format!("z{z}k{key}c{}", kind % 4))
            };
            // a local write always wins locally (the application just made it)
            match &w {
                Incoming::Row(..) => {
                    state.row = match &w {
                        Incoming::Row(v, c) => Some((*v, c.clone())),
                        _ => None,
                    }
                }
                Incoming::Delete(b) => {
                    state.row = None;
                    state.tombstone = Some(state.tombstone.map_or(*b, |t| t.max(*b)));
                }
            }
            outbox[z].push(Write { key, w });
            // deliver some of the other zone's writes (maybe again: duplicates)
            let other = 1 - z;
            let upto = (delivered[other] + deliver as usize % 4).min(outbox[other].len());
            let from = if deliver % 5 == 0 { 0 } else { delivered[other] };
            for wr in &outbox[other][from..upto] {
                let st = &mut zones[z][wr.key as usize];
                let a = decide(st, &wr.w);
                a.apply(st, &wr.w);
            }
            delivered[other] = delivered[other].max(upto);
        }
        // final: everything delivered, each zone receiving the full outbox of the other
        // once more in order (duplicates included)
        for (z, zone) in zones.iter_mut().enumerate() {
            let other = 1 - z;
            for wr in outbox[other].clone() {
                let st = &mut zone[wr.key as usize];
                let a = decide(st, &wr.w);
                a.apply(st, &wr.w);
            }
        }
        let [a, b] = zones;
        (a, b)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_interleaving_and_duplication_converges(ops in prop::collection::vec((any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>()), 1..60)) {
            let (a, b) = run(&ops, 0);
            let rows = |z: &Vec<Local>| z.iter().map(|l| l.row.clone()).collect::<Vec<_>>();
            prop_assert_eq!(rows(&a), rows(&b));
        }

        /// Clocks apart (or a statement time older than the row it replaces): still one
        /// result, because local writes never go back in version.
        #[test]
        fn skewed_clocks_converge(ops in prop::collection::vec((any::<bool>(), any::<u8>(), any::<u8>(), any::<u8>()), 1..60), skew in -8i128..8) {
            let (a, b) = run(&ops, skew);
            let rows = |z: &Vec<Local>| z.iter().map(|l| l.row.clone()).collect::<Vec<_>>();
            prop_assert_eq!(rows(&a), rows(&b));
        }

        #[test]
        fn decide_is_idempotent(lv in prop::option::of((0i128..10, "[ab]")), t in prop::option::of(0i128..10), v in 0i128..10, c in "[ab]", del in any::<bool>()) {
            let mut l = Local { row: lv, tombstone: t };
            let inc = if del { Incoming::Delete(v) } else { Incoming::Row(v, c) };
            decide(&l, &inc).apply(&mut l, &inc);
            let once = l.clone();
            decide(&l, &inc).apply(&mut l, &inc);
            prop_assert_eq!(once, l);
        }
    }
}
