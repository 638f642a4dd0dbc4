//! `cargo xtask bench`: every figure of the comparison with the anchors, measured
//! side by side on this machine, median of several runs, written to
//! `target/bench/report.md` and `target/bench/report.json`.

use crate::bench_collector::collector_role;
use crate::e2e::{self, Backends};
use crate::services::{self, Service};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs per figure (the median is reported); `--quick` makes it 1.
static RUNS_CELL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

pub(crate) fn run_count() -> usize {
    *RUNS_CELL.get().unwrap_or(&3)
}
/// Events per end-to-end and collector run.
pub(crate) const EVENTS: u64 = 200_000;

/// Events per end-to-end run of exporter `name`. ClickHouse rows move 1M, so the
/// table's creation at the first insert does not weigh on the ratio to the anchor;
/// Kafka rows too, so the producer's start (metadata, connections) does not weigh
/// on a sustained rate (the goal is 500k events/s).
fn events_for(name: &str) -> u64 {
    if (name.starts_with("clickhouse") || name.starts_with("kafka")) && run_count() > 1 {
        1_000_000
    } else {
        EVENTS
    }
}

pub(crate) struct Bench {
    pub(crate) root: PathBuf,
    pub(crate) cargo: String,
    pub(crate) work: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) usage: PathBuf,
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The median of field `key` over runs.
pub(crate) fn med(runs: &[Value], key: &str) -> f64 {
    median(runs.iter().filter_map(|r| r[key].as_f64()).collect())
}

