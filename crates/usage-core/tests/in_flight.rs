//! `batches_in_flight`: an exporter that hands its batches off is given the next one
//! while it awaits the last one's acknowledgement; batches start in order and are
//! acknowledged in order, so a batch still in flight is never skipped.

mod common;

use common::{emit_relays, wait_until, Recorder};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usage_core::{
    async_trait, Batch, ExportError, Exporter, ExporterDefaults, ExporterSection, PipelineBuilder, RelayUsage,
    SpoolConfig,
};

const BATCH: usize = 10;

fn builder(dir: &std::path::Path) -> PipelineBuilder {
    common::quick(dir.join("data")).spool(SpoolConfig::new(dir.join("spool")))
}

/// Section "x" with small batches and `batches_in_flight`, of a type that allows it.
fn concurrent(b: PipelineBuilder, batches_in_flight: usize, exporter: impl Exporter) -> PipelineBuilder {
    let mut section = ExporterSection::new("x", "custom");
    section.options.batch_max_events = Some(BATCH);
    section.options.batches_in_flight = Some(batches_in_flight);
    let defaults = ExporterDefaults {
        batches_in_flight: Some(2),
        ..ExporterDefaults::NONE
    };
    b.exporter_with_defaults(section, exporter, defaults)
}

fn cus(batch: &Batch) -> Vec<u64> {
    batch
        .iter()
        .filter_map(|e| e.downcast_ref::<RelayUsage>().map(|r| r.cu))
        .collect()
}

/// Records how many exports run at once and the first event of each, in the
/// order they start.
#[derive(Default)]
struct Tally {
    running: AtomicUsize,
    most: AtomicUsize,
    starts: Mutex<Vec<u64>>,
    delivered: Mutex<Vec<u64>>,
}

impl Tally {
    fn start(&self, batch: &Batch) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        self.starts.lock().unwrap().push(cus(batch)[0]);
    }

    fn finish(&self, batch: &Batch) {
        self.delivered.lock().unwrap().extend(cus(batch));
        self.running.fetch_sub(1, SeqCst);
    }
}

/// Hands each batch off, then holds it until the next one has started (or, for
/// the batch holding the last event, not at all): the batches can only finish if
/// the pipeline overlaps them.
struct Overlapping {
    tally: Arc<Tally>,
    last: u64,
}

#[async_trait]
impl Exporter for Overlapping {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.tally.start(batch);
        let me = self.tally.starts.lock().unwrap().len();
        batch.handed_off();
        let give_up = Instant::now() + Duration::from_secs(5);
        while !cus(batch).contains(&self.last)
            && self.tally.starts.lock().unwrap().len() == me
            && Instant::now() < give_up
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.tally.finish(batch);
        Ok(())
    }
}

#[test]
fn handed_off_batches_overlap_start_in_order_and_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let exporter = Overlapping {
        tally: tally.clone(),
        last: 199,
    };
    let p = concurrent(builder(dir.path()), 4, exporter).build().unwrap();
    emit_relays(&p, 200);
    let report = p.shutdown_blocking(Duration::from_secs(30)).unwrap();
    assert_eq!(report.exporter("x").unwrap().delivered, 200, "{report}");
    let most = tally.most.load(SeqCst);
    assert!((2..=4).contains(&most), "{most} exports at once, batches_in_flight = 4");
    let starts = tally.starts.lock().unwrap().clone();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "batches start in order: {starts:?}"
    );
    let mut delivered = tally.delivered.lock().unwrap().clone();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..200).collect::<Vec<_>>(), "each event once");
}

/// Takes a little time per batch and never hands one off.
struct Serial {
    tally: Arc<Tally>,
}

#[async_trait]
impl Exporter for Serial {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.tally.start(batch);
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.tally.finish(batch);
        Ok(())
    }
}

