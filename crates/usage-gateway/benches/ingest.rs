//! Gateway ingest events/s: 4 concurrent clients POST gzip batches of 1,000
//! `relay_usage` events to `/v1/metrics`; each 202 means the batch is committed
//! to the gateway's spool (fsync per group commit), which forwards to a `file`
//! exporter. Reported: events/s accepted, and that every event arrived.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::write::GzEncoder;
use std::io::Write;
use std::time::{Duration, Instant};
use usage_core::{json, Event, Resource, UsageConfig};
use usage_gateway::Gateway;

const BATCH: usize = 1_000;
const CLIENTS: usize = 4;

fn body() -> Vec<u8> {
    let mut raw = b"{\"events\":[".to_vec();
    for i in 0..BATCH {
        if i > 0 {
            raw.push(b',');
        }
        let e = Event::new(usage_conformance::bench_relay(i as u64));
        json::write_event(&mut raw, &e, &Resource::new("bench"));
    }
    raw.extend_from_slice(b"]}");
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    gz.finish().expect("gzip")
}

fn bench(c: &mut Criterion) {
    usage_core::link_exporters!(usage_file);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\nqueue_capacity = 200000\ndata_dir = \"{d}/data\"\n[spool]\npath = \"{d}/spool\"\n\
         [gateway]\n[[gateway.keys]]\nkey = \"bench\"\n[exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n"
    ))
    .expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let (url, gw) = rt.block_on(async {
        let gw = Gateway::new(&cfg).expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/metrics", listener.local_addr().expect("addr"));
        let app = usage_gateway::router(gw.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, gw)
    });
    let body: std::sync::Arc<Vec<u8>> = std::sync::Arc::new(body());
    let client = reqwest::Client::new();
    let mut g = c.benchmark_group("gateway_ingest");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements((BATCH * CLIENTS) as u64));
    g.bench_function("v1_metrics_spool_batch_fsync", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|_| {
                        let (client, url, body) = (client.clone(), url.clone(), body.clone());
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                let r = client
                                    .post(&url)
                                    .header("authorization", "Bearer bench")
                                    .header("content-encoding", "gzip")
                                    .body(body.as_ref().clone())
                                    .send()
                                    .await
                                    .expect("request");
                                assert_eq!(r.status().as_u16(), 202);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("client");
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    let stats = rt.block_on(async {
        let _ = gw.pipeline().flush(Duration::from_secs(120)).await;
        gw.pipeline().stats()
    });
    eprintln!(
        "gateway: {} events accepted, {} written by the file exporter, {} dropped",
        stats.accepted,
        stats.exporters[0].exported,
        stats.dropped.total()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