impl Bench {
    /// Runs `usage-bench` and parses its JSON line.
    pub(crate) fn tool(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(&self.bin)
            .args(args)
            .output()
            .map_err(|e| format!("usage-bench: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "usage-bench {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("usage-bench output: {e}"))
    }

    /// Criterion medians (ns per iteration) of `bench` over run_count() runs.
    pub(crate) fn criterion(&self, package: &str, bench: &str, ids: &[&str]) -> Result<Value, String> {
        let mut per_id: Vec<Vec<f64>> = vec![Vec::new(); ids.len()];
        // Figures a bench measures outside criterion (emit's paced runs), per run.
        let extra_path = self.root.join(format!("target/bench/{bench}_paced.json"));
        let mut extra: Vec<Value> = Vec::new();
        for run in 0..run_count() {
            eprintln!("==> criterion {bench}, run {}/{}", run + 1, run_count());
            let _ = std::fs::remove_file(&extra_path);
            services::run(
                &self.cargo,
                &["bench", "-p", package, "--bench", bench, "--", "--noplot"],
            )?;
            if let Ok(text) = std::fs::read_to_string(&extra_path) {
                extra.push(serde_json::from_str(&text).map_err(|e| e.to_string())?);
            }
            for (i, id) in ids.iter().enumerate() {
                let path = self
                    .root
                    .join(format!("target/criterion/{bench}/{id}/new/estimates.json"));
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                per_id[i].push(v["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN));
            }
        }
        let mut out = serde_json::Map::new();
        for (id, runs) in ids.iter().zip(per_id) {
            out.insert(
                (*id).into(),
                json!({ "median_ns": median(runs.clone()), "runs_ns": runs }),
            );
        }
        if let Some(first) = extra.first().and_then(Value::as_object) {
            let mut paced = serde_json::Map::new();
            for name in first.keys() {
                let runs: Vec<f64> = extra.iter().map(|r| f(&r[name]["ns_per_emit"])).collect();
                let dropped = extra.iter().map(|r| r[name]["dropped"].as_u64().unwrap_or(0)).max();
                paced.insert(
                    name.clone(),
                    json!({ "median_ns": median(runs.clone()), "runs_ns": runs, "max_dropped": dropped }),
                );
            }
            out.insert("paced".into(), Value::Object(paced));
        }
        Ok(Value::Object(out))
    }

    pub(crate) fn config(&self, name: &str, exporter: &str) -> Result<PathBuf, String> {
        let dir = self.work.join("configs");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.toml"));
        // Backpressure at ingest and room in the exporter's queue: the figure is
        // delivery throughput, so nothing may be dropped.
        let toml = format!(
            "[pipeline]\nservice_name = \"bench\"\ndata_dir = {:?}\nfull_policy = \"block_with_timeout\"\nblock_timeout = \"60s\"\n\
             [exporters.{name}]\nqueue_max_events = 100000000\nqueue_max_bytes = \"2GiB\"\n{exporter}",
            self.work.join("data").join(name).display().to_string()
        );
        std::fs::write(&path, toml).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

/// What tells one run's topic or table from another's: the run and this process.
fn run_tag(run: usize) -> String {
    format!("{run}_{}", std::process::id())
}

/// The table template of a ClickHouse row's run: named after the row, so the
/// anchor finds (and the bench drops) exactly that run's table.
fn clickhouse_table(row: &str, run_tag: &str) -> String {
    format!("{row}_{run_tag}_{{kind}}")
}

/// A ClickHouse row's exporter settings; `@RUN@` becomes the run's tag.
fn clickhouse_settings(row: &str, url: &str, extra: &str) -> String {
    format!(
        "type = \"clickhouse\"\nurl = {url:?}\ntable = \"{}\"\ncompression = \"none\"\n{extra}",
        clickhouse_table(row, "@RUN@")
    )
}

/// A minimal HTTP/1.0 request to 127.0.0.1 (bucket creation, ClickHouse queries).
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !(head.contains(" 200 ") || head.contains(" 201 ")) {
        return Err(format!("{method} {path}: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .unwrap_or("")
        .to_string();
    json!({ "cpu": model, "cores": cores, "memory": mem.trim_start_matches("MemTotal:").trim() })
}

fn version(cmd: &str, args: &[&str]) -> String {
    services::run(cmd, args)
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

pub fn run(root: &Path, cargo: &str, quick: bool) -> Result<(), String> {
    let _ = RUNS_CELL.set(if quick { 1 } else { 3 });
    let start = Instant::now();
    let out_dir = root.join("target/bench");
    let work = root.join("target/bench/work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let _ = ctrlc::set_handler(|| {
        services::kill_all();
        std::process::exit(130);
    });
    eprintln!("==> building release binaries");
    services::run(cargo, &["build", "--release", "-p", "usage-bench", "-p", "usage-cli"])?;
    let b = Bench {
        root: root.to_path_buf(),
        cargo: cargo.to_string(),
        work: work.clone(),
        bin: root.join("target/release/usage-bench"),
        usage: root.join("target/release/usage"),
    };

    // --quick: one run of everything, criterion benches skipped.
    let (emit, spool, encode) = if quick {
        (Value::Null, Value::Null, Value::Null)
    } else {
        criterion_figures(&b)?
    };

    // Backends, as for e2e (tansu advertising itself: no proxy here).
    let e2e_work = root.join("target/e2e");
    let mut backends = Backends::new();
    e2e::start_tansu(&e2e_work, &mut backends, false)?;
    e2e::start_moto(&e2e_work, &mut backends)?;
    e2e::start_clickhouse(&e2e_work, &mut backends)?;
    e2e::start_clickhouse_front(&e2e_work, &mut backends)?;
    e2e::find_rotel(&e2e_work, &mut backends)?;
    let result = measure_with_backends(&b, &backends);
    for s in &mut backends.services {
        s.stop();
    }
    for pattern in &backends.cleanup {
        let _ = Command::new("pkill").args(["-f", pattern]).status();
    }
    let (exporters, collector, overload, versions) = result?;

    let report = json!({
        "date": version("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "machine": machine(),
        "versions": versions,
        "runs_per_figure": run_count(),
        "events_per_run": EVENTS,
        "emit": emit,
        "spool": spool,
        "encode": encode,
        "exporters": exporters,
        "collector": collector,
        "overload": overload,
        "seconds": start.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(out_dir.join("report.json"), pretty).map_err(|e| e.to_string())?;
    let md = crate::bench_report::markdown(&report);
    std::fs::write(out_dir.join("report.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!(
        "==> wrote target/bench/report.md and report.json in {:.0}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rewrites `target/bench/report.md` from `target/bench/report.json` (after the
/// report's layout changed, without measuring again).
pub fn report_only(root: &Path) -> Result<(), String> {
    let json = root.join("target/bench/report.json");
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let report: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let md = crate::bench_report::markdown(&report);
    std::fs::write(root.join("target/bench/report.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    Ok(())
}

type Measured = (Value, Value, Value, Value);

fn criterion_figures(b: &Bench) -> Result<(Value, Value, Value), String> {
    let emit = b.criterion(
        "usage-core",
        "emit",
        &[
            "usage_1_thread",
            "usage_2_thread",
            "noop_sink",
            "otel_sdk_batch_1_thread",
            "otel_sdk_batch_2_thread",
            "usage_real_1_thread",
            "usage_real_2_thread",
            "otel_sdk_real_1_thread",
            "otel_sdk_real_2_thread",
        ],
    )?;
    let spool = b.criterion(
        "usage-core",
        "spool",
        &[
            "append_batch",
            "append_interval_100ms",
            "append_never",
            "recover_1M",
            "replay_200k_json",
        ],
    )?;
    let encode = b.criterion("usage-core", "encode", &["usage_json_line", "serde_json_line"])?;
    Ok((emit, spool, encode))
}

fn measure_with_backends(b: &Bench, backends: &Backends) -> Result<Measured, String> {
    let env = |k: &str| backends.env.get(k).cloned().ok_or_else(|| format!("{k} not set"));
    let brokers = env("USAGE_E2E_KAFKA_UPSTREAM")?;
    let moto = env("USAGE_E2E_MOTO")?;
    let clickhouse = env("USAGE_E2E_CLICKHOUSE_URL")?;
    let clickhouse_current = env("USAGE_E2E_CHDB_URL")?;
    let rotel_bin = env("USAGE_E2E_ROTEL_BIN")?;
    http(&moto, "PUT", "/bench", "")?;
    let versions = json!({
        "rustc": version("rustc", &["-V"]),
        "clickhouse": http(clickhouse.trim_start_matches("http://"), "POST", "/", "SELECT version()").map(|v| v.trim().to_string()).unwrap_or_default(),
        "clickhouse_current": http(clickhouse_current.trim_start_matches("http://"), "POST", "/", "SELECT version()").map(|v| format!("{} (chdb)", v.trim())).unwrap_or_default(),
        "rotel": version(&rotel_bin, &["--version"]),
        "tansu": version(&services::install_tansu(&b.root.join("target/e2e"))?.display().to_string(), &["--version"]),
        "opentelemetry_sdk": "0.33",
    });

    // A gateway for the http exporter (file behind it) and a rotel for the otlp one.
    let gw_port = services::free_port()?;
    let gw_config = b.work.join("gateway-file.toml");
    std::fs::write(
        &gw_config,
        format!(
            "[pipeline]\ndata_dir = {:?}\n[gateway]\nlisten = \"127.0.0.1:{gw_port}\"\nmax_events = 100000\n\
             [[gateway.keys]]\nkey = \"bench-key\"\n[exporters.files]\ntype = \"file\"\npath = {:?}\n",
            b.work.join("gw-data").display().to_string(),
            b.work.join("gw-files").display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut gateway = Service::spawn(
        "gateway-file",
        &b.work.join("run"),
        vec![
            b.usage.display().to_string(),
            "gateway".into(),
            "--config".into(),
            gw_config.display().to_string(),
        ],
    )?;
    services::wait_for_port(&mut gateway, gw_port, Duration::from_secs(30))?;
    let (rotel_http, rotel_grpc) = (services::free_port()?, services::free_port()?);
    let mut rotel = Service::spawn(
        "rotel-blackhole",
        &b.work.join("run"),
        vec![
            rotel_bin.clone(),
            "start".into(),
            "--otlp-grpc-endpoint".into(),
            format!("127.0.0.1:{rotel_grpc}"),
            "--otlp-http-endpoint".into(),
            format!("127.0.0.1:{rotel_http}"),
            "--exporter".into(),
            "blackhole".into(),
            "--pid-file".into(),
            b.work.join("run/rotel-blackhole.pid").display().to_string(),
        ],
    )?;
    services::wait_for_port(&mut rotel, rotel_http, Duration::from_secs(30))?;

    let exporters: Vec<(&str, String)> = vec![
        ("file", format!("type = \"file\"\npath = {:?}\n", b.work.join("files").display().to_string())),
        ("kafka", format!("type = \"kafka\"\nbrokers = {brokers:?}\ntopic = \"bench-@RUN@-{{kind}}\"\n")),
        (
            "kafka_packed",
            format!(
                "type = \"kafka\"\nbrokers = {brokers:?}\ntopic = \"benchp-@RUN@-{{kind}}\"\nevents_per_message = 1000\n"
            ),
        ),
        (
            "s3",
            format!(
                "type = \"s3\"\nbucket = \"bench\"\nendpoint = \"http://{moto}\"\naccess_key_id = \"bench\"\nsecret_access_key = \"bench\"\n"
            ),
        ),
        // Uncompressed, as the anchor posts them: the same bytes on both sides
        // (LZ4, the default, is for networks slower than loopback).
        ("clickhouse", clickhouse_settings("clickhouse", &clickhouse, "")),
        // Each batch's rows split into two INSERTs at once (the default sends one).
        (
            "clickhouse_split",
            clickhouse_settings("clickhouse_split", &clickhouse, "insert_concurrency = 2\n"),
        ),
        (
            "clickhouse_current",
            clickhouse_settings("clickhouse_current", &clickhouse_current, ""),
        ),
        (
            "http",
            format!("type = \"http\"\nurl = \"http://127.0.0.1:{gw_port}/v1/metrics\"\nkey = \"bench-key\"\n"),
        ),
        ("otlp", format!("type = \"otlp\"\nendpoint = \"http://127.0.0.1:{rotel_http}\"\n")),
    ];
    let mut per_exporter = serde_json::Map::new();
    for (name, settings) in &exporters {
        let mut runs = Vec::new();
        for run in 0..run_count() {
            // A fresh topic / table per run: the backend's state from earlier runs
            // (tansu keeps topics in memory) must not slow the later ones.
            let config = b.config(name, &settings.replace("@RUN@", &run_tag(run)))?;
            eprintln!("==> e2e {name}, run {}/{}", run + 1, run_count());
            let mut figures = b.tool(&[
                "e2e",
                "--config",
                &config.display().to_string(),
                "--events",
                &events_for(name).to_string(),
            ])?;
            // ClickHouse's anchor: the same rows re-inserted as RowBinary, straight.
            let server = match *name {
                "clickhouse" | "clickhouse_split" => Some(&clickhouse),
                "clickhouse_current" => Some(&clickhouse_current),
                _ => None,
            };
            if let Some(url) = server {
                let table = clickhouse_table(name, &run_tag(run)).replace("{kind}", "relay_usage");
                let anchor = b.tool(&["clickhouse-reinsert", "--url", url, "--table", &table])?;
                figures["anchor_events_per_second"] = anchor["events_per_second"].clone();
                figures["anchor"] = anchor;
                // Dropped once measured: the server would go on merging their parts
                // in the background, on the cores the next runs measure.
                for t in [table.clone(), format!("{table}_anchor")] {
                    let drop = format!("DROP TABLE IF EXISTS default.{t}");
                    if let Err(e) = http(url.trim_start_matches("http://"), "POST", "/", &drop) {
                        eprintln!("==> warning: {drop}: {e}");
                    }
                }
            }
            runs.push(figures);
        }
        let mut entry = json!({
            "events_per_second": med(&runs, "events_per_second"),
            "cpu_seconds_per_million": med(&runs, "cpu_seconds_per_million"),
        });
        if runs.iter().any(|r| r["anchor_events_per_second"].is_number()) {
            entry["anchor_events_per_second"] = json!(med(&runs, "anchor_events_per_second"));
        }
        entry["runs"] = json!(runs);
        per_exporter.insert((*name).into(), entry);
    }
    gateway.stop();
    rotel.stop();

    let collector = collector_role(b, &rotel_bin)?;

    let mut overload_runs = Vec::new();
    for run in 0..run_count() {
        eprintln!("==> overload, run {}/{}", run + 1, run_count());
        overload_runs.push(b.tool(&[
            "overload",
            "--events",
            "2000000",
            "--queue-bytes",
            &(64u64 << 20).to_string(),
        ])?);
    }
    let overload = json!({
        "growth_kib": med(&overload_runs, "growth_kib"),
        "bound_bytes": overload_runs.first().map_or(Value::Null, |r| r["bound_bytes"].clone()),
        "runs": overload_runs,
    });
    Ok((Value::Object(per_exporter), collector, overload, versions))
}
