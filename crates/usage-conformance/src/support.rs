//! What every suite needs around the checks: reporting rows to the e2e table,
//! scratch directories, addresses from the environment, polling a backend.

use crate::StepReport;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use usage_core::{Event, EventId, Pipeline, RelayUsage};

/// Appends reports to `$USAGE_E2E_REPORT` (one JSON object per line) for the e2e table.
pub fn record(reports: &[StepReport]) {
    let Ok(path) = std::env::var("USAGE_E2E_REPORT") else {
        return;
    };
    let mut text = String::new();
    for r in reports {
        text.push_str(&r.to_json());
        text.push('\n');
    }
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(path))
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Appends one free-form row (a JSON object with at least the [`StepReport`] keys)
/// to `$USAGE_E2E_REPORT`, for rows with more columns than [`StepReport`] has.
pub fn record_json(row: &serde_json::Value) {
    let Ok(path) = std::env::var("USAGE_E2E_REPORT") else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(path))
    {
        let _ = writeln!(f, "{row}");
    }
}

/// A scratch directory under the e2e work dir (or the system temp dir).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("USAGE_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Polls `read` until it returns at least `expected` events or `limit` passes
/// (backends that index asynchronously need a moment).
pub fn poll_read(
    limit: Duration,
    expected: usize,
    mut read: impl FnMut() -> Result<Vec<Event>, String>,
) -> Result<Vec<Event>, String> {
    let end = Instant::now() + limit;
    loop {
        let got = read()?;
        if got.len() >= expected || Instant::now() >= end {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An address from an environment variable set by `cargo xtask e2e`; panics with
/// how to run the e2e tests when it is missing.
pub fn env_addr(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the e2e tests with `cargo xtask e2e`"))
}

/// Emits `n` `relay_usage` events for project `acme` (cu 0..n) and returns their ids,
/// for fault tests that check every id arrives.
pub fn emit_relays(p: &Pipeline, n: u64) -> HashSet<EventId> {
    (0..n)
        .map(|cu| {
            let e = Event::new(RelayUsage {
                project: "acme".into(),
                cu,
                ..Default::default()
            });
            let id = e.id();
            p.sink().emit(e);
            id
        })
        .collect()
}
