//! relay_usage events/s into an S3 server through the pipeline and the `s3`
//! exporter (gzip parts), and the compressed bytes each event costs on the store.
//!
//! Store: `USAGE_BENCH_S3=http://host:port` (keys `USAGE_BENCH_S3_KEY`/`_SECRET`), else
//! a moto server started from the venv `cargo xtask e2e` creates (target/e2e/venv).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use usage_core::{Pipeline, RelayUsage, Text, UsageConfig};

struct Store {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn store() -> Option<Store> {
    if let Ok(endpoint) = std::env::var("USAGE_BENCH_S3") {
        return Some(Store { endpoint, child: None });
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e/venv/bin/moto_server");
    if !bin.exists() {
        eprintln!("no S3 store: set USAGE_BENCH_S3 or run `cargo xtask e2e` once to install moto");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Store {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    })
}

fn relay(i: u64) -> RelayUsage {
    RelayUsage {
        project: Text::new_static(["acme", "globex", "initech"][(i % 3) as usize]),
        chain: Text::new_static("ETH1"),
        api_interface: Text::new_static("jsonrpc"),
        api_method: Text::new_static("eth_getBlockByNumber"),
        cu: 10 + (i & 7),
        latency_ms: 20 + (i % 200),
        success: !i.is_multiple_of(50),
        cache_hit: i.is_multiple_of(4),
        provider: Text::new_static("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"),
        origin: Text::new_static("https://app.acme.io"),
        ..Default::default()
    }
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
            let n = iters * BLOCK;
            let sink = pipeline.sink();
            let base = pipeline.stats().exporters[0].exported;
            let start = Instant::now();
            let mut i = 0;
            while i < n {
                for _ in 0..1000 {
                    sink.emit(relay(i));
                    i += 1;
                }
                while {
                    let s = pipeline.stats();
                    s.queued_events + s.exporters[0].queued_events > 150_000
                } {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let _ = pipeline.flush_blocking(Duration::from_secs(300));
            assert!(pipeline.stats().exporters[0].exported >= base + n);
            start.elapsed()
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
