//! A live one-line progress display on stderr.

use std::io::Write;
use std::time::Instant;
use usage_core::PipelineStats;

pub(crate) struct Progress {
    start: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Progress {
            start: now,
            last: now,
            enabled: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// Redraws at most 5 times a second.
    pub(crate) fn tick(&mut self, s: &PipelineStats) {
        if !self.enabled || self.last.elapsed().as_millis() < 200 {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let exported: u64 = s.exporters.iter().map(|e| e.exported).sum();
        eprint!(
            "\r{:>6.1}s  emitted {:>10}  ({:>9.0}/s)  exported {:>10}  dropped {:>6}  queued {:>7}   ",
            secs,
            s.emitted,
            s.emitted as f64 / secs,
            exported,
            s.dropped.total(),
            s.queued_events
        );
        let _ = std::io::stderr().flush();
    }

    pub(crate) fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
