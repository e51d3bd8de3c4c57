//! MariaDB GTIDs (`domain-server-seq`) and GTID positions (one GTID per domain).

use super::ParseError;
use std::{collections::BTreeMap, fmt, str::FromStr};

super::serde_as_text!(MariaGtid);
super::serde_as_text!(MariaGtidPos);

/// One MariaDB GTID: `domain_id-server_id-seq_no`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::new("MariaDB GTID", s, "expected DOMAIN-SERVER-SEQ (numbers)");
        let mut it = s.trim().splitn(3, '-');
        let (d, sv, sq) = (it.next(), it.next(), it.next());
        match (d.map(str::parse), sv.map(str::parse), sq.map(str::parse)) {
            (Some(Ok(domain)), Some(Ok(server)), Some(Ok(seq))) => Ok(MariaGtid { domain, server, seq }),
            _ => Err(err()),
        }
    }
}

/// A MariaDB GTID position: the last applied GTID of every replication domain,
/// as in `@@gtid_binlog_pos` / `@@gtid_slave_pos` (`1-1-100,2-2-7`).
///
/// Within a domain sequence numbers grow monotonically (`gtid_strict_mode`), so
/// "seen" means `seq <= position's seq` for that domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaGtidPos {
    domains: BTreeMap<u32, MariaGtid>,
}

impl MariaGtidPos {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Records `g` as the latest GTID of its domain (never moves a domain backwards).
    pub fn update(&mut self, g: MariaGtid) {
        let e = self.domains.entry(g.domain).or_insert(g);
        // On an equal sequence number (two servers wrote in one domain: only possible
        // without gtid_strict_mode) the greater server id wins, so merging is
        // commutative and every zone computes the same position.
        if (g.seq, g.server) >= (e.seq, e.server) {
            *e = g;
        }
    }

    pub fn get(&self, domain: u32) -> Option<MariaGtid> {
        self.domains.get(&domain).copied()
    }

    pub fn contains(&self, g: &MariaGtid) -> bool {
        self.domains.get(&g.domain).is_some_and(|p| g.seq <= p.seq)
    }

    /// Per-domain maximum of both positions.
    pub fn merge(&mut self, other: &MariaGtidPos) {
        for g in other.domains.values() {
            self.update(*g);
        }
    }

    /// True when `other` has reached this position in every domain of `self`.
    pub fn is_reached_by(&self, other: &MariaGtidPos) -> bool {
        self.domains.values().all(|g| other.contains(g))
    }

    pub fn iter(&self) -> impl Iterator<Item = &MariaGtid> {
        self.domains.values()
    }
}

impl fmt::Display for MariaGtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            g.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for MariaGtidPos {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut pos = MariaGtidPos::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: MariaGtid = part.parse()?;
            if pos.domains.contains_key(&g.domain) {
                return Err(ParseError::new(
                    "MariaDB GTID position",
                    s,
                    format!("domain {} appears twice", g.domain),
                ));
            }
            pos.domains.insert(g.domain, g);
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_server_text() {
        let p: MariaGtidPos = "2-2-7, 1-1-100".parse().unwrap();
        assert_eq!(p.to_string(), "1-1-100,2-2-7");
        assert!(p.contains(&"1-3-99".parse().unwrap()));
        assert!(!p.contains(&"1-1-101".parse().unwrap()));
        assert!(!p.contains(&"3-1-1".parse().unwrap()));
        assert!("1-1-1,1-2-3".parse::<MariaGtidPos>().is_err());
        assert!("1-1".parse::<MariaGtidPos>().is_err());
        assert!("a-b-c".parse::<MariaGtidPos>().is_err());
        assert!("".parse::<MariaGtidPos>().unwrap().is_empty());
    }

    fn arb_pos() -> impl Strategy<Value = MariaGtidPos> {
        prop::collection::vec((0u32..4, 1u32..4, 0u64..1000), 0..6).prop_map(|v| {
            let mut p = MariaGtidPos::new();
            for (domain, server, seq) in v {
                p.update(MariaGtid { domain, server, seq });
            }
            p
        })
    }

    proptest! {
        #[test]
        fn text_roundtrip(p in arb_pos()) {
            prop_assert_eq!(p.to_string().parse::<MariaGtidPos>().unwrap(), p);
        }

        #[test]
        fn merge_is_max_per_domain(a in arb_pos(), b in arb_pos()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            prop_assert!(a.is_reached_by(&ab) && b.is_reached_by(&ab));
        }

        #[test]
        fn update_never_moves_back(a in arb_pos(), d in 0u32..4, seq in 0u64..1000) {
            let mut b = a.clone();
            b.update(MariaGtid { domain: d, server: 9, seq });
            prop_assert!(a.is_reached_by(&b));
        }
    }
}
