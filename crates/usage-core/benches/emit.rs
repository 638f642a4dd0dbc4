//! Emit cost, side by side in one run:
//! (a) `UsageSink::emit` of a 15-field `relay_usage` into an enabled pipeline, 1 and 2 threads;
//! (b) the no-op sink;
//! (c) the same 15 fields as an OpenTelemetry log record through `opentelemetry_sdk`'s
//!     `BatchLogProcessor` with a discarding exporter, 1 and 2 threads.
//!
//! (d) both again with Lava's real values (shared/interop.md): 500 distinct 32-char
//!     project hashes, 44-char provider addresses, origins of 29-33 chars, held by
//!     the host as `String`s and copied into each event as a service would
//!     (`usage_real`, `otel_sdk_real`).
//!
//! Both pipelines run with their default queue size raised only as far as one
//! burst needs. Each sample emits its events in bursts of `BURST` per thread (timed)
//! and lets the queue drain between bursts (untimed), so every timed emit is an
//! enqueue into a warm queue, never a drop. Delivered counts are printed at the end
//! so a reader can check that claim.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use usage_core::{async_trait, Batch, Event, ExportError, Exporter, Pipeline, RelayUsage, Text, UsageSink};

#[path = "emit/paced.rs"]
mod paced;
#[path = "emit/real.rs"]
mod real;
use real::RealValues;

/// Events per thread per timed burst; the queues hold at least two bursts.
const BURST: u64 = 10_000;
const QUEUE: usize = 50_000;

/// A host interns long-lived values once (provider address); short ones come from the request.
struct Source {
    provider: Text,
    provider_arc: Arc<str>,
}

impl Source {
    fn new() -> Self {
        let p = "lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y";
        Source {
            provider: Text::intern(p),
            provider_arc: Arc::from(p),
        }
    }

    #[inline]
    fn relay(&self, i: u64) -> RelayUsage {
        RelayUsage {
            project: Text::new("acme-prod"),
            chain: Text::new("ETH1"),
            api_interface: Text::new("jsonrpc"),
            api_method: Text::new("eth_getBlockByNumber"),
            cu: 10 + (i & 7),
            latency_ms: 42,
            success: true,
            cache_hit: i & 1 == 0,
            is_write: false,
            is_archive: false,
            is_batch: false,
            is_debug_trace: false,
            hedge_count: 0,
            provider: self.provider.clone(),
            origin: Text::new("https://app.acme.io"),
        }
    }

    #[inline]
    fn otel_emit<L: Logger>(&self, logger: &L, i: u64) {
        let mut r = logger.create_log_record();
        r.set_timestamp(std::time::SystemTime::now());
        r.set_body(AnyValue::from("relay_usage"));
        r.add_attribute("project", String::from("acme-prod"));
        r.add_attribute("chain", String::from("ETH1"));
        r.add_attribute("api_interface", String::from("jsonrpc"));
        r.add_attribute("api_method", String::from("eth_getBlockByNumber"));
        r.add_attribute("cu", (10 + (i & 7)) as i64);
        r.add_attribute("latency_ms", 42i64);
        r.add_attribute("success", true);
        r.add_attribute("cache_hit", i & 1 == 0);
        r.add_attribute("is_write", false);
        r.add_attribute("is_archive", false);
        r.add_attribute("is_batch", false);
        r.add_attribute("is_debug_trace", false);
        r.add_attribute("hedge_count", 0i64);
        r.add_attribute(
            "provider",
            AnyValue::from(opentelemetry::StringValue::from(self.provider_arc.clone())),
        );
        r.add_attribute("origin", String::from("https://app.acme.io"));
        logger.emit(r);
    }
}

struct Discard;

