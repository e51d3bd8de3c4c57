//! Per-zone primary-key ranges: each zone owns the integer keys it may create, so two
//! zones never insert the same key (ANCHORS.md, hurt #7). A row inserted with a key
//! outside its origin zone's ranges is caught: quarantined with the full row in the
//! conflict log (policy `reject`) or applied and logged (`apply-and-log`).
//!
//! A zone's ranges are the union of explicit inclusive intervals and an
//! auto-increment pattern (`auto_increment_increment` / `auto_increment_offset`, the
//! way the server generates keys: `offset + k * increment`, `k >= 0`).

use serde::Deserialize;

/// The ranges of one zone. Config: `[id_ranges.a] increment = 2, offset = 1` and/or
/// `intervals = [[1, 1000000], [5000000, 5999999]]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ZoneRanges {
    /// Inclusive `[first, last]` key intervals (TOML integers: up to 2^63 - 1).
    #[serde(default)]
    pub intervals: Vec<[i64; 2]>,
    /// `auto_increment_increment` of the zone's server (with `offset`).
    #[serde(default)]
    pub increment: Option<u64>,
    /// `auto_increment_offset` of the zone's server (1-based, `<= increment`).
    #[serde(default)]
    pub offset: Option<u64>,
}

impl ZoneRanges {
    pub fn validate(&self, zone: &str) -> Result<(), String> {
        match (self.increment, self.offset) {
            (Some(i), Some(o)) if i >= 1 && o >= 1 && o <= i => {}
            (None, None) => {}
            (i, o) => {
                return Err(format!(
                    "[id_ranges.{zone}] increment and offset go together, with 1 <= offset <= increment (got increment={i:?}, offset={o:?})"
                ))
            }
        }
        for [a, b] in &self.intervals {
            if a > b {
                return Err(format!("[id_ranges.{zone}] interval [{a}, {b}] is empty"));
            }
        }
        if self.intervals.is_empty() && self.increment.is_none() {
            return Err(format!(
                "[id_ranges.{zone}] gives no range: set intervals and/or increment+offset"
            ));
        }
        Ok(())
    }

    /// Does this zone own `id`?
    pub fn contains(&self, id: i128) -> bool {
        if self.intervals.iter().any(|&[a, b]| a as i128 <= id && id <= b as i128) {
            return true;
        }
        match (self.increment, self.offset) {
            (Some(inc), Some(off)) => {
                let (inc, off) = (inc as i128, off as i128);
                id >= off && (id - off) % inc == 0
            }
            _ => false,
        }
    }

    /// Two zones' ranges overlap on at least one key in `[1, probe]` (a config error).
    pub fn overlaps(&self, other: &ZoneRanges, probe: i128) -> Option<i128> {
        (1..=probe).find(|&k| self.contains(k) && other.contains(k))
    }
}

/// What to do with an inserted row outside its origin zone's ranges.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RangePolicy {
    /// Do not apply; quarantine the row in the conflict log.
    #[default]
    Reject,
    /// Apply it, and log it in the conflict log.
    ApplyAndLog,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn auto_increment_pattern_and_intervals() {
        let a = ZoneRanges {
            increment: Some(2),
            offset: Some(1),
            ..Default::default()
        };
        let b = ZoneRanges {
            increment: Some(2),
            offset: Some(2),
            ..Default::default()
        };
        assert!(a.contains(1) && a.contains(3) && !a.contains(2) && !a.contains(0) && !a.contains(-1));
        assert!(b.contains(2) && b.contains(4) && !b.contains(1));
        assert_eq!(a.overlaps(&b, 10_000), None);
        let c = ZoneRanges {
            intervals: vec![[100, 200]],
            ..Default::default()
        };
        assert!(c.contains(100) && c.contains(200) && !c.contains(201));
        assert_eq!(a.overlaps(&c, 1000), Some(101));
        assert!(ZoneRanges {
            increment: Some(2),
            offset: Some(3),
            ..Default::default()
        }
        .validate("x")
        .is_err());
        assert!(ZoneRanges {
            increment: Some(2),
            ..Default::default()
        }
        .validate("x")
        .is_err());
        assert!(ZoneRanges::default().validate("x").is_err());
        assert!(c.validate("c").is_ok());
    }

    #[test]
    fn intervals_parse_from_the_config() {
        let r: ZoneRanges = toml::from_str("intervals = [[1, 1000000], [5000000, 9223372036854775807]]").unwrap();
        assert!(r.validate("a").is_ok());
        assert!(r.contains(1) && r.contains(1_000_000) && !r.contains(1_000_001));
        assert!(r.contains(i64::MAX as i128) && !r.contains(i64::MAX as i128 + 1));
    }

    proptest! {
        /// With the same increment and distinct offsets, zones never share a key.
        #[test]
        fn distinct_offsets_partition_keys(inc in 1u64..8, id in 1i128..100_000) {
            let owners = (1..=inc)
                .filter(|&o| ZoneRanges { increment: Some(inc), offset: Some(o), ..Default::default() }.contains(id))
                .count();
            prop_assert_eq!(owners, 1);
        }
    }
}
