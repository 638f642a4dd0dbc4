//! relay_usage rows/s into ClickHouse, in one run:
//! - `pipeline`: emit -> pipeline -> clickhouse exporter (RowBinary + LZ4) until acknowledged;
//! - `raw_insert`: the anchor, the same rows encoded once and inserted straight
//!   through the `clickhouse` crate, to show what the pipeline costs.
//!
//! Server: `USAGE_BENCH_CLICKHOUSE=http://host:port`, else Debian's clickhouse-server
//! started with a private config (as `cargo xtask e2e` does).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use usage_core::{Pipeline, RelayUsage, Text, UsageConfig};

struct Server {
    url: String,
    child: Option<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server() -> Option<Server> {
    if let Ok(url) = std::env::var("USAGE_BENCH_CLICKHOUSE") {
        return Some(Server { url, child: None });
    }
    let bin = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = std::env::temp_dir().join(format!("usage-bench-ch-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    };
    let (tcp, inter) = (free()?, free()?);
    std::fs::create_dir_all(dir.join("data")).ok()?;
    let d = dir.display().to_string();
    let xml = std::fs::read_to_string("/etc/clickhouse-server/config.xml")
        .ok()?
        .replace("/var/lib/clickhouse/", &format!("{d}/data/"))
        .replace("/var/log/clickhouse-server/", &format!("{d}/log/"))
        .replace("<listen_host>::1</listen_host>", "")
        .replace("<http_port>8123</http_port>", &format!("<http_port>{port}</http_port>"))
        .replace("<tcp_port>9000</tcp_port>", &format!("<tcp_port>{tcp}</tcp_port>"))
        .replace(
            "<interserver_http_port>9009</interserver_http_port>",
            &format!("<interserver_http_port>{inter}</interserver_http_port>"),
        );
    std::fs::write(dir.join("config.xml"), xml).ok()?;
    std::fs::copy("/etc/clickhouse-server/users.xml", dir.join("users.xml")).ok()?;
    let child = Command::new(bin)
        .arg(format!("--config-file={d}/config.xml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Some(Server {
        url: format!("http://127.0.0.1:{port}"),
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
    let Some(server) = server() else {
        eprintln!("no ClickHouse: set USAGE_BENCH_CLICKHOUSE or install clickhouse-server");
        return;
    };
    usage_core::link_exporters!(usage_clickhouse);
    let cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\nqueue_capacity = 400000\nservice_name = \"bench\"\n[exporters.ch]\ntype = \"clickhouse\"\nurl = {:?}\ntable = \"bench_{{kind}}\"\n",
        server.url
    ))
    .expect("config");
    let pipeline = Pipeline::from_config(&cfg).expect("pipeline");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let client = clickhouse::Client::default()
        .with_url(&server.url)
        .with_validation(false);
    const BLOCK: u64 = 200_000;
    let mut g = c.benchmark_group("clickhouse_rowbinary_lz4");
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
                    s.queued_events + s.exporters[0].queued_events > 300_000
                } {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let _ = pipeline.flush_blocking(Duration::from_secs(300));
            assert!(
                pipeline.stats().exporters[0].exported >= base + n,
                "all rows acknowledged"
            );
            start.elapsed()
        })
    });
    // The anchor: the same rows, encoded once by the pipeline's table, re-inserted raw.
    let columns = "id, ts, ts_us, project, chain, api_interface, api_method, cu, latency_ms, success, cache_hit, \
                   is_write, is_archive, is_batch, is_debug_trace, hedge_count, provider, origin, service_name, service_instance_id";
    let version: String = rt
        .block_on(client.query("SELECT version()").fetch_one())
        .unwrap_or_default();
    let legacy = usage_clickhouse::ddl::Flavor::from_version(&version) == usage_clickhouse::ddl::Flavor::Legacy;
    let columns = if legacy {
        columns.to_string()
    } else {
        columns.replace("ts_us, ", "")
    };
    let rows: bytes::Bytes = rt
        .block_on(async {
            client
                .query("CREATE TABLE IF NOT EXISTS bench_raw AS bench_relay_usage")
                .execute()
                .await?;
            let mut cursor = client
                .query(&format!("SELECT {columns} FROM bench_relay_usage LIMIT {BLOCK}"))
                .fetch_bytes("RowBinary")?;
            cursor.collect().await
        })
        .expect("rows to re-insert");
    g.bench_function("raw_insert", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(async {
                    let mut ins =
                        client.insert_formatted_with(format!("INSERT INTO bench_raw ({columns}) FORMAT RowBinary"));
                    ins.send(rows.clone()).await.expect("send");
                    ins.end().await.expect("end");
                });
            }
            start.elapsed()
        })
    });
    g.finish();
    let _ = pipeline.shutdown_blocking(Duration::from_secs(60));
    let _ = &server;
}

criterion_group!(benches, bench);
criterion_main!(benches);
