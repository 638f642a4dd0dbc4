//! `usage-bench e2e`: emit N events through a pipeline built from a config file and
//! time it until every exporter acknowledged them (shutdown report).

use crate::{proc, workload};
use std::time::{Duration, Instant};
use usage_core::{Pipeline, UsageConfig};

pub fn run(config: &std::path::Path, events: u64) -> Result<serde_json::Value, String> {
    let cfg = UsageConfig::load_file(config, true).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::from_config(&cfg).map_err(|e| e.to_string())?;
    // Built before the clock starts: event construction is the host's cost, not ours.
    let mut batch: Vec<_> = (0..events).map(workload::relay).collect();
    let cpu0 = proc::cpu_seconds("self")?;
    let start = Instant::now();
    let sink = pipeline.sink();
    // Drained, not consumed: the host's array (hundreds of MB at 1M events) is
    // freed after the clock stops, as its building was before it started.
    for e in batch.drain(..) {
        sink.emit(e);
    }
    let report = pipeline.shutdown_blocking(Duration::from_secs(600));
    let seconds = start.elapsed().as_secs_f64();
    let cpu = proc::cpu_seconds("self")? - cpu0;
    drop(batch);
    let report = report.map_err(|e| format!("not everything was delivered: {e}"))?;
    let delivered: u64 = report.exporters.iter().map(|e| e.delivered).sum();
    Ok(serde_json::json!({
        "events": events,
        "delivered": delivered,
        "seconds": seconds,
        "events_per_second": events as f64 / seconds,
        "cpu_seconds": cpu,
        "cpu_seconds_per_million": cpu * 1e6 / events as f64,
        "peak_rss_kib": proc::status_kib("self", "VmHWM")?,
    }))
}
