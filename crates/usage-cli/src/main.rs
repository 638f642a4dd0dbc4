//! `usage`: run the demo, read billing totals, check a config, pump synthetic load.

mod admin;
mod check;
mod demo;
mod gateway;
mod interrupt;
mod link;
mod logging;
mod progress;
mod prom;
mod pump;
mod rejected;
mod report;
mod schema;
mod spool;
mod synth;
mod tap;
mod top;

// jemalloc for Rust and, unprefixed, for librdkafka's C code: librdkafka allocates per
// message and frees on its delivery-report thread, which glibc's arenas make costly
// (docs/operations.md, "Allocator"). Built without the `jemalloc` feature: the system's.
#[cfg(all(feature = "jemalloc", unix, not(target_os = "macos")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "usage",
    version,
    about = "Usage events without loss: run the gateway, check a config, report billing totals, replay spools",
    after_help = "Config: -c/--config FILE, else $USAGE_CONFIG, else ./usage.toml if present, then USAGE_<SECTION>__<KEY> variables.\n\
                  Logs: RUST_LOG or USAGE_LOG (default warn), USAGE_LOG_FORMAT=json.\n\
                  Exit codes: 0 done, 1 failed (not delivered, healthcheck failed), 2 bad flags or config."
)]
struct Cli {
    /// Config file (default: $USAGE_CONFIG, else ./usage.toml if present).
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate an RPC service emitting usage through the configured pipeline.
    Demo(demo::Args),
    /// Print billing totals from the file layout.
    Report(report::Args),
    /// Validate a config, list exporter types and instances, run healthchecks.
    Check(check::Args),
    /// Send synthetic events through the configured exporters and report losses.
    Pump(pump::Args),
    /// Print event kinds and their fields.
    Schema(schema::Args),
    /// Run the gateway: /v1/metrics and OTLP/HTTP ingest feeding the configured exporters.
    Gateway(gateway::Args),
    /// Print a live sample of the events a running gateway accepts (NDJSON), from its admin listener.
    Tap(tap::Args),
    /// Show a running gateway's per-exporter rates, queues, lag, drops and pauses.
    Top(top::Args),
    /// Look into a spool directory, or replay it to an exporter.
    #[command(subcommand)]
    Spool(spool::Command),
    /// List the records the gateway refused and kept, or post them to it again.
    #[command(subcommand)]
    Rejected(rejected::Command),
    /// Print a shell completion script: `usage completions bash > /etc/bash_completion.d/usage`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// A failure and the exit code it maps to: 2 for bad input (flags, config), 1 otherwise.
pub(crate) enum Failure {
    Usage(String),
    Failed(String),
}

pub(crate) type Outcome = Result<(), Failure>;

impl From<usage_core::ConfigError> for Failure {
    fn from(e: usage_core::ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// Loads config from `--config`, else `$USAGE_CONFIG`, else `usage.toml` if present.
pub(crate) fn load_config(path: Option<&PathBuf>) -> Result<usage_core::UsageConfig, Failure> {
    let cfg = match path {
        Some(p) => usage_core::UsageConfig::load_file(p, true)?,
        None => usage_core::UsageConfig::load()?,
    };
    Ok(cfg)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Err(msg) = logging::init() {
        eprintln!("usage: error: {msg}");
        return ExitCode::from(2);
    }
    link::link_all();
    let config = cli.config.as_ref();
    let outcome = match cli.command {
        Command::Demo(a) => demo::run(a, config),
        Command::Report(a) => report::run(a),
        Command::Check(a) => check::run(a, config),
        Command::Pump(a) => pump::run(a, config),
        Command::Schema(a) => schema::run(a),
        Command::Gateway(a) => gateway::run(a, config),
        Command::Tap(a) => tap::run(a, config),
        Command::Top(a) => top::run(a, config),
        Command::Spool(c) => spool::run(c, config),
        Command::Rejected(c) => rejected::run(c),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "usage", &mut std::io::stdout());
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("usage: error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("usage: {msg}");
            ExitCode::from(1)
        }
    }
}
