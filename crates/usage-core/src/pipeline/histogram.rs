//! Lock-free fixed-bucket histograms for `/metrics` (export latency, batch sizes):
//! one atomic add per bucket hit, no lock on the export path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of export latency buckets, in seconds.
pub(crate) const SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds of batch size buckets, in events.
pub(crate) const EVENTS: &[f64] = &[
    1.0,
    10.0,
    100.0,
    500.0,
    1000.0,
    5000.0,
    10_000.0,
    50_000.0,
    100_000.0,
    1_000_000.0,
];

/// Observations counted per bucket (the last one is +Inf), with their sum.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in millionths, so it can be an integer atomic.
    sum_micro: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micro.fetch_add((value.max(0.0) * 1e6) as u64, Relaxed);
    }

    /// Cumulative counts per upper bound (Prometheus' `le`), the sum and the count.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Relaxed);
            if let Some(&b) = self.bounds.get(i) {
                buckets.push((b, total));
            }
        }
        HistogramSnapshot {
            buckets,
            sum: self.sum_micro.load(Relaxed) as f64 / 1e6,
            count: total,
        }
    }
}

/// A histogram as read: cumulative counts per upper bound (`+Inf` is `count`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations at or below it).
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

// Bounds are constants and sums finite (never NaN), so equality is total.
impl Eq for HistogramSnapshot {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_overflow_counts() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 5.0, 100.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 3)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 106.5).abs() < 1e-6);
    }
}