#[test]
fn an_exporter_that_never_hands_off_gets_one_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let p = concurrent(builder(dir.path()), 4, Serial { tally: tally.clone() })
        .build()
        .unwrap();
    emit_relays(&p, 200);
    let report = p.shutdown_blocking(Duration::from_secs(30)).unwrap();
    assert_eq!(report.exporter("x").unwrap().delivered, 200, "{report}");
    assert!(tally.starts.lock().unwrap().len() >= 200 / BATCH);
    assert_eq!(tally.most.load(SeqCst), 1, "one at a time");
    assert_eq!(*tally.delivered.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

/// Hands off and then never answers the batch holding event 0; acknowledges the rest.
struct FirstHangs {
    tally: Arc<Tally>,
    hung: Arc<AtomicUsize>,
}

#[async_trait]
impl Exporter for FirstHangs {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.tally.start(batch);
        batch.handed_off();
        if cus(batch).contains(&0) {
            self.hung.store(batch.len(), SeqCst);
            std::future::pending::<()>().await;
        }
        self.tally.finish(batch);
        Ok(())
    }
}

#[test]
fn a_batch_finished_early_is_not_acknowledged_past_one_still_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let p = builder(dir.path()).configure(|c| c.export_timeout = Duration::from_secs(3600));
    let hung = Arc::new(AtomicUsize::new(0));
    let exporter = FirstHangs {
        tally: tally.clone(),
        hung: hung.clone(),
    };
    let p = concurrent(p, 4, exporter).build().unwrap();
    let ids = emit_relays(&p, 30);
    // The batches after it (two or three: up to four in flight) arrive while the
    // first is still in flight, and the worker then finds its queue empty.
    let later = || tally.delivered.lock().unwrap().len();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let hung = hung.load(SeqCst);
            hung > 0 && later() + hung == 30
        }),
        "the batches after the hung one were exported: {}",
        later()
    );
    let _ = p.shutdown_blocking(Duration::from_millis(300));

    // Restarted over the same spool: the hung batch was never acknowledged, so its
    // events come again, and with them every later one (acknowledged in order).
    let again = Recorder::new();
    let p = builder(dir.path()).exporter("x", again.clone()).build().unwrap();
    p.flush_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(again.ids(), ids, "the whole spool again, in order");
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}

/// Hands each batch off and answers a moment later, as a destination would.
struct Quick;

#[async_trait]
impl Exporter for Quick {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        batch.handed_off();
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

#[test]
fn a_lagging_exporter_with_batches_in_flight_reads_each_spooled_event_once() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    // Spooled while "x" is down.
    let down = Recorder::scripted(|_, _| Err(ExportError::retryable("503")));
    let p = builder(dir.path()).exporter("x", down).build().unwrap();
    emit_relays(&p, N);
    let _ = p.shutdown_blocking(Duration::from_millis(300));

    // Back up with batches in flight: it reads the whole spool. A batch finishing
    // while the next one is being read must not make the read start over.
    let p = concurrent(builder(dir.path()), 4, Quick).build().unwrap();
    p.flush_blocking(Duration::from_secs(30)).unwrap();
    let s = p.stats();
    let report = p.shutdown_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(report.exporter("x").unwrap().delivered, N, "{report}");
    let replayed = s.spool.as_ref().map(|s| s.replayed_events);
    assert_eq!(replayed, Some(N), "each spooled event decoded once");
}

/// Hands each batch off and holds it until `release` is set.
struct Held {
    tally: Arc<Tally>,
    release: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl Exporter for Held {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.tally.start(batch);
        batch.handed_off();
        while !self.release.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.tally.finish(batch);
        Ok(())
    }
}

#[test]
fn while_a_batch_is_in_flight_only_a_full_one_starts_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let tally = Arc::new(Tally::default());
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exporter = Held {
        tally: tally.clone(),
        release: release.clone(),
    };
    let p = concurrent(builder(dir.path()), 4, exporter).build().unwrap();
    let starts = || tally.starts.lock().unwrap().len();
    emit_relays(&p, BATCH as u64);
    assert!(wait_until(Duration::from_secs(10), || starts() == 1));
    // Three more: due after flush_interval (20 ms), but a full batch is in flight.
    emit_relays(&p, 3);
    assert!(
        !wait_until(Duration::from_millis(200), || starts() > 1),
        "a partial batch waited for the one in flight"
    );
    // A full one goes beside it at once.
    emit_relays(&p, BATCH as u64);
    assert!(wait_until(Duration::from_secs(10), || starts() == 2));
    release.store(true, SeqCst);
    let report = p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(
        report.exporter("x").unwrap().delivered,
        2 * BATCH as u64 + 3,
        "{report}"
    );
}
