//! The crash-safe spool through the pipeline: cursors, lagging, restart, corruption.

mod common;

use common::{emit_relays, relay, wait_until, Recorder};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{ExportError, ExporterOptions, PipelineBuilder, RelayUsage, SpoolConfig, MAX_EVENT_BYTES};

fn builder(dir: &std::path::Path) -> PipelineBuilder {
    common::quick(dir.join("data")).spool(SpoolConfig {
        segment_bytes: 32 << 10,
        ..SpoolConfig::new(dir.join("spool"))
    })
}

/// An exporter that fails (retryably) until switched on.
fn switchable() -> (Recorder, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let rec = Recorder::scripted(move |_, _| {
        if flag.load(SeqCst) {
            Ok(())
        } else {
            Err(ExportError::retryable("503"))
        }
    });
    (rec, up)
}

#[test]
fn a_down_exporter_resumes_from_its_cursor_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Recorder::new();
    let (down, _up) = switchable();
    let p = builder(dir.path())
        .exporter("healthy", healthy.clone())
        .exporter("down", down.clone())
        .build()
        .unwrap();
    let ids = emit_relays(&p, 1000);
    assert!(wait_until(Duration::from_secs(10), || healthy.count() == 1000));
    // Shutdown cannot deliver to "down", but nothing is lost: it is spooled.
    let report = p.shutdown_blocking(Duration::from_millis(300)).unwrap();
    let d = report.exporter("down").unwrap();
    assert_eq!((d.delivered, d.pending, d.spooled), (0, 0, 1000), "{report}");
    assert_eq!(report.exporter("healthy").unwrap().spooled, 0);

    // Restart: "down" is up now and gets exactly what it missed; "healthy" gets nothing again.
    let healthy2 = Recorder::new();
    let down2 = Recorder::new();
    let p = builder(dir.path())
        .exporter("healthy", healthy2.clone())
        .exporter("down", down2.clone())
        .build()
        .unwrap();
    let more = emit_relays(&p, 10);
    let r = p.flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(r.exporter("down").unwrap().delivered, 1010);
    let mut want = ids.clone();
    want.extend(&more);
    assert_eq!(down2.ids(), want, "in order, each once");
    assert_eq!(healthy2.ids(), more);
    let s = p.stats();
    assert!(s.spool.as_ref().unwrap().replayed_events >= 1000);
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_slow_exporter_lags_through_the_spool_and_never_drops() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Recorder::scripted(|_, _| {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    });
    let p = builder(dir.path())
        .exporter_options(
            "slow",
            ExporterOptions {
                queue_max_events: Some(200),
                batch_max_events: Some(100),
                ..Default::default()
            },
            slow.clone(),
        )
        .build()
        .unwrap();
    let ids = emit_relays(&p, 20_000);
    let r = p.flush_blocking(Duration::from_secs(60)).unwrap();
    assert_eq!(r.exporter("slow").unwrap().delivered, 20_000);
    assert_eq!(slow.ids(), ids, "every event once, in order");
    let s = p.stats();
    assert_eq!(s.exporters[0].dropped_queue_full, 0);
    assert!(s.spool.as_ref().unwrap().replayed_events > 0, "it caught up from disk");
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

fn cursor_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join("spool").join("cursors").join(format!("{name}.cursor"))
}

