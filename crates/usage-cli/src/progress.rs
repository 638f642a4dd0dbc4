//! A live one-line progress display on stderr: on a terminal, or anywhere with
//! `USAGE_PROGRESS=1` (e.g. to watch it in a log).

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
            enabled: std::io::IsTerminal::is_terminal(&std::io::stderr())
                || std::env::var("USAGE_PROGRESS").is_ok_and(|v| v == "1"),
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

    /// Redraws `line()` at most 5 times a second; `last` draws it whatever the time.
    pub(crate) fn line(&mut self, last: bool, line: impl FnOnce() -> String) {
        if !self.enabled || (!last && self.last.elapsed().as_millis() < 200) {
            return;
        }
        self.last = Instant::now();
        eprint!("\r{:>6.1}s  {}   ", self.start.elapsed().as_secs_f64(), line());
        let _ = std::io::stderr().flush();
    }

    pub(crate) fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
