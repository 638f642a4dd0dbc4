//! Issue 22: export latency and batch-size histograms, per exporter, on `/metrics`.

use std::time::Duration;
use usage_core::testing::MemoryExporter;
use usage_core::{ExportError, Pipeline, RelayUsage};

#[test]
fn every_export_call_is_timed_and_every_delivered_batch_sized() {
    // One retryable failure, then success: two calls, one delivered batch.
    let memory = MemoryExporter::scripted(|_, call| {
        if call == 0 {
            Err(ExportError::retryable("warming up"))
        } else {
            Ok(())
        }
    });
    let p = Pipeline::builder()
        .configure(|c| {
            c.retry_base = Duration::from_millis(1);
            c.flush_interval = Duration::from_millis(10);
        })
        .exporter("mem", memory.clone())
        .build()
        .unwrap();
    for cu in 0..7 {
        p.sink().emit(RelayUsage {
            cu,
            ..Default::default()
        });
    }
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    let s = p.stats();
    let e = s.exporter("mem").unwrap();
    assert_eq!(e.export_seconds.count, memory.calls() as u64, "every call timed");
    assert!(memory.calls() >= 2, "the failed call and the one that delivered");
    // batch_sizes() lists the batches the exporter acknowledged.
    let sizes = memory.batch_sizes();
    assert_eq!(e.batch_events.count as usize, sizes.len(), "delivered batches only");
    assert!(e.batch_events.count < e.export_seconds.count);
    assert_eq!(e.batch_events.sum as usize, 7);
    let text = s.to_prometheus();
    let inf = format!(
        "usage_exporter_export_seconds_bucket{{exporter=\"mem\",type=\"custom\",le=\"+Inf\"}} {}",
        memory.calls()
    );
    assert!(text.lines().any(|l| l == inf), "{inf} in:\n{text}");
    assert!(text.contains("# TYPE usage_exporter_batch_events histogram"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "usage_exporter_batch_events_bucket{exporter=\"mem\",type=\"custom\",le=\"10\"} 1"),
        "{text}"
    );
}
