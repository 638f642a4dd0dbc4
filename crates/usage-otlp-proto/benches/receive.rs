//! Receiving OTLP/HTTP logs: 1,000 `relay_usage` records (as the `otlp` exporter
//! writes them) into events, read in place (`events_from_body`) against the
//! anchor, prost's owned decode followed by the same mapping. `in_place_derived_ids`
//! is the same body without `event.id` attributes, as OTel SDKs send it: each id is
//! derived from the record's bytes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use usage_core::{Event, Resource};
use usage_otlp_proto::proto::request;
use usage_otlp_proto::receive::{decode_request, events_from_body, events_from_request, ReceiveOptions};

const RECORDS: usize = 1_000;

fn body() -> Vec<u8> {
    let events: Vec<Event> = (0..RECORDS)
        .map(|i| Event::new(usage_conformance::bench_relay(i as u64)))
        .collect();
    request(&Resource::new("bench"), &events).encode_to_vec()
}

/// The same request as SDKs send it: no `event.id` attribute.
fn body_without_ids() -> Vec<u8> {
    let events: Vec<Event> = (0..RECORDS)
        .map(|i| Event::new(usage_conformance::bench_relay(i as u64)))
        .collect();
    let mut req = request(&Resource::new("bench"), &events);
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for lr in &mut sl.log_records {
                lr.attributes.retain(|kv| kv.key != usage_otlp_proto::ID_ATTRIBUTE);
            }
        }
    }
    req.encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let body = body();
    let without_ids = body_without_ids();
    let opts = ReceiveOptions::default();
    let mut g = c.benchmark_group("otlp_receive_1000_records");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("in_place", |b| {
        b.iter(|| events_from_body(&body, false, &opts).map(|v| v.events.len()))
    });
    g.bench_function("in_place_derived_ids", |b| {
        b.iter(|| events_from_body(&without_ids, false, &opts).map(|v| v.events.len()))
    });
    g.bench_function("prost_decode_anchor", |b| {
        b.iter(|| {
            decode_request(&body, false)
                .and_then(|r| events_from_request(&r, &opts))
                .map(|v| v.events.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
