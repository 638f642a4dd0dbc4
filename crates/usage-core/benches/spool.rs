//! Spool throughput and recovery, in one run:
//! - append: events/s through emit -> router -> spool append -> group commit, per
//!   fsync mode (`batch`, `interval:100ms`, `never`), with MB/s printed;
//! - recovery: opening a spool holding 1M events (scan, checksum, index).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};
use usage_core::{
    async_trait, Batch, ExportError, Exporter, ExporterOptions, FsyncMode, Pipeline, RelayUsage, SpoolConfig, Text,
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
    g.finish();
}

criterion_group!(benches, bench_spool);
criterion_main!(benches);
