//! # usage-conformance
//!
//! One suite every exporter must pass against its real backend (as `object_store`
//! does for its stores). An exporter crate implements [`Backend`] for its destination
//! and calls [`run`] from an `#[ignore]`d test that `cargo xtask e2e` runs with the
//! backend's address in the environment; a backend that needs no server (the file
//! exporter's) calls each named check ([`check_delivery`], [`check_stop_and_restart`])
//! from its own plain test.
//!
//! The suite checks, through a real pipeline:
//! 1. **Delivery**: N events of several kinds go in; all N are found by id.
//! 2. **Routing**: the instance receives only the kinds it subscribes to.
//! 3. **Fidelity**: every field is exact, types included; count and SUM(cu) per
//!    project equal what was emitted.
//! 4. **Outage**: the backend is stopped and restarted mid-stream; nothing is lost
//!    (events wait and are delivered after it returns).

mod proxy;

pub use proxy::TcpProxy;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use usage_core::{Event, EventId, NetworkEvent, OptimizerQos, Pipeline, RelayUsage, Text, UsageConfig, Value};

/// A real destination the suite can write to (through the exporter) and read back from.
pub trait Backend {
    /// Short name for the report, e.g. `tansu`, `moto`, `clickhouse 18.16`.
    fn name(&self) -> String;
    /// The exporter's type, e.g. `kafka`.
    fn exporter_type(&self) -> String;
    /// The TOML body of `[exporters.under_test]` (without `type` and `events`),
    /// pointing at this backend. `run` names the run so each run can use fresh
    /// topics, prefixes or tables.
    fn exporter_settings(&self, run: &str) -> String;
    /// Every event stored for `run`, decoded back into events (kind, id, time and
    /// typed values), duplicates included.
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String>;
    /// Makes the backend unavailable (stop the process, close the port).
    fn stop(&mut self) -> Result<(), String>;
    /// Makes it available again.
    fn start(&mut self) -> Result<(), String>;
}

/// The outcome of one step, for the e2e table.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Exporter type.
    pub exporter: String,
    /// Backend name.
    pub backend: String,
    /// Which check.
    pub step: String,
    /// Events sent to the exporter under test.
    pub sent: usize,
    /// Events read back (with duplicates).
    pub found: usize,
    /// Distinct ids read back.
    pub unique: usize,
    /// Extra copies of ids read back.
    pub duplicates: usize,
    /// Sent ids not found.
    pub lost: usize,
    /// Wall time of the step.
    pub seconds: f64,
}

impl StepReport {
    /// One JSON line (what `cargo xtask e2e` collects).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "exporter": self.exporter, "backend": self.backend, "step": self.step, "sent": self.sent,
            "found": self.found, "unique": self.unique, "duplicates": self.duplicates, "lost": self.lost,
            "seconds": self.seconds,
        })
        .to_string()
    }
}

/// Kinds the instance under test subscribes to; `optimizer_qos` goes elsewhere.
const ROUTED: [&str; 2] = ["relay_usage", "network_event"];

