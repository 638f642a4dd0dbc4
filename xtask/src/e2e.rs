//! `cargo xtask e2e`: real backends as local processes, every exporter's conformance
//! suite against them, and a table of what arrived.

use crate::services::{self, Service};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Backends the conformance tests talk to, and the env vars that point them there.
pub struct Backends {
    pub services: Vec<Service>,
    pub env: BTreeMap<String, String>,
    /// Command-line fragments of processes the tests may have restarted themselves
    /// (`pkill -f` them at the end).
    pub cleanup: Vec<String>,
}

impl Backends {
    pub(crate) fn new() -> Self {
        Backends {
            services: Vec::new(),
            env: BTreeMap::new(),
            cleanup: Vec::new(),
        }
    }
}

fn start_local(work: &Path) -> Result<Backends, String> {
    let mut b = Backends::new();
    start_tansu(work, &mut b, true)?;
    crate::e2e_secured::start(work, &mut b)?;
    start_moto(work, &mut b)?;
    crate::e2e_s3::start(work, &mut b)?;
    find_s3s(&mut b)?;
    start_clickhouse(work, &mut b)?;
    start_clickhouse_front(work, &mut b)?;
    find_rotel(work, &mut b)?;
    install_otel_sdk(work, &mut b)?;
    Ok(b)
}

/// The Python OpenTelemetry SDK (PyPI, in the shared venv) and Node's (npm, in
/// `work/node`): the producers' interop suite sends Lava's records with both. Pinned
/// to the versions the suite was written against. Also confluent-kafka, a Kafka
/// client we did not write, for the envelope read-back.
pub(crate) fn install_otel_sdk(work: &Path, b: &mut Backends) -> Result<(), String> {
    let venv = services::venv(work)?;
    let python = services::pip_install_module(
        &venv,
        "opentelemetry.exporter.otlp.proto.http._log_exporter",
        &[
            "opentelemetry-sdk==1.45.2",
            "opentelemetry-exporter-otlp-proto-http==1.45.2",
        ],
    )?;
    b.env.insert("USAGE_E2E_PYTHON".into(), python.display().to_string());
    // The same SDK's gRPC exporter (grpcio wheels), for the OTLP/gRPC row.
    services::pip_install_module(
        &venv,
        "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
        &["opentelemetry-exporter-otlp-proto-grpc==1.45.2"],
    )?;
    // confluent-kafka (its own librdkafka build) reads the Kafka exporter's
    // stream_trace envelope back as Daydream's consumers would.
    services::pip_install_module(&venv, "confluent_kafka", &["confluent-kafka==2.12.1"])?;
    let node = services::npm_install(
        &work.join("node"),
        &[
            "@opentelemetry/sdk-logs@0.223.1",
            "@opentelemetry/exporter-logs-otlp-http@0.223.1",
            "@opentelemetry/resources@2.12.1",
            "@opentelemetry/api-logs@0.223.1",
        ],
    )?;
    b.env.insert("USAGE_E2E_NODE_DIR".into(), node.display().to_string());
    Ok(())
}

/// rotel (pip wheel with the `rotel-agent` binary): the OTLP conformance test starts
/// and restarts its own instance per run, so it only needs the binary.
pub(crate) fn find_rotel(work: &Path, b: &mut Backends) -> Result<(), String> {
    let bin = services::install_rotel(work)?;
    eprintln!("==> rotel-agent at {}", bin.display());
    b.env.insert("USAGE_E2E_ROTEL_BIN".into(), bin.display().to_string());
    // Its instances live in the test's scratch dir under `work`.
    b.cleanup.push(format!("{}/conformance-otlp", work.display()));
    Ok(())
}

