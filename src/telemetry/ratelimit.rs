//! Rate-limited logging: during an outage the same line (librdkafka's, or drc's own
//! "cannot write the heartbeat") would repeat every few hundred milliseconds; the
//! log gets it once per [`LOG_EVERY`] per kind, with the number of repeats suppressed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of line is logged during an outage.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Remembers, per kind of line, when it was last logged and how often it was
/// suppressed since. Also the librdkafka client context (`transport::kafka`).
#[derive(Default)]
pub struct RateLimitedLog {
    last: Mutex<HashMap<String, (Instant, u64)>>,
}

impl RateLimitedLog {
    /// `Some(repeats suppressed since the last line)` when `key` may be logged now.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(key) {
            Some((at, n)) if at.elapsed() < LOG_EVERY => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let repeats = *n;
                (*at, *n) = (Instant::now(), 0);
                Some(repeats)
            }
            None => {
                last.insert(key.to_string(), (Instant::now(), 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_passes_repeats_are_counted() {
        let l = RateLimitedLog::default();
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0), "kinds are independent");
        // once LOG_EVERY has passed, the next line reports what was suppressed
        l.last.lock().unwrap().get_mut("a").unwrap().0 -= LOG_EVERY;
        assert_eq!(l.allow("a"), Some(2));
        assert_eq!(l.allow("a"), None);
    }
}
