//! `usage check`: validate config, list exporter types and instances, run healthchecks.

use crate::{load_config, Failure, Outcome};
use std::path::PathBuf;
use std::time::Duration;
use usage_core::registry::registered_exporters;
use usage_core::Pipeline;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Healthcheck timeout per exporter, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = usage_core::config::units::parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    let config = load_config(config)?;
    println!("config: ok");
    println!("\nregistered exporter types:");
    for f in registered_exporters() {
        println!("  {:<12} {}", f.type_name, f.description);
    }
    // The spool is only looked at: it may belong to a running gateway, and a check
    // must not recover, roll or lock it.
    if let Some(spool) = &config.spool {
        match usage_core::inspect_spool(&spool.path) {
            Ok(i) => println!(
                "\nspool: {} ({} segments, end seq {}, {})",
                spool.path.display(),
                i.segments.len(),
                i.end_seq,
                i.writer_pid
                    .map_or("no writer now".to_string(), |p| format!("in use by pid {p}"))
            ),
            Err(_) => println!("\nspool: {} (not created yet)", spool.path.display()),
        }
    }
    let without_spool = usage_core::UsageConfig {
        spool: None,
        ..config.clone()
    };
    let pipeline = Pipeline::from_config(&without_spool)?;
    println!("\nexporter instances:");
    if config.exporters.is_empty() {
        println!(
            "  file         (default: no [exporters] configured) -> {}",
            config.pipeline.data_dir.display()
        );
    }
    for e in &config.exporters {
        let kinds = e
            .options
            .events
            .as_ref()
            .map_or("all kinds".to_string(), |k| k.join(", "));
        let off_by_default = e.options.enabled.is_none()
            && usage_core::registry::exporter_factory(&e.type_name).is_some_and(|f| !(f.enabled_by_default)(e));
        let state = if e.options.enabled == Some(false) {
            "  (disabled: enabled = false; its keys are checked)"
        } else if off_by_default {
            "  (off: a key it needs is missing, see its docs; set enabled = true to force it)"
        } else {
            ""
        };
        println!("  {:<12} type {:<10} events: {kinds}{state}", e.name, e.type_name);
    }
    println!("\nhealthchecks:");
    let results = pipeline.healthcheck_blocking(args.timeout);
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("  {name:<12} ok"),
            Err(reason) => {
                failed += 1;
                println!("  {name:<12} FAILED: {reason}");
            }
        }
    }
    let _ = pipeline.shutdown_blocking(Duration::from_secs(5));
    if failed > 0 {
        Err(Failure::Failed(format!(
            "{failed} of {} healthchecks failed",
            results.len()
        )))
    } else {
        Ok(())
    }
}