/// Debian's clickhouse-server with a private config. The conformance test kills and
/// restarts it (it persists to disk), so it gets the pid, binary and config path.
pub(crate) fn start_clickhouse(work: &Path, b: &mut Backends) -> Result<(), String> {
    let bin = services::install_clickhouse()?;
    let (http, tcp, inter) = (services::free_port()?, services::free_port()?, services::free_port()?);
    let dir = work.join("run/clickhouse");
    let config = services::clickhouse_config(&dir, http, tcp, inter)?;
    let mut s = Service::spawn(
        "clickhouse",
        &dir,
        vec![bin.display().to_string(), format!("--config-file={}", config.display())],
    )?;
    services::wait_for_http(&mut s, http, "/ping", std::time::Duration::from_secs(60))?;
    eprintln!("==> clickhouse on 127.0.0.1:{http}, pid {:?}", s.pid());
    b.env
        .insert("USAGE_E2E_CLICKHOUSE_URL".into(), format!("http://127.0.0.1:{http}"));
    b.env
        .insert("USAGE_E2E_CLICKHOUSE_CONFIG".into(), config.display().to_string());
    b.env
        .insert("USAGE_E2E_CLICKHOUSE_BIN".into(), bin.display().to_string());
    if let Some(pid) = s.pid() {
        b.env.insert("USAGE_E2E_CLICKHOUSE_PID".into(), pid.to_string());
    }
    b.cleanup.push(config.display().to_string());
    b.services.push(s);
    Ok(())
}

/// A current ClickHouse engine: chDB (ClickHouse 26.x in-process, PyPI) behind our
/// HTTP front, `xtask/clickhouse_front.py`. The HTTP layer is ours; every statement,
/// RowBinary insert and dedup token is handled by ClickHouse's engine.
pub(crate) fn start_clickhouse_front(work: &Path, b: &mut Backends) -> Result<(), String> {
    let venv = services::venv(work)?;
    let python = services::pip_install_module(
        &venv,
        "chdb, lz4.block",
        &["chdb==4.4.0", "chdb-core==26.9.0", "lz4==4.4.5"],
    )?;
    let port = services::free_port()?;
    let dir = work.join("run/chdb");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clickhouse_front.py");
    let command = vec![
        python.display().to_string(),
        script.display().to_string(),
        port.to_string(),
        dir.join("data").display().to_string(),
    ];
    let mut s = Service::spawn("clickhouse-front", &dir, command.clone())?;
    services::wait_for_http(&mut s, port, "/ping", std::time::Duration::from_secs(60))?;
    eprintln!(
        "==> clickhouse 26 (chdb, our HTTP front) on 127.0.0.1:{port}, pid {:?}",
        s.pid()
    );
    b.env
        .insert("USAGE_E2E_CHDB_URL".into(), format!("http://127.0.0.1:{port}"));
    b.env.insert(
        "USAGE_E2E_CHDB_CMD".into(),
        serde_json::to_string(&command).map_err(|e| e.to_string())?,
    );
    if let Some(pid) = s.pid() {
        b.env.insert("USAGE_E2E_CHDB_PID".into(), pid.to_string());
    }
    b.cleanup.push(dir.join("data").display().to_string());
    b.services.push(s);
    Ok(())
}

/// moto's S3 server (pip, in a private venv).
pub(crate) fn start_moto(work: &Path, b: &mut Backends) -> Result<(), String> {
    let venv = services::venv(work)?;
    let bin = services::pip_install(&venv, "moto_server", "moto[server]")?;
    let port = services::free_port()?;
    let mut s = Service::spawn(
        "moto",
        &work.join("run/moto"),
        vec![
            bin.display().to_string(),
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
    )?;
    services::wait_for_http(&mut s, port, "/", std::time::Duration::from_secs(60))?;
    eprintln!("==> moto on 127.0.0.1:{port}, pid {:?}", s.pid());
    b.env.insert("USAGE_E2E_MOTO".into(), format!("127.0.0.1:{port}"));
    b.services.push(s);
    Ok(())
}

/// s3s-fs checks signatures; it is used when installed (the test starts and restarts it).
fn find_s3s(b: &mut Backends) -> Result<(), String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let candidates = [
        PathBuf::from(&home).join(".cargo/bin/s3s-fs"),
        PathBuf::from("/usr/local/bin/s3s-fs"),
    ];
    if let Some(bin) = candidates.iter().find(|p| p.exists()) {
        b.env.insert("USAGE_E2E_S3S_BIN".into(), bin.display().to_string());
        b.env
            .insert("USAGE_E2E_S3S_PORT".into(), services::free_port()?.to_string());
        eprintln!("==> s3s-fs found at {}", bin.display());
    } else {
        eprintln!("==> s3s-fs not installed: signature-checking S3 run skipped");
    }
    Ok(())
}

