//! Pausing with batches in flight: every refused batch is held until the exporter
//! resumes, and a resume asked for earlier never ends a later pause.

mod common;

use common::{emit_relays, wait_until, Recorder};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{async_trait, Batch, ExportError, Exporter, ExporterDefaults, ExporterSection, PipelineBuilder};

fn base(dir: &std::path::Path, probe_interval: Duration) -> PipelineBuilder {
    common::quick(dir.to_path_buf()).configure(|c| c.probe_interval = probe_interval)
}

/// Refuses with "paused" until `authorized`, handing each batch off first so the
/// next one is exported beside it.
fn refusing(authorized: &Arc<AtomicBool>) -> Recorder {
    let authorized = authorized.clone();
    Recorder::scripted(move |batch, _| {
        batch.handed_off();
        if authorized.load(SeqCst) {
            Ok(())
        } else {
            Err(ExportError::paused("401 Unauthorized"))
        }
    })
}

/// Section "x" with batches of 10, three in flight.
fn three_in_flight(b: PipelineBuilder, exporter: impl Exporter) -> PipelineBuilder {
    let mut section = ExporterSection::new("x", "custom");
    section.options.batch_max_events = Some(10);
    section.options.batches_in_flight = Some(3);
    let defaults = ExporterDefaults {
        batches_in_flight: Some(1),
        ..ExporterDefaults::NONE
    };
    b.exporter_with_defaults(section, exporter, defaults)
}

#[test]
fn one_resume_releases_every_batch_refused_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let authorized = Arc::new(AtomicBool::new(false));
    let rec = refusing(&authorized);
    // Probes never come: only the resume below can end the pause.
    let p = three_in_flight(base(dir.path(), Duration::from_secs(3600)), rec.clone())
        .build()
        .unwrap();
    emit_relays(&p, 30);
    assert!(
        wait_until(Duration::from_secs(5), || rec.calls() == 3),
        "three batches refused in flight"
    );
    assert!(wait_until(Duration::from_secs(5), || p.stats().exporters[0].paused));
    authorized.store(true, SeqCst);
    assert!(p.resume("x"));
    let report = p
        .flush_blocking(Duration::from_secs(5))
        .expect("every refused batch was retried");
    assert_eq!(report.exporter("x").unwrap().delivered, 30);
    let acknowledged = rec.batch_sizes();
    assert_eq!(acknowledged.iter().sum::<usize>(), 30, "each event acknowledged once");
    assert_eq!(
        rec.calls(),
        3 + acknowledged.len(),
        "each refused batch retried once, after the resume"
    );
    assert_eq!(rec.probes(), 0);
    assert!(!p.stats().exporters[0].paused);
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_resume_asked_for_before_a_pause_does_not_end_it() {
    let dir = tempfile::tempdir().unwrap();
    let authorized = Arc::new(AtomicBool::new(false));
    let rec = refusing(&authorized);
    let p = base(dir.path(), Duration::from_millis(10))
        .exporter("x", rec.clone())
        .build()
        .unwrap();
    assert!(p.resume("x"), "nothing is paused yet");
    emit_relays(&p, 1);
    assert!(wait_until(Duration::from_secs(5), || rec.probes() >= 3));
    assert_eq!(
        rec.calls(),
        1,
        "paused after the first refusal, not resumed by the earlier request"
    );
    authorized.store(true, SeqCst);
    rec.set_probe_ok(true);
    let report = p.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(report.exporter("x").unwrap().delivered, 1);
    assert_eq!(rec.calls(), 2);
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

/// Refuses until authorized; its probe waits until the test lets it answer.
#[derive(Clone, Default)]
struct SlowProbe(Arc<ProbeState>);

#[derive(Default)]
struct ProbeState {
    authorized: AtomicBool,
    answer_probes: AtomicBool,
    calls: AtomicUsize,
    probes: AtomicUsize,
    probing: AtomicUsize,
    most_probing: AtomicUsize,
    acknowledged: AtomicUsize,
}

#[async_trait]
impl Exporter for SlowProbe {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.0.calls.fetch_add(1, SeqCst);
        batch.handed_off();
        if self.0.authorized.load(SeqCst) {
            self.0.acknowledged.fetch_add(batch.len(), SeqCst);
            Ok(())
        } else {
            Err(ExportError::paused("401 Unauthorized"))
        }
    }

    async fn probe(&self) -> Result<(), ExportError> {
        self.0.probes.fetch_add(1, SeqCst);
        let now = self.0.probing.fetch_add(1, SeqCst) + 1;
        self.0.most_probing.fetch_max(now, SeqCst);
        while !self.0.answer_probes.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.0.probing.fetch_sub(1, SeqCst);
        Ok(())
    }
}

#[test]
fn batches_refused_in_flight_share_one_prober() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = SlowProbe::default();
    let p = three_in_flight(base(dir.path(), Duration::from_millis(10)), exporter.clone())
        .configure(|c| c.export_timeout = Duration::from_secs(60))
        .build()
        .unwrap();
    emit_relays(&p, 30);
    assert!(wait_until(Duration::from_secs(5), || exporter.0.calls.load(SeqCst) == 3));
    assert!(wait_until(Duration::from_secs(5), || exporter.0.probes.load(SeqCst) >= 1));
    // Each refused batch probing on its own would start two more within 10 ms.
    assert!(!wait_until(Duration::from_millis(300), || exporter
        .0
        .probes
        .load(SeqCst)
        > 1));
    exporter.0.authorized.store(true, SeqCst);
    exporter.0.answer_probes.store(true, SeqCst);
    let report = p.flush_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(report.exporter("x").unwrap().delivered, 30);
    assert_eq!(exporter.0.acknowledged.load(SeqCst), 30);
    assert_eq!(exporter.0.most_probing.load(SeqCst), 1);
    assert_eq!(
        exporter.0.probes.load(SeqCst),
        1,
        "once it resumed, the other refused batches retried without pausing again"
    );
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}
