//! The producers we must accept unchanged (shared/interop.md), with clients we did
//! not write or that follow the deployed client to the letter, through a fault proxy
//! that loses answers after the gateway committed: the Python OpenTelemetry SDK
//! sending Lava's records, and a Daydream-reporter client. Run by `cargo xtask e2e`
//! against the real `usage` binary; every row must show 0 lost and 0 billed twice.

#[path = "interop/h2_proxy.rs"]
mod h2_proxy;
#[path = "interop/proxy.rs"]
mod proxy;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use usage_conformance::{env_addr, free_port, scratch_dir, Server};
use usage_core::{Event, EventId, Value};

/// The gateway's ingest port, its OTLP/gRPC port and the process.
fn start_gateway(dir: &Path) -> (u16, u16, Server) {
    let port = free_port();
    let grpc = free_port();
    let config = dir.join("gateway.toml");
    let toml = format!(
        "[pipeline]\nflush_interval = \"50ms\"\ndata_dir = {data:?}\n[spool]\npath = {spool:?}\n\
         [gateway]\nlisten = \"127.0.0.1:{port}\"\n\
         otlp_grpc = true\notlp_grpc_listen = \"127.0.0.1:{grpc}\"\n\
         [[gateway.keys]]\nkey = \"lava-key\"\nname = \"lava\"\n\
         [[gateway.keys]]\nkey = \"daydream-key\"\nname = \"daydream\"\n\
         [exporters.out]\ntype = \"file\"\npath = {out:?}\n",
        data = dir.join("data").display().to_string(),
        spool = dir.join("spool").display().to_string(),
        out = dir.join("out").display().to_string(),
    );
    std::fs::write(&config, toml).expect("gateway config");
    let log = std::fs::File::create(dir.join("gateway.log")).expect("gateway log");
    let mut command = Command::new(env_addr("USAGE_E2E_USAGE_BIN"));
    command
        .args(["gateway", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(log);
    let server =
        Server::start("usage gateway", &mut command, port, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    (port, grpc, server)
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

fn run_python(args: &[&str], envs: &[(&str, &str)]) {
    let python = env_addr("USAGE_E2E_PYTHON");
    let status = Command::new(&python)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .expect("run the python client");
    assert!(status.success(), "{args:?} failed: {status}");
}

/// Events read back from the file exporter, polled until `expected` distinct ids
/// arrived or a minute passed.
fn delivered(out: &Path, kinds: &[&str], expected: usize) -> Vec<Event> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let mut got = Vec::new();
        let _ = usage_file::read::scan(out, &Default::default(), |e| {
            if kinds.contains(&e.kind()) {
                got.push(e)
            }
        });
        let unique: HashSet<EventId> = got.iter().map(|e| e.id()).collect();
        if unique.len() >= expected || Instant::now() > end {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Distinct refused records the gateway kept for a key (a re-sent request keeps its
/// refused records again; the record's own bytes tell copies apart from records).
fn kept(data: &Path, key: &str) -> usize {
    let mut bodies = HashSet::new();
    for entry in std::fs::read_dir(data.join("rejected")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a rejected-record line");
            if v["key"] == key {
                bodies.insert(if v["body_base64"].is_string() {
                    v["body_base64"].to_string()
                } else {
                    v["body"].to_string()
                });
            }
        }
    }
    bodies.len()
}

/// Per sent record (by a key unique to it): the ids it was delivered under.
struct Tally {
    rows: usize,
    ids_by_record: HashMap<String, HashSet<EventId>>,
}

impl Tally {
    fn new(events: &[Event], record_key: impl Fn(&Event) -> String) -> Self {
        let mut ids_by_record: HashMap<String, HashSet<EventId>> = HashMap::new();
        for e in events {
            ids_by_record.entry(record_key(e)).or_default().insert(e.id());
        }
        Tally {
            rows: events.len(),
            ids_by_record,
        }
    }

    fn unique_ids(&self) -> usize {
        self.ids_by_record.values().map(HashSet::len).sum()
    }

    fn billed_twice(&self) -> usize {
        self.ids_by_record.values().filter(|ids| ids.len() > 1).count()
    }

    fn lost(&self, expected: &HashSet<String>) -> usize {
        expected.iter().filter(|k| !self.ids_by_record.contains_key(*k)).count()
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    client: &str,
    step: &str,
    sent: usize,
    t: &Tally,
    lost: usize,
    rejected: usize,
    cu: Option<(u64, u64)>,
    seconds: f64,
) {
    let line = serde_json::json!({
        "exporter": client, "backend": "usage gateway -> file", "step": step, "sent": sent, "found": t.rows,
        "unique": t.unique_ids(), "duplicates": t.billed_twice(), "lost": lost, "rejected": rejected,
        "cu_sent": cu.map(|c| c.0), "cu_delivered": cu.map(|c| c.1), "seconds": seconds,
    });
    usage_conformance::record_json(&line);
    println!("{line}");
}

fn u64_field(e: &Event, name: &str) -> u64 {
    match e.field(name) {
        Some(Value::U64(v)) => v,
        Some(Value::I64(v)) => v as u64,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
#[ignore = "needs the usage binary and the e2e venv: run `cargo xtask e2e`"]
fn lava_otel_python_sdk_mixed_batches_through_lost_answers() {
    lava_through_lost_answers(
        "otel python sdk",
        "lava-python",
        Transport::Http,
        |endpoint, sent, counts| python_lava(endpoint, sent, counts, &[]),
    );
}

/// `lava_otel_sdk.py` with Lava's key, and `extra` environment.
fn python_lava(endpoint: &str, sent: &str, counts: [usize; 3], extra: &[(&str, &str)]) {
    let mut args = vec![
        script("lava_otel_sdk.py").display().to_string(),
        endpoint.into(),
        sent.into(),
    ];
    args.extend(counts.iter().map(|c| c.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env = vec![("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "authorization=Bearer%20lava-key")];
    env.extend_from_slice(extra);
    run_python(&args, &env);
}

#[test]
#[ignore = "needs the usage binary and the e2e node modules: run `cargo xtask e2e`"]
fn lava_otel_node_sdk_json_mixed_batches_through_lost_answers() {
    lava_through_lost_answers(
        "otel node sdk (json)",
        "lava-node",
        Transport::Http,
        |endpoint, sent, counts| {
            // ESM resolves packages next to the script: run it from the e2e node dir.
            let node_dir = PathBuf::from(env_addr("USAGE_E2E_NODE_DIR"));
            let target = node_dir.join("lava_otel_node.mjs");
            std::fs::copy(script("lava_otel_node.mjs"), &target).expect("copy the node client");
            let mut args = vec![
                target.display().to_string(),
                endpoint.into(),
                "lava-key".into(),
                sent.into(),
            ];
            args.extend(counts.iter().map(|c| c.to_string()));
            let status = Command::new("node").args(&args).status().expect("run node");
            assert!(status.success(), "{args:?} failed: {status}");
        },
    );
}

#[test]
#[ignore = "needs the usage binary and the e2e venv: run `cargo xtask e2e`"]
fn lava_otel_python_sdk_grpc_mixed_batches_through_lost_answers() {
    lava_through_lost_answers(
        "otel python sdk (grpc)",
        "lava-grpc",
        Transport::Grpc,
        |endpoint, sent, counts| python_lava(endpoint, sent, counts, &[("LAVA_OTLP_PROTOCOL", "grpc")]),
    );
}

/// How a client reaches the gateway.
#[derive(Clone, Copy)]
enum Transport {
    /// OTLP/HTTP `/v1/logs` through the HTTP/1 fault proxy.
    Http,
    /// OTLP/gRPC through the HTTP/2 fault proxy.
    Grpc,
}

/// Lava's records (5,000 relays, 50 QoS samples, 25 relays without `cu`) sent by
/// `client(endpoint, sent_summary_path, [relays, qos, bad])` through a fault proxy.
fn lava_through_lost_answers(
    client_name: &str,
    run: &str,
    transport: Transport,
    client: impl FnOnce(&str, &str, [usize; 3]),
) {
    let start = Instant::now();
    let dir = scratch_dir(&format!("conformance-interop-{run}"));
    let (gateway, grpc, _process) = start_gateway(&dir);
    let (endpoint, faults) = match transport {
        Transport::Http => {
            let (proxy, faults) = proxy::start(gateway);
            (format!("http://127.0.0.1:{proxy}/v1/logs"), faults)
        }
        Transport::Grpc => {
            let (proxy, faults) = h2_proxy::start(grpc);
            (format!("http://127.0.0.1:{proxy}"), faults)
        }
    };
    let sent_path = dir.join("lava-sent.json");
    let (relays, qos, bad) = (5000usize, 50usize, 25usize);
    client(&endpoint, &sent_path.display().to_string(), [relays, qos, bad]);
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sent_path).expect("sent summary")).expect("json");
    assert_eq!(sent["flushed"], true, "the SDK flushed everything: {sent}");
    let got = delivered(&dir.join("out"), &["relay_usage", "optimizer_qos"], relays + qos);
    // latency_ms carries the relay's serial; provider_stake the sample's.
    let t = Tally::new(&got, |e| match e.kind() {
        "relay_usage" => format!("r{}", u64_field(e, "latency_ms")),
        _ => format!("q{}", u64_field(e, "provider_stake")),
    });
    // The script sends a sample with every `relays / qos`-th relay, staked 5,000,000 + n.
    let every = relays / qos;
    let mut expected: HashSet<String> = (0..relays).map(|n| format!("r{n}")).collect();
    expected.extend((0..qos).map(|k| format!("q{}", 5_000_000 + k * every)));
    let mut cu_by_id: HashMap<EventId, u64> = HashMap::new();
    for e in got.iter().filter(|e| e.kind() == "relay_usage") {
        cu_by_id.insert(e.id(), u64_field(e, "cu"));
    }
    let cu_delivered: u64 = cu_by_id.values().sum();
    let cu_sent = sent["cu_sum"].as_u64().expect("cu_sum");
    let rejected = kept(&dir.join("data"), "lava");
    let lost = t.lost(&expected);
    report(
        client_name,
        "lava mixed, answers lost",
        relays + qos,
        &t,
        lost,
        rejected,
        Some((cu_sent, cu_delivered)),
        start.elapsed().as_secs_f64(),
    );
    assert!(
        faults.dropped.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the proxy lost answers"
    );
    assert_eq!(lost, 0, "every valid record arrived");
    assert_eq!(t.billed_twice(), 0, "a re-sent record keeps its id");
    assert_eq!(t.unique_ids(), relays + qos);
    assert_eq!(rejected, bad, "each record without cu is kept, once");
    assert_eq!(cu_delivered, cu_sent);
    let r = got[0].resource().expect("resource");
    assert!(r.service_name.as_str().starts_with("lava-rpc"), "{r:?}");
}

#[test]
#[ignore = "needs the usage binary and the e2e venv: run `cargo xtask e2e`"]
fn daydream_reporter_to_the_letter_through_lost_answers() {
    let start = Instant::now();
    let dir = scratch_dir("conformance-interop-daydream");
    let (gateway, _, _process) = start_gateway(&dir);
    let (proxy, faults) = proxy::start(gateway);
    let sent_path = dir.join("daydream-sent.json");
    let (events, bad) = (3000usize, 10usize);
    run_python(
        &[
            &script("daydream_reporter.py").display().to_string(),
            &format!("http://127.0.0.1:{proxy}/v1/metrics"),
            "daydream-key",
            &sent_path.display().to_string(),
            &events.to_string(),
            &bad.to_string(),
        ],
        &[],
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sent_path).expect("sent summary")).expect("json");
    let stats = &sent["stats"];
    assert_eq!(stats["dropped_400"], 0, "{stats}");
    assert_eq!(stats["dropped_413"], 0, "{stats}");
    let got = delivered(&dir.join("out"), &["network_event"], events);
    let data_of = |e: &Event| -> serde_json::Value {
        match e.field("data") {
            Some(Value::Str(d)) => serde_json::from_str(d).expect("data is JSON"),
            other => panic!("data: {other:?}"),
        }
    };
    let t = Tally::new(&got, |e| data_of(e)["serial"].to_string());
    let by_serial: HashMap<String, &serde_json::Value> = sent["sent"]
        .as_array()
        .expect("sent list")
        .iter()
        .map(|s| (s["serial"].to_string(), s))
        .collect();
    let expected: HashSet<String> = by_serial
        .iter()
        .filter(|(_, s)| s["bad"] == false)
        .map(|(k, _)| k.clone())
        .collect();
    // Field by field: type, id when sent, data verbatim (nested objects and arrays).
    for e in &got {
        let data = data_of(e);
        let s = by_serial[&data["serial"].to_string()];
        assert_eq!(data, s["data"], "data kept losslessly");
        assert_eq!(
            e.field("event_type"),
            Some(Value::Str(s["type"].as_str().unwrap_or_default()))
        );
        if let Some(id) = s["id"].as_str() {
            assert_eq!(e.id().to_string(), id, "the reporter's id is kept");
        }
        assert_eq!(e.resource().expect("resource").service_name.as_str(), "scope");
    }
    let rejected = kept(&dir.join("data"), "daydream");
    let told: HashSet<u64> = stats["rejected"]
        .as_array()
        .expect("rejected list")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    let lost = t.lost(&expected);
    report(
        "daydream reporter",
        "stream events, answers lost",
        events,
        &t,
        lost,
        rejected,
        None,
        start.elapsed().as_secs_f64(),
    );
    let f = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        f(&faults.dropped) + f(&faults.bad_gateway) > 0,
        "the proxy lost answers"
    );
    assert_eq!(lost, 0, "every valid event arrived");
    assert_eq!(
        t.billed_twice(),
        0,
        "a re-sent event keeps its id (derived when it has none)"
    );
    assert_eq!(t.unique_ids(), events);
    assert_eq!(rejected, bad, "each event with an unreadable timestamp is kept, once");
    assert_eq!(told.len(), bad, "and the client was told which");
}