/// tansu on a free port. With `behind_proxy` it advertises the port of the pausable
/// proxy the Kafka conformance test runs in front of it; otherwise its own.
pub(crate) fn start_tansu(work: &Path, b: &mut Backends, behind_proxy: bool) -> Result<(), String> {
    let bin = services::install_tansu(work)?;
    let port = services::free_port()?;
    let proxy = if behind_proxy { services::free_port()? } else { port };
    let mut s = Service::spawn(
        "tansu",
        &work.join("run/tansu"),
        vec![
            bin.display().to_string(),
            "broker".into(),
            "--listener-url".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url".into(),
            format!("tcp://127.0.0.1:{proxy}"),
            "--storage-engine".into(),
            "memory://tansu/".into(),
        ],
    )?;
    services::wait_for_port(&mut s, port, std::time::Duration::from_secs(30))?;
    eprintln!(
        "==> tansu on 127.0.0.1:{port} (advertised via proxy :{proxy}), pid {:?}",
        s.pid()
    );
    b.env
        .insert("USAGE_E2E_KAFKA_UPSTREAM".into(), format!("127.0.0.1:{port}"));
    b.env.insert("USAGE_E2E_KAFKA_PROXY_PORT".into(), proxy.to_string());
    b.services.push(s);
    Ok(())
}

fn start_compose(root: &Path) -> Result<Backends, String> {
    let file = root.join("docker-compose.yml");
    services::run(
        "docker",
        &["compose", "-f", &file.display().to_string(), "up", "-d", "--wait"],
    )
    .map_err(|e| format!("docker compose up: {e}"))?;
    // The same variables the local backends set, at docker-compose.yml's fixed ports.
    let mut b = Backends::new();
    b.env.insert("USAGE_E2E_COMPOSE".into(), file.display().to_string());
    for (k, v) in [
        ("USAGE_E2E_KAFKA_UPSTREAM", "127.0.0.1:19092"),
        ("USAGE_E2E_KAFKA_PROXY_PORT", "19093"),
        ("USAGE_E2E_MOTO", "127.0.0.1:19000"),
        ("USAGE_E2E_S3_KEYS", "usage-e2e:usage-e2e-secret"),
        ("USAGE_E2E_CLICKHOUSE_URL", "http://127.0.0.1:18123"),
    ] {
        b.env.insert(k.into(), v.into());
    }
    // Not containers: rotel (pip) for the otlp suite, s3s-fs when installed.
    let work = root.join("target/e2e");
    find_s3s(&mut b)?;
    find_rotel(&work, &mut b)?;
    install_otel_sdk(&work, &mut b)?;
    Ok(b)
}

