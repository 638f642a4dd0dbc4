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
