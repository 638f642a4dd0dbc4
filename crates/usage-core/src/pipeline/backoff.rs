//! Exponential backoff with full jitter; a destination's retry-after is a floor.

use crate::event::id::random_u64;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, attempt: 0 }
    }

    /// The ceiling of the next wait: `min(max, base * 2^attempt)`.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next wait: uniform in `[0, ceiling]`, but never less than `retry_after`.
    pub(crate) fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(if nanos == 0 { 0 } else { random_u64() % (nanos + 1) });
        // Whoever built the error, a floor beyond the cap is not obeyed: a typo in a
        // server's header must not park an exporter for a year.
        let floor = retry_after.map(|ra| ra.min(crate::export::http::MAX_RETRY_AFTER));
        floor.map_or(jittered, |ra| jittered.max(ra))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_beyond_the_cap_waits_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let wait = b.next(Some(Duration::from_secs(1_000_000_000)));
        assert_eq!(wait, crate::export::http::MAX_RETRY_AFTER);
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            ceilings.push(b.ceiling().as_millis());
            b.next(None);
        }
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    proptest! {
        #[test]
        fn waits_stay_in_bounds_and_honour_retry_after(
            base_ms in 1u64..1000, max_mul in 1u32..100, attempts in 0usize..40, ra_ms in proptest::option::of(0u64..100_000)
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base * max_mul;
            let mut b = Backoff::new(base, max);
            for _ in 0..attempts {
                b.next(None);
            }
            let ceiling = b.ceiling();
            let ra = ra_ms.map(Duration::from_millis);
            let w = b.next(ra);
            prop_assert!(w <= ceiling.max(ra.unwrap_or_default()));
            if let Some(ra) = ra {
                prop_assert!(w >= ra, "wait {w:?} shorter than retry-after {ra:?}");
            }
        }
    }
}