fn events(n: usize, run: &str) -> Vec<Event> {
    let projects = ["acme", "globex", "initech"];
    (0..n)
        .map(|i| match i % 5 {
            4 => Event::new(NetworkEvent {
                event_type: Text::new(if i % 2 == 0 { "stream_started" } else { "stream_stopped" }),
                stream_id: Text::new(format!("{run}-s{i}")),
                pipeline: Text::new("ingest"),
                attributes: vec![
                    ("codec".into(), "h264".into()),
                    ("quote\"\n".into(), format!("v{i}").into()),
                ],
                // Daydream's payload, verbatim JSON with nesting, on every other trace.
                data: (i % 10 == 4)
                    .then(|| Text::new(format!(r#"{{"type":"stream_started","n":{i},"ids":["a"],"x":{{}}}}"#))),
            }),
            3 => Event::new(OptimizerQos {
                provider: Text::new(format!("p{}", i % 7)),
                chain_id: Text::new("ETH1"),
                epoch: i as i64,
                selection_latency: 0.5 + i as f64 / 1000.0,
                ..Default::default()
            }),
            _ => Event::new(RelayUsage {
                project: Text::new(projects[i % 3]),
                chain: Text::new(if i % 2 == 0 { "ETH1" } else { "ARB1" }),
                api_interface: Text::new("jsonrpc"),
                api_method: Text::new("eth_getBlockByNumber"),
                cu: (i % 97) as u64 * 10 + 1,
                latency_ms: (i % 300) as u64,
                success: i % 13 != 0,
                cache_hit: i % 4 == 0,
                is_write: i % 11 == 0,
                is_archive: i % 7 == 0,
                is_batch: false,
                is_debug_trace: i % 17 == 0,
                hedge_count: (i % 3) as u32,
                provider: Text::new(format!("lava@provider-{}", i % 5)),
                origin: Text::new("https://app.example.com"),
            }),
        })
        .collect()
}

fn config(backend: &dyn Backend, run: &str, scratch: &Path) -> Result<UsageConfig, String> {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        "[pipeline]\nservice_name = \"conformance\"\nservice_instance_id = \"suite-1\"\nflush_interval = \"100ms\"\n\
         retry_base = \"50ms\"\nretry_max = \"500ms\"\nexport_timeout = \"5s\"\ndata_dir = {data:?}\n\
         [exporters.under_test]\ntype = {ty:?}\nevents = [\"relay_usage\", \"network_event\"]\nbatch_max_events = 200\n{settings}\n\
         [exporters.elsewhere]\ntype = \"file\"\npath = {other:?}\nevents = [\"optimizer_qos\"]\n",
        data = scratch.join("data").display().to_string(),
        ty = backend.exporter_type(),
        settings = backend.exporter_settings(run),
        other = scratch.join("elsewhere").display().to_string(),
    );
    UsageConfig::from_toml(&toml).map_err(|e| format!("suite config: {e}"))
}

fn tally(found: &[Event], sent: &[&Event]) -> (usize, usize, usize) {
    let mut counts: HashMap<EventId, usize> = HashMap::new();
    for e in found {
        *counts.entry(e.id()).or_default() += 1;
    }
    let unique = counts.len();
    let duplicates = found.len() - unique;
    let lost = sent.iter().filter(|e| !counts.contains_key(&e.id())).count();
    (unique, duplicates, lost)
}

/// Count and SUM(cu) per project of relay events.
fn totals<'a>(events: impl Iterator<Item = &'a Event>) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for e in events.filter(|e| e.kind() == "relay_usage") {
        if !seen.insert(e.id()) {
            continue; // count each id once, as a deduplicating query would
        }
        if let (Some(Value::Str(p)), Some(Value::U64(cu))) = (e.field("project"), e.field("cu")) {
            let t = out.entry(p.to_string()).or_insert((0, 0));
            t.0 += 1;
            t.1 += cu;
        }
    }
    out
}

/// The named checks, in the order [`run`] runs them.
pub const CHECKS: [(&str, Check); 2] = [
    ("delivery", check_delivery),
    ("stop and restart", check_stop_and_restart),
];

/// A named check: a report, or what failed.
pub type Check = fn(&mut dyn Backend, &Path, usize) -> Result<StepReport, String>;

