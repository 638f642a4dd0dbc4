//! Spool throughput and recovery, in one run:
//! - append: events/s through emit -> router -> spool append -> group commit, per
//!   fsync mode (`batch`, `interval:100ms`, `never`), with MB/s printed;
//! - recovery: opening a spool holding 1M events (scan, checksum, index);
//! - replay: an exporter reading 200k spooled events back (as the gateway's Kafka
//!   exporter does when HTTP accepts faster than Kafka takes), each with its own
//!   resource and Lava's real values, and writing each as its JSON line.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::testing::LavaStrings;
use usage_core::{
    async_trait, Batch, Event, ExportError, Exporter, ExporterOptions, FsyncMode, Pipeline, RelayUsage, Resource,
    SpoolConfig, Text,
};

struct Discard;

#[async_trait]
impl Exporter for Discard {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        Ok(())
    }
}

struct Hang;

#[async_trait]
impl Exporter for Hang {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Writes every event as its JSON line (as the file, S3, Kafka and HTTP exporters
/// do) and counts them.
struct JsonLines(Arc<AtomicU64>);

#[async_trait]
impl Exporter for JsonLines {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let mut out = Vec::with_capacity(batch.len() * 512);
        for e in batch.iter() {
            usage_core::json::write_event(&mut out, e, e.resource().map_or(batch.resource(), |r| r));
        }
        std::hint::black_box(&out);
        self.0.fetch_add(batch.len() as u64, Relaxed);
        Ok(())
    }
}

/// A received `relay_usage` as the gateway spools it: Lava's values (the same
/// strings as every other workload) and the sender's own resource.
fn received(i: u64, lava: &LavaStrings, resource: &Arc<Resource>) -> Event {
    let (project, provider, origin) = lava.pick(i);
    Event::new(RelayUsage {
        project: Text::new(project),
        provider: Text::new(provider),
        origin: Text::new(origin),
        ..relay(i)
    })
    .with_resource(resource.clone())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn relay(i: u64) -> RelayUsage {
    RelayUsage {
        project: Text::new_static("acme"),
        chain: Text::new_static("ETH1"),
        api_interface: Text::new_static("jsonrpc"),
        api_method: Text::new_static("eth_getBlockByNumber"),
        cu: 10 + (i & 7),
        latency_ms: 42,
        success: true,
        provider: Text::new_static("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"),
        origin: Text::new_static("https://app.acme.io"),
        ..Default::default()
    }
}

fn spool_pipeline(dir: &std::path::Path, fsync: FsyncMode, exporter: impl Exporter) -> Pipeline {
    Pipeline::builder()
        .configure(|c| {
            c.queue_capacity = 200_000;
            c.export_timeout = Duration::from_secs(3600);
        })
        .spool(SpoolConfig {
            fsync,
            max_bytes: 8 << 30,
            ..SpoolConfig::new(dir)
        })
        .exporter_options(
            "e",
            ExporterOptions {
                queue_max_events: Some(100_000),
                ..Default::default()
            },
            exporter,
        )
        .build()
        .expect("pipeline")
}

/// Emits `n` events (pacing so the ingest queue never overflows) and waits until
/// all are appended; returns the elapsed time.
fn append(p: &Pipeline, n: u64) -> Duration {
    let sink = p.sink();
    let target = p.stats().spool.map_or(0, |s| s.next_seq) + n;
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        for _ in 0..1000.min(n - i) {
            sink.emit(relay(i));
            i += 1;
        }
        while p.stats().queued_events > 100_000 {
            std::thread::yield_now();
        }
    }
    while p.stats().spool.map_or(0, |s| s.next_seq) < target {
        std::thread::sleep(Duration::from_micros(200));
    }
    start.elapsed()
}

fn bench_spool(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    for (name, mode) in [
        ("batch", FsyncMode::Batch),
        ("interval_100ms", FsyncMode::Interval(Duration::from_millis(100))),
        ("never", FsyncMode::Never),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = spool_pipeline(dir.path(), mode, Discard);
        g.bench_function(format!("append/{name}"), |b| b.iter_custom(|iters| append(&p, iters)));
        let s = p.stats().spool.expect("spool");
        eprintln!(
            "append/{name}: {:.0} bytes per spooled event, {} fsyncs for {} events",
            s.bytes as f64 / (s.next_seq - s.oldest_seq).max(1) as f64,
            s.fsyncs,
            s.appended_events
        );
        let _ = p.shutdown_blocking(Duration::from_secs(30));
    }

    // A spool holding 1M undelivered events (the exporter never acknowledges).
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let p = spool_pipeline(dir.path(), FsyncMode::Never, Hang);
        append(&p, 1_000_000);
        let _ = p.shutdown_blocking(Duration::from_millis(100));
    }
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("recover_1M", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let p = spool_pipeline(dir.path(), FsyncMode::Never, Hang);
                total += start.elapsed();
                assert!(p.stats().spool.expect("spool").next_seq >= 1_000_000);
                let _ = p.shutdown_blocking(Duration::from_millis(10));
            }
            total
        })
    });

    // 200k received events spooled and not delivered; each iteration replays a copy.
    const REPLAYED: u64 = 200_000;
    let fixture = tempfile::tempdir().expect("tempdir");
    {
        let p = spool_pipeline(fixture.path(), FsyncMode::Never, Hang);
        let sink = p.sink();
        let resource = Arc::new(Resource::new("relay-consumer").with_instance_id("host-7-31337"));
        let lava = LavaStrings::new();
        for i in 0..REPLAYED {
            sink.emit(received(i, &lava, &resource));
            while p.stats().queued_events > 100_000 {
                std::thread::yield_now();
            }
        }
        while p.stats().spool.map_or(0, |s| s.next_seq) < REPLAYED {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = p.shutdown_blocking(Duration::from_millis(100));
    }
    g.throughput(Throughput::Elements(REPLAYED));
    g.bench_function("replay_200k_json", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let copy = tempfile::tempdir().expect("tempdir");
                copy_dir(fixture.path(), copy.path());
                let written = Arc::new(AtomicU64::new(0));
                let p = spool_pipeline(copy.path(), FsyncMode::Never, JsonLines(written.clone()));
                // From the spool opened (recovery is timed above) to every event written.
                let start = Instant::now();
                while written.load(Relaxed) < REPLAYED {
                    std::thread::sleep(Duration::from_micros(200));
                }
                total += start.elapsed();
                let _ = p.shutdown_blocking(Duration::from_secs(10));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_spool);
criterion_main!(benches);
