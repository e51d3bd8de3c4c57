//! Summaries of frequent events: when both zones write the same rows, every incoming
//! row can be a conflict (a sysbench run in both zones made 170,000 in 30 s). The log
//! gets the counts per table, kind and resolution, at most once per [`SUMMARY_EVERY`];
//! the first events are logged at once. `drc.conflicts` keeps one row per event.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often a summary of the same events is logged.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Counts of events by a key (e.g. table, kind, resolution), handed out for logging
/// at most once per [`SUMMARY_EVERY`].
#[derive(Debug)]
pub struct CountSummary<K: Ord> {
    counts: BTreeMap<K, u64>,
    last: Option<Instant>,
}

impl<K: Ord> Default for CountSummary<K> {
    fn default() -> Self {
        CountSummary {
            counts: BTreeMap::new(),
            last: None,
        }
    }
}

impl<K: Ord> CountSummary<K> {
    pub fn add(&mut self, key: K, n: u64) {
        *self.counts.entry(key).or_default() += n;
    }

    /// The counts since the last summary, when there are any and the last summary is
    /// [`SUMMARY_EVERY`] old (or there was none). Call it often: each call is cheap.
    pub fn due(&mut self, now: Instant) -> Option<BTreeMap<K, u64>> {
        if self.counts.is_empty() || self.last.is_some_and(|l| now.duration_since(l) < SUMMARY_EVERY) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.counts))
    }

    /// Whatever is counted, due or not (at shutdown).
    pub fn take(&mut self) -> BTreeMap<K, u64> {
        std::mem::take(&mut self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_becomes_one_summary_per_period() {
        let mut s = CountSummary::default();
        let t0 = Instant::now();
        s.add("t/concurrent_update", 1);
        assert_eq!(
            s.due(t0).unwrap().get("t/concurrent_update"),
            Some(&1),
            "the first is logged at once"
        );
        for i in 0..10_000u64 {
            s.add(
                if i % 2 == 0 {
                    "t/concurrent_update"
                } else {
                    "u/concurrent_delete"
                },
                1,
            );
            assert!(
                s.due(t0 + Duration::from_millis(i / 2)).is_none(),
                "not before the period is over"
            );
        }
        let sum = s.due(t0 + SUMMARY_EVERY).unwrap();
        assert_eq!(sum.values().sum::<u64>(), 10_000, "nothing counted is lost");
        assert_eq!(sum.len(), 2);
        assert!(s.due(t0 + SUMMARY_EVERY * 3).is_none(), "nothing new, nothing logged");
        s.add("t/concurrent_update", 5);
        assert_eq!(s.take().values().sum::<u64>(), 5);
    }
}