#[async_trait]
impl Exporter for Discard {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct OtelDiscard(Arc<std::sync::atomic::AtomicU64>);

impl LogExporter for OtelDiscard {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count() as u64;
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn usage_pipeline() -> Pipeline {
    Pipeline::builder()
        .configure(|c| {
            c.queue_capacity = QUEUE;
            c.service_name = "bench".into();
        })
        .exporter("discard", Discard)
        .build()
        .expect("pipeline")
}

fn otel_provider(exporter: OtelDiscard) -> SdkLoggerProvider {
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(QUEUE).build())
        .build();
    SdkLoggerProvider::builder().with_log_processor(processor).build()
}

/// Splits `iters` emits over `threads` threads and returns the time one emit costs
/// each thread (slowest thread's time x threads), so criterion's per-iteration
/// figure is the per-thread cost of one emit.
fn timed_threads(threads: usize, iters: u64, emit: Arc<dyn Fn(u64) + Send + Sync>) -> Duration {
    let per_thread = (iters / threads as u64).max(1);
    if threads == 1 {
        let start = Instant::now();
        for i in 0..per_thread {
            emit(i);
        }
        return start.elapsed();
    }
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (barrier, emit) = (barrier.clone(), emit.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..per_thread {
                    emit(i);
                }
                start.elapsed()
            })
        })
        .collect();
    let slowest = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .max()
        .unwrap_or_default();
    slowest * threads as u32
}

/// Emits `iters` events per thread-slot in timed bursts, calling `drain` (untimed) after each.
fn bursts(threads: usize, iters: u64, emit: &Arc<dyn Fn(u64) + Send + Sync>, drain: &dyn Fn()) -> Duration {
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(BURST * threads as u64);
        total += timed_threads(threads, n, emit.clone());
        drain();
        left -= n;
    }
    total
}

/// `usage` emitting `relay(i)` on `threads` threads; (id, emitted, dropped).
/// (Generic, so `relay` inlines into the timed closure as it would in a host.)
fn bench_usage(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    pipeline: &Pipeline,
    id: &str,
    threads: usize,
    relay: impl Fn(u64) -> RelayUsage + Send + Sync + 'static,
) -> (String, u64, u64) {
    let sink = pipeline.sink();
    let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |i| sink.emit(relay(i)));
    let before = pipeline.stats();
    let drain = || {
        while pipeline.stats().queued_events > 0 {
            std::thread::yield_now();
        }
    };
    g.bench_function(id, |b| b.iter_custom(|iters| bursts(threads, iters, &emit, &drain)));
    let after = pipeline.stats();
    (
        id.to_string(),
        after.emitted - before.emitted,
        after.dropped.total() - before.dropped.total(),
    )
}