/// Runs every check, even after one failed; `Err` names each check that failed and
/// why. `scratch` is a writable directory for the pipeline's own files. Backends
/// that are cheap to set up call the named checks from one test each instead.
pub fn run(backend: &mut dyn Backend, scratch: &Path, n: usize) -> Result<Vec<StepReport>, String> {
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for (name, check) in CHECKS {
        match check(backend, scratch, n) {
            Ok(r) => reports.push(r),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(reports)
    } else {
        Err(format!(
            "{} of {} checks failed: {}",
            failed.len(),
            CHECKS.len(),
            failed.join("; ")
        ))
    }
}

fn run_name(check: &str) -> String {
    format!("{check}{}", usage_core::Timestamp::now().as_micros() % 1_000_000_000)
}

/// Checks 1-3: every event delivered and found by id, only the subscribed kinds,
/// every field exact, count and SUM(cu) per project equal.
pub fn check_delivery(backend: &mut dyn Backend, scratch: &Path, n: usize) -> Result<StepReport, String> {
    delivery(backend, scratch, &run_name("d"), n)
}

/// Check 4: the backend stopped and restarted mid-stream loses nothing.
pub fn check_stop_and_restart(backend: &mut dyn Backend, scratch: &Path, n: usize) -> Result<StepReport, String> {
    outage(backend, scratch, &run_name("o"), n)
}

fn delivery(backend: &mut dyn Backend, scratch: &Path, run: &str, n: usize) -> Result<StepReport, String> {
    let start = Instant::now();
    let dir = scratch.join(run);
    let pipeline = Pipeline::from_config(&config(backend, run, &dir)?).map_err(|e| e.to_string())?;
    let sent = events(n, run);
    for e in &sent {
        pipeline.sink().emit(e.clone());
    }
    let report = pipeline
        .shutdown_blocking(Duration::from_secs(120))
        .map_err(|e| format!("delivery: shutdown was not clean: {e}"))?;
    let routed: Vec<&Event> = sent.iter().filter(|e| ROUTED.contains(&e.kind())).collect();
    let delivered = report.exporter("under_test").map_or(0, |e| e.delivered) as usize;
    if delivered != routed.len() {
        return Err(format!(
            "delivery: the exporter acknowledged {delivered} of {} events",
            routed.len()
        ));
    }
    let found = backend.read_back(run, routed.len())?;
    let (unique, duplicates, lost) = tally(&found, &routed);
    if lost > 0 {
        return Err(format!(
            "delivery: {lost} of {} events not found in {}",
            routed.len(),
            backend.name()
        ));
    }
    // Routing: nothing of a kind the instance does not subscribe to.
    if let Some(stray) = found.iter().find(|e| !ROUTED.contains(&e.kind())) {
        return Err(format!(
            "routing: found a `{}` event, which the instance does not subscribe to",
            stray.kind()
        ));
    }
    // Fidelity: every field exact, types included.
    let by_id: HashMap<EventId, &Event> = routed.iter().map(|e| (e.id(), *e)).collect();
    for got in &found {
        let Some(want) = by_id.get(&got.id()) else {
            return Err(format!("fidelity: found id {} that was never sent", got.id()));
        };
        if got.kind() != want.kind() || got.ts() != want.ts() {
            return Err(format!(
                "fidelity: {} came back as {} at {}, sent as {} at {}",
                got.id(),
                got.kind(),
                got.ts(),
                want.kind(),
                want.ts()
            ));
        }
        let (g, w) = (got.values(), want.values());
        for ((def, a), b) in want.schema().fields.iter().zip(g.iter()).zip(w.iter()) {
            let same = match (a, b) {
                (Value::StrMap(x), Value::StrMap(y)) => {
                    let mut x = x.to_vec();
                    let mut y = y.to_vec();
                    x.sort();
                    y.sort();
                    x == y
                }
                _ => a == b,
            };
            if !same {
                return Err(format!(
                    "fidelity: {} field `{}`: got {a:?}, sent {b:?}",
                    want.kind(),
                    def.name
                ));
            }
        }
    }
    let (want_totals, got_totals) = (totals(routed.iter().copied()), totals(found.iter()));
    if want_totals != got_totals {
        return Err(format!(
            "totals: count and SUM(cu) per project {got_totals:?}, sent {want_totals:?}"
        ));
    }
    Ok(StepReport {
        exporter: backend.exporter_type(),
        backend: backend.name(),
        step: "delivery+routing+fidelity".into(),
        sent: routed.len(),
        found: found.len(),
        unique,
        duplicates,
        lost,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn outage(backend: &mut dyn Backend, scratch: &Path, run: &str, n: usize) -> Result<StepReport, String> {
    let start = Instant::now();
    let dir = scratch.join(run);
    let pipeline = Pipeline::from_config(&config(backend, run, &dir)?).map_err(|e| e.to_string())?;
    let sent = events(n, run);
    let (first, rest) = sent.split_at(n / 3);
    let (second, third) = rest.split_at(n / 3);
    for e in first {
        pipeline.sink().emit(e.clone());
    }
    pipeline
        .flush_blocking(Duration::from_secs(60))
        .map_err(|e| format!("outage: first third: {e}"))?;
    backend.stop()?;
    for e in second {
        pipeline.sink().emit(e.clone());
    }
    // Let the exporter hit the outage for a while: the second third must wait.
    std::thread::sleep(Duration::from_millis(1500));
    let routed_before: usize = first
        .iter()
        .chain(second)
        .filter(|e| ROUTED.contains(&e.kind()))
        .count();
    let delivered_during = pipeline.stats().exporter("under_test").map_or(0, |e| e.exported) as usize;
    backend.start()?;
    for e in third {
        pipeline.sink().emit(e.clone());
    }
    pipeline
        .shutdown_blocking(Duration::from_secs(180))
        .map_err(|e| format!("outage: events were not all delivered after the backend returned: {e}"))?;
    let routed: Vec<&Event> = sent.iter().filter(|e| ROUTED.contains(&e.kind())).collect();
    let found = backend.read_back(run, routed.len())?;
    let (unique, duplicates, lost) = tally(&found, &routed);
    if lost > 0 {
        return Err(format!(
            "outage: {lost} of {} events lost across the restart",
            routed.len()
        ));
    }
    if delivered_during >= routed_before {
        return Err(format!(
            "outage: {delivered_during} of {routed_before} events were acknowledged while the backend was down \
             (the stop did not take effect)"
        ));
    }
    Ok(StepReport {
        exporter: backend.exporter_type(),
        backend: backend.name(),
        step: "stop+restart mid-stream".into(),
        sent: routed.len(),
        found: found.len(),
        unique,
        duplicates,
        lost,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Appends reports to `$USAGE_E2E_REPORT` (one JSON object per line) for the e2e table.
pub fn record(reports: &[StepReport]) {
    let Ok(path) = std::env::var("USAGE_E2E_REPORT") else {
        return;
    };
    let mut text = String::new();
    for r in reports {
        text.push_str(&r.to_json());
        text.push('\n');
    }
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(path))
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Appends one free-form row (a JSON object with at least the [`StepReport`] keys)
/// to `$USAGE_E2E_REPORT`, for rows with more columns than [`StepReport`] has.
pub fn record_json(row: &serde_json::Value) {
    let Ok(path) = std::env::var("USAGE_E2E_REPORT") else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(path))
    {
        let _ = writeln!(f, "{row}");
    }
}

/// A scratch directory under the e2e work dir (or the system temp dir).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("USAGE_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Polls `read` until it returns at least `expected` events or `limit` passes
/// (backends that index asynchronously need a moment).
pub fn poll_read(
    limit: Duration,
    expected: usize,
    mut read: impl FnMut() -> Result<Vec<Event>, String>,
) -> Result<Vec<Event>, String> {
    let end = Instant::now() + limit;
    loop {
        let got = read()?;
        if got.len() >= expected || Instant::now() >= end {
            return Ok(got);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An address from an environment variable set by `cargo xtask e2e`; panics with
/// how to run the e2e tests when it is missing.
pub fn env_addr(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the e2e tests with `cargo xtask e2e`"))
}

/// Emits `n` `relay_usage` events for project `acme` (cu 0..n) and returns their ids,
/// for fault tests that check every id arrives.
pub fn emit_relays(p: &Pipeline, n: u64) -> HashSet<EventId> {
    (0..n)
        .map(|cu| {
            let e = Event::new(RelayUsage {
                project: "acme".into(),
                cu,
                ..Default::default()
            });
            let id = e.id();
            p.sink().emit(e);
            id
        })
        .collect()
}

/// The `relay_usage` every throughput bench sends (project `acme`, 15 fields, two
/// strings longer than the inline limit), so their figures compare like for like.
/// usage-core's own benches keep a copy: they cannot depend on this crate.
pub fn bench_relay(i: u64) -> RelayUsage {
    RelayUsage {
        project: Text::new_static("acme"),
        chain: Text::new_static("ETH1"),
        api_interface: Text::new_static("jsonrpc"),
        api_method: Text::new_static("eth_getBlockByNumber"),
        cu: 10 + (i & 7),
        latency_ms: 42,
        success: true,
        provider: Text::new_static("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"),
        origin: Text::new_static("https://app.acme.io"),
        ..Default::default()
    }
}
