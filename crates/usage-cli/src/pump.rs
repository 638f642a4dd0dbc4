//! `usage pump`: synthetic load through the configured exporters, with an exact
//! account of what arrived. Exits non-zero if any event was not delivered.

use crate::progress::Progress;
use crate::synth::Synth;
use crate::{load_config, Failure, Outcome};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use usage_core::{DeliveryReport, Pipeline, PipelineStats, Value};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Event kind: relay_usage, optimizer_qos or network_event.
    #[arg(long, default_value = "relay_usage")]
    kind: String,
    /// How many events.
    #[arg(long)]
    count: u64,
    /// Events per second (0: as fast as the queue takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long shutdown may take to deliver what is queued, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = usage_core::config::units::parse_duration)]
    timeout: Duration,
    /// Seed for the synthetic data (same seed, same events except ids and times).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write every emitted event id to this file, one per line.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// How full the fullest queue is (0 to 1): the ingest queue, and each exporter's
/// with the ingest backlog it is about to receive, by events and by bytes. With a spool an exporter's queue never drops (it lags
/// and reads back), so only the ingest queue counts then.
fn fullest(s: &PipelineStats, capacity: u64) -> f64 {
    let ratio = |used: u64, max: u64| used as f64 / max.max(1) as f64;
    let ingest = ratio(s.queued_events, capacity).max(ratio(s.queued_bytes, s.queue_max_bytes));
    if s.spool.is_some() {
        return ingest;
    }
    // What waits in the ingest queue lands in the exporters' queues next.
    s.exporters
        .iter()
        .map(|e| {
            ratio(e.queued_events + s.queued_events, e.queue_max_events)
                .max(ratio(e.queued_bytes + s.queued_bytes, e.queue_max_bytes))
        })
        .fold(ingest, f64::max)
}

/// Prints the per-exporter table shared by `pump` and `demo`.
pub(crate) fn print_exporters(stats: &PipelineStats, report: &DeliveryReport) {
    println!(
        "{:<16} {:<10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "exporter", "type", "delivered", "spooled", "pending", "dead", "dropped", "failed", "retried"
    );
    for e in &report.exporters {
        let s = stats.exporter(&e.name);
        println!(
            "{:<16} {:<10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
            e.name,
            s.map_or("", |s| s.type_name.as_str()),
            e.delivered,
            e.spooled,
            e.pending,
            e.dead_lettered,
            e.dropped,
            e.failed,
            s.map_or(0, |s| s.retried)
        );
        if let Some(err) = s.and_then(|s| s.last_error.as_deref()) {
            println!("{:<16} last error: {err}", "");
        }
    }
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    if !["relay_usage", "optimizer_qos", "network_event"].contains(&args.kind.as_str()) {
        return Err(Failure::Usage(format!(
            "--kind {}: pump generates relay_usage, optimizer_qos or network_event",
            args.kind
        )));
    }
    let config = load_config(config)?;
    let pipeline = Pipeline::from_config(&config)?;
    let capacity = config.pipeline.queue_capacity as u64;
    let mut ids_out = match &args.ids {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::Usage(format!("--ids {}: {e}", p.display())))?,
        )),
        None => None,
    };
    let sink = pipeline.sink();
    let mut synth = Synth::new(args.seed);
    let mut cu_by_project: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut progress = Progress::new();
    // Look at the queues often enough that none can fill between two looks.
    let smallest = pipeline
        .stats()
        .exporters
        .iter()
        .map(|e| e.queue_max_events)
        .fold(capacity, u64::min);
    let look_every = (smallest / 8).clamp(1, 1024);
    crate::interrupt::install();
    let start = Instant::now();
    let mut sent = 0u64;
    for i in 0..args.count {
        if crate::interrupt::requested() {
            break;
        }
        if args.rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if i % look_every == 0 {
            // Stay under every queue's bound, the ingest queue's and each exporter's:
            // pump measures delivery, not overflow.
            let s = pipeline.stats();
            progress.tick(&s);
            if fullest(&s, capacity) > 0.5 {
                while fullest(&pipeline.stats(), capacity) > 0.25 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let Some(event) = synth.event(&args.kind) else {
            break;
        };
        if let Some(Value::Str(project)) = event.field("project") {
            let cu = match event.field("cu") {
                Some(Value::U64(c)) => c,
                _ => 0,
            };
            let e = cu_by_project.entry(project.to_string()).or_default();
            e.0 += 1;
            e.1 += cu;
        }
        if let Some(w) = ids_out.as_mut() {
            writeln!(w, "{}", event.id()).map_err(|e| Failure::Failed(format!("writing ids: {e}")))?;
        }
        sink.emit(event);
        sent += 1;
    }
    if let Some(mut w) = ids_out {
        w.flush().map_err(|e| Failure::Failed(format!("writing ids: {e}")))?;
    }
    let emit_secs = start.elapsed().as_secs_f64();
    let result = pipeline.shutdown_blocking(args.timeout);
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    let stats = pipeline.stats();
    let report = match &result {
        Ok(r) => r,
        Err(e) => e.report(),
    };
    if args.json {
        let exporters: Vec<serde_json::Value> = report
            .exporters
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "delivered": e.delivered, "spooled": e.spooled, "pending": e.pending,
                    "dead_lettered": e.dead_lettered, "dropped": e.dropped, "failed": e.failed,
                    "retried": stats.exporter(&e.name).map_or(0, |s| s.retried),
                })
            })
            .collect();
        let projects: serde_json::Map<String, serde_json::Value> = cu_by_project
            .iter()
            .map(|(p, (n, cu))| (p.clone(), serde_json::json!({"events": n, "cu": cu})))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "kind": args.kind, "sent": sent, "interrupted": crate::interrupt::requested(), "emit_seconds": emit_secs, "seconds": secs,
                "dropped_at_ingest": report.dropped_at_ingest.total(), "complete": result.is_ok(),
                "exporters": exporters, "projects": projects,
            })
        );
    } else {
        // Spooled events are not lost, but not delivered either: say which it is.
        let spooled: u64 = report.exporters.iter().map(|e| e.spooled).sum();
        let end = if spooled > 0 {
            format!("stopped after {secs:.2}s with {spooled} deliveries still in the spool (made after a restart)")
        } else {
            format!("all exporters done after {secs:.2}s")
        };
        println!(
            "sent {sent} {} events in {emit_secs:.2}s ({:.0}/s){}; {end}",
            args.kind,
            sent as f64 / emit_secs.max(1e-9),
            if crate::interrupt::requested() {
                format!(" (interrupted: {} not sent)", args.count - sent)
            } else {
                String::new()
            }
        );
        print_exporters(&stats, report);
    }
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::Failed(format!(
            "events were lost or not delivered: {}",
            e.report()
        ))),
    }
}
