//! `usage spool inspect DIR` and `usage spool replay DIR --exporter NAME [--from POS]`.

use crate::{load_config, Failure, Outcome};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use usage_core::registry::exporter_factory;
use usage_core::{Batch, ExportError, ExporterContext, Resource, SpoolReplay};

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Segments, bytes, each exporter's cursor and lag, quarantined bytes. Changes nothing.
    Inspect {
        /// The spool directory (`[spool] path`).
        dir: PathBuf,
    },
    /// Send spooled events again to one configured exporter (cursors are not moved).
    Replay {
        /// The spool directory.
        dir: PathBuf,
        /// The `[exporters.<name>]` instance to send to.
        #[arg(long)]
        exporter: String,
        /// First sequence number to send (default: the oldest retained).
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
}

pub(crate) fn run(cmd: Command, config: Option<&PathBuf>) -> Outcome {
    match cmd {
        Command::Inspect { dir } => inspect(dir),
        Command::Replay { dir, exporter, from } => replay(dir, &exporter, from, config),
    }
}

fn inspect(dir: PathBuf) -> Outcome {
    let i = usage_core::inspect_spool(&dir).map_err(|e| Failure::Usage(e.to_string()))?;
    let bytes: u64 = i.segments.iter().map(|s| s.bytes).sum();
    let events: u64 = i.segments.iter().map(|s| s.events).sum();
    println!("spool {}", dir.display());
    match i.writer_pid {
        Some(pid) => println!("  writer: pid {pid} (this look changes nothing)"),
        None => println!("  writer: none"),
    }
    println!(
        "  segments: {}  bytes: {bytes}  events: {events}  end seq: {}",
        i.segments.len(),
        i.end_seq
    );
    println!(
        "  quarantined: {} bytes in {} files",
        i.quarantined_bytes, i.quarantined_files
    );
    if i.damaged_events > 0 {
        println!(
            "  DAMAGED: {} events in damaged records (counted from sequence gaps; bytes go to quarantine/)",
            i.damaged_events
        );
    }
    if i.unreadable_events > 0 {
        println!(
            "  UNREADABLE: {} events whose schema or resource record is damaged in every copy",
            i.unreadable_events
        );
    }
    if i.missing_events > 0 {
        println!(
            "  MISSING: {} events between segments (a segment was deleted or emptied)",
            i.missing_events
        );
    }
    println!(
        "\n  {:<28} {:>12} {:>12} {:>8} {:>10} {:>8}",
        "segment", "first seq", "end seq", "events", "bytes", "damaged"
    );
    for s in &i.segments {
        println!(
            "  {:<28} {:>12} {:>12} {:>8} {:>10} {:>8}",
            s.file, s.base_seq, s.next_seq, s.events, s.bytes, s.damaged_bytes
        );
    }
    println!("\n  {:<20} {:>12} {:>12}", "exporter", "cursor", "lag");
    for c in &i.cursors {
        match &c.seq {
            Ok(s) => println!("  {:<20} {:>12} {:>12}", c.exporter, s, c.lag),
            Err(why) => println!("  {:<20} {:>12} {:>12}  ({why})", c.exporter, "DAMAGED", c.lag),
        }
    }
    if i.cursors.is_empty() {
        println!("  (no cursors yet)");
    }
    Ok(())
}

fn replay(dir: PathBuf, name: &str, from: u64, config: Option<&PathBuf>) -> Outcome {
    let config = load_config(config)?;
    let Some(section) = config.exporters.iter().find(|e| e.name == name) else {
        let names: Vec<&str> = config.exporters.iter().map(|e| e.name.as_str()).collect();
        return Err(Failure::Usage(format!(
            "--exporter {name}: no [exporters.{name}] in the config (configured: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let factory = exporter_factory(&section.type_name).ok_or_else(|| {
        Failure::Usage(format!(
            "exporters.{name}.type: unknown exporter type `{}`",
            section.type_name
        ))
    })?;
    let resource = Arc::new(Resource::new(config.pipeline.service_name.as_str()));
    let ctx = ExporterContext {
        section: section.clone(),
        data_dir: config.pipeline.data_dir.clone(),
        resource: resource.clone(),
    };
    let exporter = (factory.build)(&ctx)?;
    let mut replay = SpoolReplay::open(&dir, from).map_err(|e| Failure::Usage(e.to_string()))?;
    let kinds = section.options.events.clone();
    let wants = |k: &str| kinds.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
    let batch_size = section
        .options
        .batch_max_events
        .unwrap_or(config.pipeline.batch_max_events);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start a runtime: {e}")))?;
    println!(
        "replaying {} from seq {} to {} -> {name}",
        dir.display(),
        replay.position(),
        replay.end()
    );
    let mut sent = 0u64;
    let mut progress = crate::progress::Progress::new();
    let end = replay.end();
    loop {
        progress.line(false, || {
            format!("sent {sent} events, at seq {} of {end}", replay.position())
        });
        let events = replay
            .next_events(batch_size, &wants)
            .map_err(|e| Failure::Failed(format!("reading the spool: {e}")))?;
        if events.is_empty() {
            break;
        }
        let batch = Batch::from_events(events, resource.clone());
        let mut wait = Duration::from_millis(100);
        loop {
            match rt.block_on(exporter.export(&batch)) {
                Ok(()) => break,
                Err(ExportError::Retryable { message, retry_after }) => {
                    let w = retry_after.unwrap_or(wait).max(wait);
                    eprintln!("usage: {name}: {message}; retrying in {w:?}");
                    std::thread::sleep(w);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    return Err(Failure::Failed(format!(
                        "{name} refused the batch at seq {} after {sent} events: {e}",
                        replay.position()
                    )))
                }
            }
        }
        sent += batch.len() as u64;
    }
    progress.line(true, || {
        format!("sent {sent} events, at seq {} of {end}", replay.position())
    });
    progress.finish();
    let _ = rt.block_on(exporter.close());
    println!("replayed {sent} events to {name}");
    Ok(())
}
