//! relay_usage events/s into an S3 server through the pipeline and the `s3`
//! exporter (gzip parts), and the compressed bytes each event costs on the store.
//!
//! Store: `USAGE_BENCH_S3=http://host:port` (keys `USAGE_BENCH_S3_KEY`/`_SECRET`), else
//! a moto server started from the venv `cargo xtask e2e` creates (target/e2e/venv).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::process::{Command, Stdio};
use std::time::Duration;
use usage_conformance::{e2e_tool, free_port, pump, varied_relay, Server};
use usage_core::{Pipeline, UsageConfig};

/// The store's endpoint, and the moto this bench started (stopped when dropped).
struct Store {
    endpoint: String,
    _server: Option<Server>,
}

fn store() -> Option<Store> {
    if let Ok(endpoint) = std::env::var("USAGE_BENCH_S3") {
        return Some(Store {
            endpoint,
            _server: None,
        });
    }
    let Some(bin) = e2e_tool("venv/bin/moto_server") else {
        eprintln!("no S3 store: set USAGE_BENCH_S3 or run `cargo xtask e2e` once to install moto");
        return None;
    };
    let port = free_port();
    let mut command = Command::new(bin);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server::start("moto", &mut command, port, Duration::from_secs(30))
        .map_err(|e| eprintln!("{e}"))
        .ok()?;
    Some(Store {
        endpoint: format!("http://127.0.0.1:{port}"),
        _server: Some(server),
    })
}

fn bench(c: &mut Criterion) {
    let Some(store) = store() else { return };
    let key = std::env::var("USAGE_BENCH_S3_KEY").unwrap_or_else(|_| "AKIABENCH".into());
    let secret = std::env::var("USAGE_BENCH_S3_SECRET").unwrap_or_else(|_| "secret".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(&key, &secret, None, None, "bench"))
            .endpoint_url(&store.endpoint)
            .force_path_style(true)
            .build(),
    );
    let _ = rt.block_on(client.create_bucket().bucket("usage-bench").send());
    usage_core::link_exporters!(usage_s3);
    let cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\nqueue_capacity = 200000\nservice_name = \"bench\"\n[exporters.s3]\ntype = \"s3\"\nbucket = \"usage-bench\"\n\
         endpoint = {:?}\naccess_key_id = {key:?}\nsecret_access_key = {secret:?}\nbatch_max_events = 100000\n",
        store.endpoint
    ))
    .expect("config");
    let pipeline = Pipeline::from_config(&cfg).expect("pipeline");
    const BLOCK: u64 = 100_000;
    let mut g = c.benchmark_group("s3_gzip_parts");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .throughput(Throughput::Elements(BLOCK));
    g.bench_function("pipeline", |b| {
        b.iter_custom(|iters| {
            pump(
                &pipeline,
                iters * BLOCK,
                150_000,
                Duration::from_secs(120),
                varied_relay,
            )
        })
    });
    g.finish();
    let exported = pipeline.stats().exporters[0].exported;
    let _ = pipeline.shutdown_blocking(Duration::from_secs(120));
    let bytes: i64 = rt.block_on(async {
        let mut total = 0;
        let mut token = None;
        loop {
            let Ok(page) = client
                .list_objects_v2()
                .bucket("usage-bench")
                .set_continuation_token(token)
                .send()
                .await
            else {
                return total;
            };
            total += page.contents().iter().map(|o| o.size().unwrap_or(0)).sum::<i64>();
            token = page.next_continuation_token().map(String::from);
            if token.is_none() {
                return total;
            }
        }
    });
    eprintln!(
        "s3: {exported} events in {bytes} stored bytes = {:.1} compressed bytes per event",
        bytes as f64 / exported.max(1) as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
