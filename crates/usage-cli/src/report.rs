//! `usage report`: billing totals from the file layout.

use crate::{Failure, Outcome};
use serde::Deserialize;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::PathBuf;
use twox_hash::XxHash3_64;
use usage_core::{EventId, Timestamp};
use usage_file::encode::decompress;
use usage_file::read::{list_parts, Filter};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Root of the file layout.
    #[arg(long, default_value = "usage-data")]
    dir: PathBuf,
    /// Only events at or after this time (RFC 3339, `YYYY-MM-DD` or `YYYY-MM-DDTHH`, UTC).
    #[arg(long, value_parser = parse_time)]
    from: Option<Timestamp>,
    /// Only events before this time (same forms as --from).
    #[arg(long, value_parser = parse_time)]
    to: Option<Timestamp>,
    /// Count an event id every time it appears. By default a re-sent event (delivery is
    /// at-least-once, and a re-send keeps its id) is counted once; remembering the ids
    /// takes up to about 40 bytes of memory per event.
    #[arg(long)]
    no_dedup: bool,
}

/// RFC 3339, or a UTC date or date-and-hour.
pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    let full = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        13 => format!("{s}:00:00Z"),
        _ => s.to_string(),
    };
    Timestamp::parse_rfc3339(&full)
        .map_err(|_| format!("invalid time {s:?}: use RFC 3339 (2026-11-21T10:00:00Z), 2026-11-21 or 2026-11-21T10"))
}

/// Only what billing needs from a `relay_usage` line.
#[derive(Deserialize)]
struct Row<'a> {
    id: &'a str,
    ts: &'a str,
    project: &'a str,
    chain: &'a str,
    cu: u64,
    success: bool,
    cache_hit: bool,
}

#[derive(Default)]
struct Totals {
    events: u64,
    cu: u64,
    success: u64,
    cache_hits: u64,
}

impl Totals {
    fn add(&mut self, r: &Row<'_>) {
        self.events += 1;
        self.cu += r.cu;
        self.success += u64::from(r.success);
        self.cache_hits += u64::from(r.cache_hit);
    }

    fn merge(&mut self, o: &Totals) {
        self.events += o.events;
        self.cu += o.cu;
        self.success += o.success;
        self.cache_hits += o.cache_hits;
    }
}

fn pct(n: u64, d: u64) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / d as f64)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn run(args: Args) -> Outcome {
    if !args.dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is not a directory (run `usage demo` first, or pass --dir)",
            args.dir.display()
        )));
    }
    if let (Some(f), Some(t)) = (args.from, args.to) {
        if f >= t {
            return Err(Failure::Usage(format!("--from {f} is not before --to {t}")));
        }
    }
    let filter = Filter {
        kind: Some("relay_usage".into()),
        from: args.from,
        to: args.to,
    };
    let parts = list_parts(&args.dir, &filter);
    let mut by_key: BTreeMap<(String, String), Totals> = BTreeMap::new();
    let (mut first, mut last): (Option<Timestamp>, Option<Timestamp>) = (None, None);
    // A copy is the same id within the same project (a tenant's id cannot hide
    // another's event); a copy whose billed content differs is counted as a conflict.
    let mut seen: HashMap<(EventId, u64), u64> = HashMap::new();
    let (mut duplicates, mut conflicts) = (0u64, 0u64);
    let mut scratch = Vec::new();
    let mut progress = crate::progress::Progress::new();
    let mut lines_read = 0u64;
    for (n, part) in parts.iter().enumerate() {
        progress.line(false, || {
            format!("read {n} of {} parts, {lines_read} events", parts.len())
        });
        let bytes = std::fs::read(&part.path).map_err(|e| Failure::Failed(format!("{}: {e}", part.path.display())))?;
        let raw = decompress(&bytes, part.compression)
            .map_err(|e| Failure::Failed(format!("{}: cannot decompress: {e}", part.path.display())))?;
        for (i, line) in raw.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            lines_read += 1;
            let row: Row<'_> = serde_json::from_slice(line)
                .map_err(|e| Failure::Failed(format!("{}:{}: {e}", part.path.display(), i + 1)))?;
            let ts = Timestamp::parse_rfc3339(row.ts)
                .map_err(|e| Failure::Failed(format!("{}:{}: {e}", part.path.display(), i + 1)))?;
            if args.from.is_some_and(|f| ts < f) || args.to.is_some_and(|t| ts >= t) {
                continue;
            }
            if !args.no_dedup {
                let id: EventId = row
                    .id
                    .parse()
                    .map_err(|e| Failure::Failed(format!("{}:{}: id {:?}: {e}", part.path.display(), i + 1, row.id)))?;
                scratch.clear();
                let _ = write!(
                    scratch,
                    "{}\0{}\0{}\0{}\0{}",
                    row.ts, row.chain, row.cu, row.success, row.cache_hit
                );
                let content = XxHash3_64::oneshot(&scratch);
                match seen.entry((id, XxHash3_64::oneshot(row.project.as_bytes()))) {
                    Entry::Occupied(first) => {
                        duplicates += 1;
                        if *first.get() != content {
                            conflicts += 1;
                        }
                        continue;
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(content);
                    }
                }
            }
            first = Some(first.map_or(ts, |f| f.min(ts)));
            last = Some(last.map_or(ts, |l| l.max(ts)));
            by_key
                .entry((row.project.to_string(), row.chain.to_string()))
                .or_default()
                .add(&row);
        }
    }
    progress.line(true, || format!("read {} parts, {lines_read} events", parts.len()));
    progress.finish();
    if by_key.is_empty() {
        println!("no relay_usage events under {} in the given range", args.dir.display());
        return Ok(());
    }
    let header = ["project", "chain", "events", "cu", "success", "cache hits"];
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut total = Totals::default();
    for ((project, chain), t) in &by_key {
        total.merge(t);
        rows.push([
            project.clone(),
            chain.clone(),
            thousands(t.events),
            thousands(t.cu),
            pct(t.success, t.events),
            pct(t.cache_hits, t.events),
        ]);
    }
    rows.push([
        "TOTAL".into(),
        String::new(),
        thousands(total.events),
        thousands(total.cu),
        pct(total.success, total.events),
        pct(total.cache_hits, total.events),
    ]);
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    if let (Some(f), Some(l)) = (first, last) {
        println!(
            "relay_usage under {}: {f} .. {l} ({} parts)\n",
            args.dir.display(),
            parts.len()
        );
    }
    println!("{}", line(&header.map(String::from)));
    println!(
        "{}",
        widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
    );
    for (i, r) in rows.iter().enumerate() {
        if i == rows.len() - 1 {
            println!(
                "{}",
                widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
            );
        }
        println!("{}", line(r));
    }
    if duplicates > 0 {
        println!(
            "\n{} re-sent events (same id in the same project) counted once; --no-dedup counts every copy",
            thousands(duplicates)
        );
    }
    if conflicts > 0 {
        println!(
            "WARNING: {} of them differ from the copy counted (time, chain, cu, success or cache hit): \
             the same id was used for different events; the first copy read was counted",
            thousands(conflicts)
        );
    }
    Ok(())
}