#[test]
fn missing_or_garbage_cursors_redeliver_everything_spooled() {
    let dir = tempfile::tempdir().unwrap();
    let (down, _) = switchable();
    let p = builder(dir.path())
        .exporter("a", Recorder::new())
        .exporter("b", down)
        .build()
        .unwrap();
    let ids = emit_relays(&p, 300);
    assert!(wait_until(Duration::from_secs(10), || p.stats().exporters[0].cursor >= 300));
    p.shutdown_blocking(Duration::from_millis(200)).unwrap();
    assert!(cursor_file(dir.path(), "a").exists());

    // a's cursor is garbage, b's is gone: both get all 300 again, ids unchanged.
    std::fs::write(cursor_file(dir.path(), "a"), b"\x00garbage\xff").unwrap();
    let _ = std::fs::remove_file(cursor_file(dir.path(), "b"));
    let (a, b) = (Recorder::new(), Recorder::new());
    let p = builder(dir.path())
        .exporter("a", a.clone())
        .exporter("b", b.clone())
        .build()
        .unwrap();
    p.flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(a.ids(), ids);
    assert_eq!(b.ids(), ids);
    let s = p.stats().spool.unwrap();
    assert_eq!(s.quarantined_regions, 1, "the damaged cursor is counted");
    let q: Vec<String> = std::fs::read_dir(dir.path().join("spool/quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(q.iter().any(|n| n.starts_with("a.cursor.")), "{q:?}");
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_full_spool_applies_the_full_policy_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (down, _) = switchable();
    let p = builder(dir.path())
        .spool(SpoolConfig {
            max_bytes: 64 << 10,
            segment_bytes: 16 << 10,
            ..SpoolConfig::new(dir.path().join("spool"))
        })
        .configure(|c| c.queue_capacity = 1000)
        .exporter("down", down)
        .build()
        .unwrap();
    let sink = p.sink();
    for i in 0..20_000 {
        sink.emit(relay(i));
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert!(
        wait_until(Duration::from_secs(5), || p.stats().dropped.spool_full > 0),
        "{:?}",
        p.stats().dropped
    );
    let s = p.stats();
    assert!(s.spool.as_ref().unwrap().bytes >= 64 << 10);
    assert!(
        s.spool.as_ref().unwrap().bytes < (64 << 10) + (1 << 20),
        "bounded: {}",
        s.spool.unwrap().bytes
    );
    let err = p.shutdown_blocking(Duration::from_millis(200)).unwrap_err();
    assert!(err.report().dropped_at_ingest.spool_full > 0);
}

#[test]
fn finished_segments_are_deleted_and_restarts_keep_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = builder(dir.path()).exporter("a", rec.clone()).build().unwrap();
    emit_relays(&p, 5000);
    p.flush_blocking(Duration::from_secs(10)).unwrap();
    let s = p.stats().spool.unwrap();
    assert!(s.appended_events >= 5000);
    assert!(
        wait_until(Duration::from_secs(5), || p.stats().spool.unwrap().segments <= 2),
        "{:?}",
        p.stats().spool
    );
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
    // Even with every segment gone, new events never reuse an acknowledged seq.
    let rec2 = Recorder::new();
    let p = builder(dir.path()).exporter("a", rec2.clone()).build().unwrap();
    let ids = emit_relays(&p, 5);
    p.flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(rec2.ids(), ids);
    assert!(p.stats().exporters[0].cursor >= 5005);
    let distinct: HashSet<_> = rec.ids().into_iter().chain(rec2.ids()).collect();
    assert_eq!(distinct.len(), 5005);
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

/// Review H2: one drain pass stops at 64K events, and `accept` used to answer after one
/// pass, with its own events still queued behind the rest: acknowledged, not on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_answers_only_once_its_events_are_committed_behind_a_long_queue() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = builder(dir.path())
        .configure(|c| {
            c.queue_capacity = 400_000;
            c.queue_max_bytes = 1 << 30;
        })
        .exporter("rec", rec.clone())
        .build()
        .unwrap();
    let ahead = 200_000u64;
    emit_relays(&p, ahead);
    let mine = relay(u64::MAX);
    p.accept(vec![mine], Duration::from_secs(30)).await.unwrap();
    let spooled = p.stats().spool.unwrap().next_seq;
    assert!(
        spooled > ahead,
        "acknowledged with only {spooled} of {} events committed",
        ahead + 1
    );
    p.shutdown(Duration::from_secs(30)).await.unwrap();
}

/// A segment deleted under a lagging exporter: the restarted pipeline delivers the
/// rest, and the loss is in its stats and metrics, not only in a log line.
#[test]
fn events_lost_with_a_deleted_segment_are_in_the_stats_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (down, _up) = switchable();
    let p = builder(dir.path()).exporter("down", down).build().unwrap();
    emit_relays(&p, 3000);
    let _ = p.shutdown_blocking(Duration::from_millis(300));
    let mut segments: Vec<_> = std::fs::read_dir(dir.path().join("spool/segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    std::fs::remove_file(&segments[1]).unwrap();
    let rec = Recorder::new();
    let p = builder(dir.path()).exporter("down", rec.clone()).build().unwrap();
    let lost = p.stats().spool.unwrap().lost_missing_events;
    assert!(lost > 0);
    assert!(wait_until(Duration::from_secs(10), || rec.count() as u64 == 3000 - lost));
    let metrics = p.stats().to_prometheus();
    assert!(
        metrics.contains(&format!("usage_spool_lost_events{{reason=\"missing\"}} {lost}")),
        "{metrics}"
    );
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

#[test]
fn an_event_too_large_for_a_spool_record_is_refused_at_emit_and_its_neighbours_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = builder(dir.path()).exporter("x", rec.clone()).build().unwrap();
    let sink = p.sink();
    sink.emit(relay(1));
    sink.emit(RelayUsage {
        project: "p".repeat(MAX_EVENT_BYTES).into(),
        cu: 2,
        ..Default::default()
    });
    sink.emit(relay(3));
    let err = p.flush_blocking(Duration::from_secs(5)).unwrap_err();
    assert!(err.to_string().contains("too_large 1"), "{err}");
    let cus: Vec<u64> = rec
        .events()
        .iter()
        .filter_map(|e| e.downcast_ref::<RelayUsage>().map(|r| r.cu))
        .collect();
    assert_eq!(cus, [1, 3]);
    let s = p.stats();
    assert_eq!((s.dropped.too_large, s.dropped.total()), (1, 1));
    let metrics = s.to_prometheus();
    assert!(
        metrics.contains("usage_pipeline_dropped_events_total{reason=\"too_large\"} 1"),
        "{metrics}"
    );
    let _ = p.shutdown_blocking(Duration::from_secs(5));
}