fn bench_emit(c: &mut Criterion) {
    let src = Arc::new(Source::new());
    let sample = Event::new(src.relay(0));
    eprintln!(
        "queued relay_usage event: {} bytes (size_of::<Event>() = {}, heap = {})",
        sample.approx_bytes(),
        std::mem::size_of::<Event>(),
        sample.approx_bytes() - std::mem::size_of::<Event>()
    );

    let mut g = c.benchmark_group("emit");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));

    let pipeline = usage_pipeline();
    let mut drops = Vec::new();
    let real = Arc::new(RealValues::new());
    for threads in [1usize, 2] {
        let s = src.clone();
        let id = format!("usage/{threads}_thread");
        drops.push(bench_usage(&mut g, &pipeline, &id, threads, move |i| s.relay(i)));
    }
    for threads in [1usize, 2] {
        let r = real.clone();
        let id = format!("usage_real/{threads}_thread");
        drops.push(bench_usage(&mut g, &pipeline, &id, threads, move |i| r.relay(i)));
    }

    let noop = UsageSink::noop();
    g.bench_function("noop_sink", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            noop.emit_with(|| src.relay(black_box(i)));
        })
    });

    let otel_exporter = OtelDiscard::default();
    let provider = otel_provider(otel_exporter.clone());
    let otel_emitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for threads in [1usize, 2] {
        let logger = Arc::new(provider.logger("bench"));
        let (s, counter) = (src.clone(), otel_emitted.clone());
        let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |i| {
            s.otel_emit(logger.as_ref(), i);
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let drain = || {
            let _ = provider.force_flush();
        };
        g.bench_function(format!("otel_sdk_batch/{threads}_thread"), |b| {
            b.iter_custom(|iters| bursts(threads, iters, &emit, &drain))
        });
    }
    for threads in [1usize, 2] {
        let logger = Arc::new(provider.logger("bench"));
        let (r, counter) = (real.clone(), otel_emitted.clone());
        let emit: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |i| {
            r.otel_emit(logger.as_ref(), i);
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let drain = || {
            let _ = provider.force_flush();
        };
        g.bench_function(format!("otel_sdk_real/{threads}_thread"), |b| {
            b.iter_custom(|iters| bursts(threads, iters, &emit, &drain))
        });
    }
    g.finish();
    let _ = provider.force_flush();
    let delivered = otel_exporter.0.load(std::sync::atomic::Ordering::Relaxed);
    let emitted = otel_emitted.load(std::sync::atomic::Ordering::Relaxed);
    drops.push(("otel_sdk_batch".into(), emitted, emitted.saturating_sub(delivered)));

    // Paced, outside criterion (see paced.rs): the host's steady state.
    // `USAGE_EMIT_PACED=0` skips it (e.g. to profile one criterion case).
    let paced_threads: &[usize] = if std::env::var("USAGE_EMIT_PACED").as_deref() == Ok("0") {
        &[]
    } else {
        &[1, 2]
    };
    let mut paced_rows = Vec::new();
    for &threads in paced_threads {
        let sink = pipeline.sink();
        let r = real.clone();
        let before = pipeline.stats();
        let run = paced::run(threads, 2.0, Arc::new(move |i| sink.emit(r.relay(i))));
        let _ = pipeline.flush_blocking(Duration::from_secs(30));
        let after = pipeline.stats();
        let dropped = after.dropped.total() - before.dropped.total();
        paced_rows.push((format!("usage_real_paced_{threads}_thread"), run, dropped));
    }
    for &threads in paced_threads {
        let logger = Arc::new(provider.logger("bench"));
        let r = real.clone();
        let before = otel_exporter.0.load(std::sync::atomic::Ordering::Relaxed);
        let run = paced::run(threads, 2.0, Arc::new(move |i| r.otel_emit(logger.as_ref(), i)));
        let _ = provider.force_flush();
        let got = otel_exporter.0.load(std::sync::atomic::Ordering::Relaxed) - before;
        let dropped = run.emitted.saturating_sub(got);
        paced_rows.push((format!("otel_sdk_real_paced_{threads}_thread"), run, dropped));
    }
    let mut json = serde_json::Map::new();
    for (name, run, dropped) in &paced_rows {
        eprintln!(
            "paced {name}: {:.1} ns per emit, {} emitted at {} events/s per thread in groups of {}, {dropped} dropped",
            run.ns_per_emit,
            run.emitted,
            paced::RATE,
            paced::GROUP
        );
        json.insert(
            name.clone(),
            serde_json::json!({"ns_per_emit": run.ns_per_emit, "emitted": run.emitted, "dropped": dropped}),
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/emit_paced.json");
    let _ = std::fs::create_dir_all(out.parent().unwrap_or(std::path::Path::new(".")));
    if !paced_rows.is_empty() {
        let _ = std::fs::write(&out, serde_json::Value::Object(json).to_string());
    }

    for (name, emitted, dropped) in drops {
        eprintln!("{name}: emitted {emitted}, dropped {dropped} (drops would make emit look cheaper)");
    }
    let _ = provider.shutdown();
    let _ = pipeline.shutdown_blocking(Duration::from_secs(60));
}

criterion_group!(benches, bench_emit);
criterion_main!(benches);
