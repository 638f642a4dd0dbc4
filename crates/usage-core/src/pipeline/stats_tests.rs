//! Stats never wait for the router, which holds its lock across spool writes and
//! fsyncs: `/readyz` and `/metrics` must answer while the disk is slow.

use crate::testing::MemoryExporter;
use crate::{Pipeline, RelayUsage};
use std::time::Duration;

#[test]
fn stats_answer_while_the_router_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::builder()
        .configure(|c| c.data_dir = dir.path().to_path_buf())
        .exporter("mem", MemoryExporter::default())
        .build()
        .unwrap();
    for cu in 0..10 {
        p.sink().emit(RelayUsage {
            cu,
            ..Default::default()
        });
    }
    p.flush_blocking(Duration::from_secs(10)).unwrap();
    // The router's lock held as a slow fsync would hold it.
    let held = p.inner.lock_router();
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = p.inner.clone();
    std::thread::spawn(move || {
        let _ = tx.send(inner.stats());
    });
    let stats = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("stats answered while the router was held");
    assert_eq!(stats.accepted, 10);
    assert_eq!(stats.exporters[0].exported, 10);
    drop(held);
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

#[test]
fn instance_names_cannot_break_a_metrics_line() {
    let stats = crate::PipelineStats {
        exporters: vec![crate::pipeline::stats::ExporterStats {
            name: "a\"} 1\nevil{x=\"".into(),
            type_name: "file".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = stats.to_prometheus();
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("usage_"),
            "a forged line: {line:?}"
        );
    }
    assert!(text.contains(r#"exporter="a\"} 1\nevil{x=\"""#), "{text}");
}

/// Issue 22: capacity beside use, so an alert can fire on the ratio before a drop,
/// and the version serving the metrics.
#[test]
fn metrics_show_capacity_beside_use_and_the_build() {
    let stats = crate::PipelineStats {
        queued_bytes: 10,
        queue_max_bytes: 100,
        exporters: vec![crate::pipeline::stats::ExporterStats {
            name: "k".into(),
            type_name: "kafka".into(),
            queued_bytes: 5,
            queue_max_events: 2000,
            queue_max_bytes: 4096,
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = stats.to_prometheus();
    for line in [
        "usage_pipeline_queued_bytes 10",
        "usage_pipeline_queue_max_bytes 100",
        "usage_exporter_queued_bytes{exporter=\"k\",type=\"kafka\"} 5",
        "usage_exporter_queue_max_events{exporter=\"k\",type=\"kafka\"} 2000",
        "usage_exporter_queue_max_bytes{exporter=\"k\",type=\"kafka\"} 4096",
        &format!("usage_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}