/// Prints the results; returns (rows, events lost).
fn print_table(report: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let rows: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    println!(
        "\n{:<20} {:<28} {:<26} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8} {:>8} {:>6}",
        "exporter", "backend", "check", "sent", "found", "unique", "dupes", "lost", "rejected", "sum(cu)", "seconds"
    );
    let mut lost = 0;
    for r in &rows {
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        lost += n("lost") as usize;
        // Interop rows also say what was refused (and kept) and whether SUM(cu) matched.
        let rejected = r["rejected"].as_u64().map_or("-".to_string(), |v| v.to_string());
        let cu = match (r["cu_sent"].as_u64(), r["cu_delivered"].as_u64()) {
            (Some(a), Some(b)) if a == b => "equal".to_string(),
            (Some(_), Some(_)) => "DIFFERS".to_string(),
            _ => "-".to_string(),
        };
        println!(
            "{:<20} {:<28} {:<26} {:>7} {:>7} {:>7} {:>6} {:>5} {:>8} {:>8} {:>6.1}",
            r["exporter"].as_str().unwrap_or("?"),
            r["backend"].as_str().unwrap_or("?"),
            r["step"].as_str().unwrap_or("?"),
            n("sent"),
            n("found"),
            n("unique"),
            n("duplicates"),
            n("lost"),
            rejected,
            cu,
            r["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    (rows.len(), lost)
}

/// Data the tests of earlier runs left behind (one directory per test process,
/// kept after a run so a failure can be inspected). Installed backends stay.
const RUN_DATA_PREFIXES: &[&str] = &["conformance-", "billing-", "s3s-fs-data-"];

fn clear_previous_runs(work: &Path) {
    let Ok(entries) = std::fs::read_dir(work) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if RUN_DATA_PREFIXES.iter().any(|p| name.starts_with(p)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn run(root: &Path, cargo: &str, compose: bool) -> Result<(), String> {
    let start = Instant::now();
    let work: PathBuf = root.join("target/e2e");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    clear_previous_runs(&work);
    let report = work.join("report.jsonl");
    let _ = std::fs::remove_file(&report);
    let _ = ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: stopping every backend started");
        services::kill_all();
        std::process::exit(130);
    });
    // The gateway runs as the real `usage` binary. Building it with the same
    // `cargo test --workspace` selection as the tests keeps one feature set, so
    // nothing is compiled twice (after `cargo xtask test`'s tests step this is a no-op).
    services::run(cargo, &["test", "--workspace", "--no-run", "--quiet"])?;
    let mut backends = if compose {
        start_compose(root)?
    } else {
        start_local(&work)?
    };
    backends.env.insert(
        "USAGE_E2E_USAGE_BIN".into(),
        root.join("target/debug/usage").display().to_string(),
    );
    eprintln!("==> backends ready in {:.1}s", start.elapsed().as_secs_f64());
    let status = Command::new(cargo)
        .args([
            "test",
            "--workspace",
            "--test",
            "conformance",
            "--",
            // The server-backed suites are ignored in plain `cargo test`; the file
            // exporter's is not, and runs here too for the table.
            "--include-ignored",
            "--test-threads=1",
        ])
        .envs(&backends.env)
        .env("USAGE_E2E_REPORT", &report)
        .env("USAGE_E2E_DIR", &work)
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"));
    // The examples' own backend tests (custom_event -> ClickHouse).
    let examples = Command::new(cargo)
        .args(["test", "--workspace", "--examples", "--", "--ignored"])
        .envs(&backends.env)
        .env("USAGE_E2E_DIR", &work)
        .status()
        .map_err(|e| format!("cannot run cargo test: {e}"));
    let (rows, lost) = print_table(&report);
    for s in &mut backends.services {
        s.stop();
    }
    for pattern in &backends.cleanup {
        let _ = Command::new("pkill").args(["-f", pattern]).status();
    }
    if compose {
        let _ = services::run(
            "docker",
            &[
                "compose",
                "-f",
                &root.join("docker-compose.yml").display().to_string(),
                "down",
            ],
        );
    }
    println!("e2e finished in {:.1}s", start.elapsed().as_secs_f64());
    if !examples?.success() {
        return Err("the examples' e2e tests failed".into());
    }
    match status? {
        _ if lost > 0 => Err(format!("{lost} events lost")),
        s if s.success() && rows > 0 => Ok(()),
        s if s.success() => Err("no conformance results were recorded".into()),
        s => Err(format!("conformance tests failed ({s})")),
    }
}
