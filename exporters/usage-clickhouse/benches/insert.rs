//! relay_usage rows/s into ClickHouse, in one run:
//! - `pipeline`: emit -> pipeline -> clickhouse exporter (RowBinary + LZ4) until acknowledged;
//! - `raw_insert`: the anchor, the same rows encoded once and inserted straight
//!   through the `clickhouse` crate, to show what the pipeline costs.
//!
//! Server: `USAGE_BENCH_CLICKHOUSE=http://host:port`, else Debian's clickhouse-server
//! started with a private config (as `cargo xtask e2e` does).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use usage_conformance::{free_port, pump, varied_relay, Server};
use usage_core::{Pipeline, UsageConfig};

/// The server's URL, and the clickhouse-server this bench started (stopped when dropped).
struct ClickHouse {
    url: String,
    _server: Option<Server>,
}

fn server() -> Option<ClickHouse> {
    if let Ok(url) = std::env::var("USAGE_BENCH_CLICKHOUSE") {
        return Some(ClickHouse { url, _server: None });
    }
    let bin = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = std::env::temp_dir().join(format!("usage-bench-ch-{}", std::process::id()));
    let (port, tcp, inter) = (free_port(), free_port(), free_port());
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
    let mut command = Command::new(bin);
    command
        .arg(format!("--config-file={d}/config.xml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server::start("clickhouse-server", &mut command, port, Duration::from_secs(30))
        .map_err(|e| eprintln!("{e}"))
        .ok()?;
    Some(ClickHouse {
        url: format!("http://127.0.0.1:{port}"),
        _server: Some(server),
    })
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
            pump(
                &pipeline,
                iters * BLOCK,
                300_000,
                Duration::from_secs(120),
                varied_relay,
            )
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
