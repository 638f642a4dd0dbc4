//! `usage tap`: print a live sample of the events a running gateway accepts, as
//! NDJSON (`{"kind", "key", "exporters", "event"}` per line), from its admin listener.

use crate::admin::{base_url, get, runtime};
use crate::{Failure, Outcome};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The gateway's admin address (default: gateway.admin_listen, else gateway.listen).
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Only events of this kind (repeatable).
    #[arg(long)]
    kind: Vec<String>,
    /// Only events routed to this exporter (repeatable).
    #[arg(long)]
    exporter: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Stop after this long.
    #[arg(long, default_value = "60s", value_parser = usage_core::config::units::parse_duration)]
    duration: Duration,
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    let base = base_url(args.admin.as_deref(), config)?;
    let mut query = vec![format!("duration={}ms", args.duration.as_millis())];
    query.extend(args.kind.iter().map(|k| format!("kind={k}")));
    query.extend(args.exporter.iter().map(|e| format!("exporter={e}")));
    query.extend(args.limit.map(|l| format!("limit={l}")));
    let url = format!("{base}/v1/tap?{}", query.join("&"));
    runtime()?.block_on(async {
        let client = reqwest::Client::new();
        let mut resp = get(&client, &url).await?;
        let mut stdout = std::io::stdout().lock();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| Failure::Failed(format!("the tap stream from {base} broke: {e}")))?;
            let Some(chunk) = chunk else { break };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Some(n) = skipped(&line) {
                    eprintln!("usage tap: {n} sampled events skipped (this tap fell behind)");
                    continue;
                }
                if stdout.write_all(&line).and_then(|_| stdout.flush()).is_err() {
                    return Ok(()); // stdout closed (e.g. `| head`)
                }
            }
        }
        Ok(())
    })
}

/// The gateway's note that a slow tap missed `n` sampled events.
fn skipped(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("skipped")?.as_u64()
}
