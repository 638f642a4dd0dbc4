//! The collector comparison of `cargo xtask bench`: the same OTLP/HTTP load into
//! `usage gateway` and rotel, each into Kafka, counted back from the broker.

use crate::bench::{med, run_count, Bench};
use crate::e2e::{self, Backends};
use crate::services::{self, Service};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Records per collector run: 1M, as operators compare collectors (200k with `--quick`).
pub(crate) fn collector_events() -> u64 {
    if run_count() == 1 {
        200_000
    } else {
        1_000_000
    }
}

/// The same OTLP/HTTP load into (a) `usage gateway` -> Kafka, one message per event,
/// (b) the same packed 1,000 events per message by partition, keyed by project (500
/// of them), and (c) rotel's kafka exporter; what arrived is consumed back and counted.
pub(crate) fn collector_role(b: &Bench, rotel_bin: &str) -> Result<Value, String> {
    const TARGETS: [&str; 4] = ["usage_gateway", "usage_gateway_bare", "usage_gateway_packed", "rotel"];
    let mut runs: Vec<Vec<Value>> = vec![Vec::new(); TARGETS.len()];
    // Interleaved (each round runs every collector once): this VM's speed drifts
    // over minutes, and three runs of one collector in a row would give it one
    // stretch of the drift and the next collector another.
    for run in 0..run_count() {
        for (target, target_runs) in TARGETS.iter().zip(runs.iter_mut()) {
            eprintln!("==> collector {target}, run {}/{}", run + 1, run_count());
            // A fresh broker per run: tansu keeps everything in memory and slows as it
            // fills, which would favour whichever collector runs first.
            let mut broker = Backends::new();
            e2e::start_tansu(&b.root.join("target/e2e"), &mut broker, false)?;
            let outcome = match broker.env.get("USAGE_E2E_KAFKA_UPSTREAM") {
                Some(brokers) => collector_run(b, target, run, brokers, rotel_bin),
                None => Err("tansu started without an address".to_string()),
            };
            for s in &mut broker.services {
                s.stop();
            }
            target_runs.push(outcome?);
        }
    }
    let mut results = serde_json::Map::new();
    for (target, runs) in TARGETS.iter().zip(runs) {
        results.insert(
            (*target).into(),
            json!({
                "events_per_second": med(&runs, "events_per_second"),
                "events_per_cpu_second": med(&runs, "events_per_cpu_second"),
                "cpu_seconds_per_million": med(&runs, "cpu_seconds_per_million"),
                "peak_rss_kib": med(&runs, "peak_rss_kib"),
                "lost": runs.iter().map(|r| r["lost"].as_u64().unwrap_or(0)).sum::<u64>(),
                "runs": runs,
            }),
        );
    }
    results.insert("events_per_run".into(), json!(collector_events()));
    Ok(Value::Object(results))
}

/// One collector run against `brokers`: load, count what arrived, the process's CPU.
fn collector_run(b: &Bench, target: &str, run: usize, brokers: &str, rotel_bin: &str) -> Result<Value, String> {
    let topic = format!("coll-{target}-{run}-{}", std::process::id());
    let port = services::free_port()?;
    let dir = b.work.join("run").join(&topic);
    let (mut service, url, headers, count_topic, format) = if target != "rotel" {
        // Packed: NDJSON messages of 1,000 events, as rotel sends one message per OTLP
        // batch; keyed by project (500 of them), so packed per partition.
        let packing = match target {
            "usage_gateway_packed" => "events_per_message = 1000\nkey = \"project\"\npack_by = \"partition\"\n",
            // Messages like rotel's, without headers: the id is the key and in the value.
            "usage_gateway_bare" => "headers = []\n",
            _ => "",
        };
        let config = dir.join("gateway.toml");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(
            &config,
            format!(
                "[pipeline]\ndata_dir = {d:?}\n[spool]\npath = {s:?}\n\
                 [gateway]\nlisten = \"127.0.0.1:{port}\"\nmax_events = 100000\n[[gateway.keys]]\nkey = \"bench-key\"\n\
                 [exporters.kafka]\ntype = \"kafka\"\nbrokers = {brokers:?}\ntopic = \"{topic}.{{kind}}\"\ncompression = \"none\"\n{packing}",
                d = dir.join("data").display().to_string(),
                s = dir.join("spool").display().to_string(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let s = Service::spawn(
            "gateway",
            &dir,
            vec![
                b.usage.display().to_string(),
                "gateway".into(),
                "--config".into(),
                config.display().to_string(),
            ],
        )?;
        (
            s,
            format!("http://127.0.0.1:{port}/v1/logs"),
            vec!["--header", "authorization=Bearer bench-key"],
            format!("{topic}.relay_usage"),
            if target == "usage_gateway_bare" {
                "keys"
            } else {
                "events"
            },
        )
    } else {
        let grpc = services::free_port()?;
        let s = Service::spawn(
            "rotel",
            &dir,
            vec![
                rotel_bin.to_string(),
                "start".into(),
                "--otlp-grpc-endpoint".into(),
                format!("127.0.0.1:{grpc}"),
                "--otlp-http-endpoint".into(),
                format!("127.0.0.1:{port}"),
                "--exporter".into(),
                "kafka".into(),
                "--kafka-exporter-brokers".into(),
                brokers.to_string(),
                "--kafka-exporter-logs-topic".into(),
                topic.clone(),
                "--kafka-exporter-acks".into(),
                "all".into(),
                // Its default (8192 records) makes messages over the broker's 1 MB
                // limit, and every one is dropped: batch like the load does.
                "--logs-batch-max-size".into(),
                "1000".into(),
                "--pid-file".into(),
                dir.join("rotel.pid").display().to_string(),
            ],
        )?;
        (
            s,
            format!("http://127.0.0.1:{port}/v1/logs"),
            vec![],
            topic.clone(),
            "otlp",
        )
    };
    services::wait_for_port(&mut service, port, Duration::from_secs(30))?;
    let pid = service.pid().ok_or("no pid")?.to_string();
    let before = b.tool(&["proc", "--pid", &pid])?;
    let t0 = Instant::now();
    let events = collector_events();
    let n = events.to_string();
    let mut args = vec![
        "otlp-load",
        "--url",
        &url,
        "--events",
        &n,
        "--batch",
        "1000",
        "--concurrency",
        "4",
    ];
    args.extend(headers.iter().copied());
    let load = b.tool(&args)?;
    let count = b.tool(&[
        "kafka-count",
        "--brokers",
        brokers,
        "--topic",
        &count_topic,
        "--format",
        format,
        "--expect",
        &n,
        "--timeout-secs",
        "120",
    ])?;
    let seconds = t0.elapsed().as_secs_f64();
    let after = b.tool(&["proc", "--pid", &pid])?;
    service.stop();
    let cpu = after["cpu_seconds"].as_f64().unwrap_or(0.0) - before["cpu_seconds"].as_f64().unwrap_or(0.0);
    let arrived = count["unique"].as_u64().unwrap_or(0);
    Ok(json!({
        "sent": events,
        "arrived": arrived,
        "lost": events.saturating_sub(arrived),
        "seconds": seconds,
        "events_per_second": arrived as f64 / seconds,
        "cpu_seconds": cpu,
        "events_per_cpu_second": arrived as f64 / cpu.max(1e-9),
        "cpu_seconds_per_million": cpu * 1e6 / arrived.max(1) as f64,
        "peak_rss_kib": after["peak_rss_kib"],
        "load": load,
        "count": count,
    }))
}
