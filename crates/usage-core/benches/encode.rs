//! The JSON line every file, S3, Kafka and HTTP export writes, side by side in one run:
//! (a) `usage_core::json::write_event` of a 15-field `relay_usage` with Lava's real
//!     values (500 32-char projects, 44-char providers, origins);
//! (b) the anchor: the same object through `serde_json` from a `#[derive(Serialize)]`
//!     struct, as a service would write it (id and time rendered into a reused buffer
//!     first, so neither side allocates per event).
//!
//! Both produce the same bytes (checked before timing); each iteration is one event.

use criterion::{criterion_group, criterion_main, Criterion};
use serde::Serialize;
use std::hint::black_box;
use usage_core::{json, Event, RelayUsage, Resource};

// The emit bench's events (its OpenTelemetry half goes unused here).
#[allow(dead_code)]
#[path = "emit/real.rs"]
mod real;
use real::RealValues;

/// Events encoded in turn (their strings differ, as a batch's do).
const EVENTS: usize = 1000;

fn events() -> Vec<Event> {
    let values = RealValues::new();
    (0..EVENTS as u64).map(|i| Event::new(values.relay(i))).collect()
}

/// The line as a serde user writes it: the same keys in the same order.
#[derive(Serialize)]
struct RelayLine<'a> {
    id: &'a str,
    ts: &'a str,
    kind: &'a str,
    project: &'a str,
    chain: &'a str,
    api_interface: &'a str,
    api_method: &'a str,
    cu: u64,
    latency_ms: u64,
    success: bool,
    cache_hit: bool,
    is_write: bool,
    is_archive: bool,
    is_batch: bool,
    is_debug_trace: bool,
    hedge_count: u32,
    provider: &'a str,
    origin: &'a str,
    service_name: &'a str,
    service_instance_id: &'a str,
}

/// Appends `event` as serde_json writes it; `scratch` holds its id and time.
fn serde_line(out: &mut Vec<u8>, scratch: &mut Vec<u8>, event: &Event, resource: &Resource) {
    let Some(r) = event.downcast_ref::<RelayUsage>() else {
        return;
    };
    scratch.clear();
    event.id().write_str(scratch);
    let id_end = scratch.len();
    event.ts().write_rfc3339(scratch);
    let (id, ts) = scratch.split_at(id_end);
    let line = RelayLine {
        id: std::str::from_utf8(id).unwrap_or_default(),
        ts: std::str::from_utf8(ts).unwrap_or_default(),
        kind: event.kind(),
        project: &r.project,
        chain: &r.chain,
        api_interface: &r.api_interface,
        api_method: &r.api_method,
        cu: r.cu,
        latency_ms: r.latency_ms,
        success: r.success,
        cache_hit: r.cache_hit,
        is_write: r.is_write,
        is_archive: r.is_archive,
        is_batch: r.is_batch,
        is_debug_trace: r.is_debug_trace,
        hedge_count: r.hedge_count,
        provider: &r.provider,
        origin: &r.origin,
        service_name: &resource.service_name,
        service_instance_id: &resource.service_instance_id,
    };
    if serde_json::to_writer(&mut *out, &line).is_ok() {
        out.push(b'\n');
    }
}

fn bench_encode(c: &mut Criterion) {
    let events = events();
    let resource = Resource::new("relay").with_instance_id("host-1");
    let (mut ours, mut theirs, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    for e in &events {
        json::write_event(&mut ours, e, &resource);
        ours.push(b'\n');
        serde_line(&mut theirs, &mut scratch, e, &resource);
    }
    assert_eq!(ours, theirs, "both sides must write the same lines");

    let mut g = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0;
    g.bench_function("usage_json_line", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            json::write_event(&mut out, black_box(&events[i % EVENTS]), &resource);
            out.push(b'\n');
            i += 1;
        })
    });
    g.bench_function("serde_json_line", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 1024 {
                out.clear();
            }
            serde_line(&mut out, &mut scratch, black_box(&events[i % EVENTS]), &resource);
            i += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
