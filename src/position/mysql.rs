//! MySQL GTIDs and GTID sets, including MySQL 8.4 tagged GTIDs (`uuid:tag:n`).

use super::ParseError;
use std::{collections::BTreeMap, fmt, str::FromStr};

super::serde_as_text!(MysqlGtid);
super::serde_as_text!(GtidSet);
use uuid::Uuid;

/// One MySQL GTID: `source_uuid[:tag]:gno`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MysqlGtid {
    pub uuid: Uuid,
    /// Empty for untagged GTIDs; otherwise lower-case `[a-z_][a-z0-9_]{0,31}`.
    pub tag: String,
    pub gno: u64,
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tag.is_empty() {
            write!(f, "{}:{}", self.uuid, self.gno)
        } else {
            write!(f, "{}:{}:{}", self.uuid, self.tag, self.gno)
        }
    }
}

impl FromStr for MysqlGtid {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |why: &str| ParseError::new("MySQL GTID", s, why);
        let mut parts = s.trim().split(':');
        let uuid = parse_uuid(parts.next().unwrap_or_default()).ok_or_else(|| err("bad UUID"))?;
        let (tag, gno) = match (parts.next(), parts.next(), parts.next()) {
            (Some(gno), None, None) => (String::new(), gno),
            (Some(tag), Some(gno), None) => (parse_tag(tag).ok_or_else(|| err("bad tag"))?, gno),
            _ => return Err(err("expected UUID[:TAG]:NUMBER")),
        };
        let gno: u64 = gno.parse().map_err(|_| err("transaction number is not a number"))?;
        if gno == 0 {
            return Err(err("transaction numbers start at 1"));
        }
        Ok(MysqlGtid { uuid, tag, gno })
    }
}

fn parse_uuid(s: &str) -> Option<Uuid> {
    // MySQL prints the canonical 8-4-4-4-12 form; accept it and the 32-hex form.
    let s = s.trim();
    if s.len() != 36 && s.len() != 32 {
        return None;
    }
    Uuid::parse_str(s).ok()
}

fn parse_tag(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let mut chars = s.chars();
    let first = chars.next()?;
    let ok = (first.is_ascii_lowercase() || first == '_')
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(s)
}

/// A set of MySQL GTIDs, kept as sorted, merged, inclusive intervals per (uuid, tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sets: BTreeMap<(Uuid, String), Vec<(u64, u64)>>,
}

impl GtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Adds one GTID.
    pub fn add(&mut self, g: &MysqlGtid) {
        self.add_interval(g.uuid, &g.tag, g.gno, g.gno);
    }

    /// Adds the inclusive interval `start..=end` for `uuid:tag`.
    pub fn add_interval(&mut self, uuid: Uuid, tag: &str, start: u64, end: u64) {
        if start == 0 || end < start {
            return;
        }
        let ivs = self.sets.entry((uuid, tag.to_string())).or_default();
        ivs.push((start, end));
        normalize(ivs);
    }

    pub fn contains(&self, g: &MysqlGtid) -> bool {
        self.sets
            .get(&(g.uuid, g.tag.clone()))
            .is_some_and(|ivs| ivs.iter().any(|&(s, e)| s <= g.gno && g.gno <= e))
    }

    /// Adds every GTID of `other` (set union).
    pub fn merge(&mut self, other: &GtidSet) {
        for ((uuid, tag), ivs) in &other.sets {
            let mine = self.sets.entry((*uuid, tag.clone())).or_default();
            mine.extend_from_slice(ivs);
            normalize(mine);
        }
    }

    /// True when every GTID of `self` is in `other`.
    pub fn is_subset(&self, other: &GtidSet) -> bool {
        self.sets.iter().all(|(k, ivs)| {
            let theirs = other.sets.get(k);
            ivs.iter()
                .all(|&(s, e)| theirs.is_some_and(|t| t.iter().any(|&(ts, te)| ts <= s && e <= te)))
        })
    }

    /// Iterates `(uuid, tag, intervals)` in canonical order; intervals are inclusive.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &str, &[(u64, u64)])> {
        self.sets.iter().map(|((u, t), iv)| (u, t.as_str(), iv.as_slice()))
    }
}

fn normalize(ivs: &mut Vec<(u64, u64)>) {
    ivs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for &(s, e) in ivs.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *ivs = out;
}

