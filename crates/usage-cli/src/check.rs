//! `usage check`: validate config, list exporter types and instances, run healthchecks.

use crate::{load_config, Failure, Outcome};
use std::path::PathBuf;
use std::time::Duration;
use usage_core::registry::registered_exporters;
use usage_core::Pipeline;

/// Which file the config came from (`--config`, `$USAGE_CONFIG`, `./usage.toml`), or none.
fn config_file(path: Option<&PathBuf>) -> String {
    match (path, std::env::var_os("USAGE_CONFIG")) {
        (Some(p), _) => format!("{} (--config)", p.display()),
        (None, Some(p)) => format!("{} ($USAGE_CONFIG)", std::path::Path::new(&p).display()),
        (None, None) if std::path::Path::new("usage.toml").is_file() => "./usage.toml".into(),
        (None, None) => "none (defaults; no --config, $USAGE_CONFIG or ./usage.toml)".into(),
    }
}

/// The `USAGE_<SECTION>__<KEY>` variables set, sorted (the ones the config reads).
fn config_vars() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("USAGE_") && k.contains("__"))
        .collect();
    vars.sort();
    vars
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Healthcheck timeout per exporter, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = usage_core::config::units::parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(args: Args, path: Option<&PathBuf>) -> Outcome {
    let config = load_config(path)?;
    // `[gateway]` is read by `usage gateway` alone, but checked here too.
    let gateway = match config.gateway {
        Some(_) => {
            let g: usage_gateway::GatewayConfig = config.gateway()?;
            g.validate()?;
            Some(g)
        }
        None => None,
    };
    println!("config: ok");
    println!("  file: {}", config_file(path));
    // Names only: values may be secrets.
    let vars = config_vars();
    if vars.is_empty() {
        println!("  environment: no USAGE_<SECTION>__<KEY> variables");
    } else {
        println!("  environment: {}", vars.join(", "));
    }
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
    if let Some(gateway) = &gateway {
        let grpc = if gateway.otlp_grpc {
            format!("OTLP/gRPC on {}", gateway.otlp_grpc_listen)
        } else {
            "no OTLP/gRPC".into()
        };
        let admin = gateway
            .admin_listen
            .as_deref()
            .map_or("admin routes on the ingest listener".to_string(), |a| {
                format!("admin on {a}")
            });
        println!(
            "\ngateway: ok (ingest on {}, {grpc}, {admin}, {} keys)",
            gateway.listen,
            gateway.keys.len()
        );
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
        let prefix = format!("USAGE_EXPORTERS__{}__", e.name.to_ascii_uppercase());
        let from_env: Vec<&String> = vars
            .iter()
            .filter(|v| v.to_ascii_uppercase().starts_with(&prefix))
            .collect();
        if !from_env.is_empty() {
            let keys: Vec<String> = from_env
                .iter()
                .map(|v| v[prefix.len()..].to_ascii_lowercase())
                .collect();
            println!("  {:<12} from the environment: {}", "", keys.join(", "));
        }
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
