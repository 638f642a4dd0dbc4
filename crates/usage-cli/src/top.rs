//! `usage top`: live per-exporter rates, queues, lag, drops and pauses of a running
//! gateway, from its `/metrics` (like `vector top`). Redraws in place on a
//! terminal; elsewhere (or with `--iterations`) prints one table per interval.

use crate::admin::{base_url, get, runtime};
use crate::prom::Scrape;
use crate::{Failure, Outcome};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The gateway's admin address (default: gateway.admin_listen, else gateway.listen).
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Time between tables.
    #[arg(long, default_value = "1s", value_parser = usage_core::config::units::parse_duration)]
    interval: Duration,
    /// Print this many tables, then exit (default: until Ctrl-C).
    #[arg(long)]
    iterations: Option<u64>,
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    let url = format!("{}/metrics", base_url(args.admin.as_deref(), config)?);
    let redraw = args.iterations.is_none() && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let mut before = scrape(&client, &url).await?;
        let mut printed = 0u64;
        while args.iterations.is_none_or(|n| printed < n) {
            tokio::time::sleep(args.interval).await;
            let now = scrape(&client, &url).await?;
            let table = render(&before, &now);
            if redraw {
                print!("\x1b[2J\x1b[H{table}");
            } else {
                println!("{table}");
            }
            before = now;
            printed += 1;
        }
        Ok(())
    })
}

async fn scrape(client: &reqwest::Client, url: &str) -> Result<(Instant, Scrape), Failure> {
    let text = get(client, url)
        .await?
        .text()
        .await
        .map_err(|e| Failure::Failed(format!("{url}: {e}")))?;
    Ok((Instant::now(), Scrape::parse(&text)))
}

/// The table for the interval between two scrapes.
fn render((t0, a): &(Instant, Scrape), (t1, b): &(Instant, Scrape)) -> String {
    let secs = t1.duration_since(*t0).as_secs_f64().max(1e-3);
    let rate =
        |name: &str, label: &str, value: &str| (b.sum(name, label, value) - a.sum(name, label, value)).max(0.0) / secs;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "gateway: {:.0} received/s, {:.0} forwarded/s, {:.0} refused requests/s | ingest queue {} events, {}/{} bytes | {}",
        rate("usage_gateway_received_events_total", "", ""),
        rate("usage_gateway_forwarded_events_total", "", ""),
        rate("usage_gateway_rejected_requests_total", "", ""),
        b.sum("usage_pipeline_queued_events", "", ""),
        b.sum("usage_pipeline_queued_bytes", "", ""),
        b.sum("usage_pipeline_queue_max_bytes", "", ""),
        if b.has("usage_spool_bytes") {
            format!(
                "spool {}/{} bytes",
                b.sum("usage_spool_bytes", "", ""),
                b.sum("usage_spool_max_bytes", "", "")
            )
        } else {
            "no spool".into()
        },
    );
    let _ = writeln!(
        o,
        "{:<20} {:>10} {:>12} {:>17} {:>9} {:>9} {:>9} {:>9} {:>8}  state",
        "exporter", "events/s", "exported", "queued/max", "lag", "dropped", "failed", "dead", "retries"
    );
    for name in b.label_values("usage_exporter_exported_events_total", "exporter") {
        let n = name.as_str();
        let total = |metric: &str| b.sum(metric, "exporter", n);
        let state = if total("usage_exporter_paused") > 0.0 {
            "PAUSED"
        } else {
            "ok"
        };
        let _ = writeln!(
            o,
            "{:<20} {:>10.0} {:>12} {:>17} {:>9} {:>9} {:>9} {:>9} {:>8}  {state}",
            n,
            rate("usage_exporter_exported_events_total", "exporter", n),
            total("usage_exporter_exported_events_total"),
            format!(
                "{}/{}",
                total("usage_exporter_queued_events"),
                total("usage_exporter_queue_max_events")
            ),
            total("usage_exporter_lag_events"),
            total("usage_exporter_dropped_events_total"),
            total("usage_exporter_failed_events_total"),
            total("usage_exporter_dead_lettered_events_total"),
            total("usage_exporter_retries_total"),
        );
    }
    o
}