impl fmt::Display for GtidSet {
    /// Canonical text: `uuid:1-5:7,uuid:tag:1-3` (lower-case, sorted, merged).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first_uuid = true;
        let mut last_uuid: Option<Uuid> = None;
        for ((uuid, tag), ivs) in &self.sets {
            if last_uuid != Some(*uuid) {
                if !first_uuid {
                    f.write_str(",")?;
                }
                write!(f, "{uuid}")?;
                first_uuid = false;
                last_uuid = Some(*uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in ivs {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for GtidSet {
    type Err = ParseError;
    /// Parses what `@@gtid_executed` prints (newlines after commas allowed).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |why: String| ParseError::new("MySQL GTID set", s, why);
        let mut set = GtidSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut tokens = part.split(':');
            let uuid_text = tokens.next().unwrap_or_default();
            let uuid = parse_uuid(uuid_text).ok_or_else(|| err(format!("bad UUID {uuid_text:?}")))?;
            let mut tag = String::new();
            let mut any = false;
            for tok in tokens {
                let tok = tok.trim();
                if tok.starts_with(|c: char| c.is_ascii_digit()) {
                    let (a, b) = tok.split_once('-').unwrap_or((tok, tok));
                    let (a, b): (u64, u64) = match (a.parse(), b.parse()) {
                        (Ok(a), Ok(b)) if a >= 1 && b >= a => (a, b),
                        _ => return Err(err(format!("bad interval {tok:?}"))),
                    };
                    set.add_interval(uuid, &tag, a, b);
                    any = true;
                } else {
                    tag = parse_tag(tok).ok_or_else(|| err(format!("bad tag {tok:?}")))?;
                }
            }
            if !any {
                return Err(err(format!("{uuid_text} has no interval")));
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "8d4b5f3c-0000-11ee-8000-000000000002";

    #[test]
    fn parses_server_text() {
        let s: GtidSet = format!("{},\n{}:1-3:5", U1.to_uppercase() + ":1-5:7", U2)
            .parse()
            .unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-5:7,{U2}:1-3:5"));
        let t: GtidSet = format!("{U1}:1-3:tag_a:1-2:7").parse().unwrap();
        assert_eq!(t.to_string(), format!("{U1}:1-3:tag_a:1-2:7"));
        assert!(t.contains(&format!("{U1}:tag_a:7").parse().unwrap()));
        assert!(!t.contains(&format!("{U1}:7").parse().unwrap()));
        assert!("".parse::<GtidSet>().unwrap().is_empty());
        assert!(U1.parse::<GtidSet>().is_err());
        assert!(format!("{U1}:0-3").parse::<GtidSet>().is_err());
        assert!(format!("{U1}:5-3").parse::<GtidSet>().is_err());
        assert!("nonsense:1".parse::<GtidSet>().is_err());
        assert!(format!("{U1}:9bad:1").parse::<GtidSet>().is_err());
    }

    #[test]
    fn adjacent_intervals_merge() {
        let mut s: GtidSet = format!("{U1}:1-3:5").parse().unwrap();
        s.add(&format!("{U1}:4").parse().unwrap());
        assert_eq!(s.to_string(), format!("{U1}:1-5"));
    }

    fn arb_set() -> impl Strategy<Value = GtidSet> {
        let uuids = [U1, U2];
        prop::collection::vec(
            (0usize..2, prop::option::of("[a-z_][a-z0-9_]{0,5}"), 1u64..200, 0u64..20),
            0..8,
        )
        .prop_map(move |items| {
            let mut s = GtidSet::new();
            for (u, tag, start, len) in items {
                s.add_interval(
                    Uuid::parse_str(uuids[u]).unwrap(),
                    tag.as_deref().unwrap_or(""),
                    start,
                    start + len,
                );
            }
            s
        })
    }

    proptest! {
        #[test]
        fn text_roundtrip(s in arb_set()) {
            prop_assert_eq!(s.to_string().parse::<GtidSet>().unwrap(), s);
        }

        #[test]
        fn merge_is_union(a in arb_set(), b in arb_set()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            prop_assert!(a.is_subset(&ab) && b.is_subset(&ab));
            let mut again = ab.clone(); again.merge(&a);
            prop_assert_eq!(&again, &ab);
        }

        #[test]
        fn add_then_contains(a in arb_set(), gno in 1u64..300) {
            let g = MysqlGtid { uuid: Uuid::parse_str(U2).unwrap(), tag: String::new(), gno };
            let mut b = a.clone();
            b.add(&g);
            prop_assert!(b.contains(&g));
            prop_assert!(a.is_subset(&b));
        }
    }
}
