//! `usage-bench overload`: emit far faster than the exporter can take (it never
//! acknowledges) and measure peak RSS against the configured byte bounds.

use crate::{proc, workload};
use std::time::{Duration, Instant};
use usage_core::{
    async_trait, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    Pipeline, UsageConfig,
};

/// An exporter that never finishes a batch: the slowest destination there is.
struct Stall;

#[async_trait]
impl Exporter for Stall {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn build(_ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    Ok(Box::new(Stall))
}

pub static STALL: ExporterFactory = ExporterFactory {
    type_name: "bench_stall",
    description: "never acknowledges (overload benchmark)",
    build,
    defaults: ExporterDefaults::NONE,
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::accepts_any,
};

usage_core::register_exporter!(STALL);

pub fn run(events: u64, queue_bytes: u64) -> Result<serde_json::Value, String> {
    let toml = format!(
        "[pipeline]\nqueue_max_bytes = {queue_bytes}\nexport_timeout = \"1h\"\n\
         [exporters.slow]\ntype = \"bench_stall\"\nqueue_max_events = 10000000\nqueue_max_bytes = {queue_bytes}\n"
    );
    let pipeline =
        Pipeline::from_config(&UsageConfig::from_toml(&toml).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let baseline = proc::status_kib("self", "VmRSS")?;
    let start = Instant::now();
    let sink = pipeline.sink();
    // Built and emitted one at a time, as a host would: nothing held but the queues.
    for i in 0..events {
        sink.emit(workload::relay(i));
    }
    let seconds = start.elapsed().as_secs_f64();
    // Let the router move what it can into the exporter's queue, then measure.
    let end = Instant::now() + Duration::from_secs(10);
    while pipeline.stats().queued_events > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = pipeline.stats();
    let peak = proc::status_kib("self", "VmHWM")?;
    let exporter = stats.exporter("slow").cloned();
    let held_bytes = stats.queued_bytes + exporter.as_ref().map_or(0, |e| e.queued_bytes);
    let _ = pipeline.shutdown_blocking(Duration::from_millis(100));
    Ok(serde_json::json!({
        "events": events,
        "emit_seconds": seconds,
        "dropped_at_ingest": stats.dropped.total(),
        "dropped_at_exporter": exporter.as_ref().map_or(0, |e| e.dropped_queue_full),
        "held_events": stats.queued_events + exporter.as_ref().map_or(0, |e| e.queued_events + e.in_flight),
        "held_bytes": held_bytes,
        "bound_bytes": 2 * queue_bytes,
        "baseline_rss_kib": baseline,
        "peak_rss_kib": peak,
        "growth_kib": peak.saturating_sub(baseline),
    }))
}
