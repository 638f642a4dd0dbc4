//! The named checks every backend runs, and [`run`], which runs them all.

use crate::{Backend, StepReport};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};
use usage_core::{Event, EventId, NetworkEvent, OptimizerQos, Pipeline, RelayUsage, Text, UsageConfig, Value};

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

/// A check's row: what was sent, found, and the [`tally`] of it.
fn step_report(
    backend: &dyn Backend,
    step: &str,
    sent: usize,
    found: usize,
    (unique, duplicates, lost): (usize, usize, usize),
    start: Instant,
) -> StepReport {
    StepReport {
        exporter: backend.exporter_type(),
        backend: backend.name(),
        step: step.into(),
        sent,
        found,
        unique,
        duplicates,
        lost,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// (unique ids found, extra copies, sent ids not found).
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
    Ok(step_report(
        backend,
        "delivery+routing+fidelity",
        routed.len(),
        found.len(),
        (unique, duplicates, lost),
        start,
    ))
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
    let before = pipeline
        .stats()
        .exporter("under_test")
        .cloned()
        .ok_or("no exporter under_test")?;
    backend.stop()?;
    for e in second {
        pipeline.sink().emit(e.clone());
    }
    let routed_before: usize = first
        .iter()
        .chain(second)
        .filter(|e| ROUTED.contains(&e.kind()))
        .count();
    // The second third must meet the outage: routed to the exporter, and a failed or
    // a hanging attempt (or everything acknowledged, if the stop did not take effect).
    let met = Instant::now() + Duration::from_secs(30);
    let during = loop {
        let now = pipeline
            .stats()
            .exporter("under_test")
            .cloned()
            .ok_or("no exporter under_test")?;
        let reached = now.routed as usize >= routed_before;
        let failed = now.errors > before.errors || now.retried > before.retried || now.paused || now.in_flight > 0;
        if (reached && failed) || now.exported as usize >= routed_before || Instant::now() > met {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let delivered_during = during.exported as usize;
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
    Ok(step_report(
        backend,
        "stop+restart mid-stream",
        routed.len(),
        found.len(),
        (unique, duplicates, lost),
        start,
    ))
}
