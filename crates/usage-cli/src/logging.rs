//! Logs on stderr: what to log from `RUST_LOG` (tracing's filter syntax), else
//! `USAGE_LOG` (a level or the same syntax), else warnings and errors; colour only
//! on a terminal (and never with `NO_COLOR`); JSON lines with `USAGE_LOG_FORMAT=json`.
//! librdkafka's own log lines (the `log` crate) arrive here too.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber; a filter that does not parse is a usage error naming
/// its variable.
pub(crate) fn init() -> Result<(), String> {
    let (var, directives) = match (std::env::var("RUST_LOG"), std::env::var("USAGE_LOG")) {
        (Ok(v), _) if !v.trim().is_empty() => ("RUST_LOG", v),
        (_, Ok(v)) if !v.trim().is_empty() => ("USAGE_LOG", v),
        _ => ("", "warn".to_string()),
    };
    let filter = EnvFilter::builder().parse(&directives).map_err(|e| {
        format!("{var}={directives:?} is not a log filter: {e} (e.g. \"info\" or \"warn,usage_core=debug\")")
    })?;
    let json = match std::env::var("USAGE_LOG_FORMAT").ok().as_deref() {
        None | Some("") | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("USAGE_LOG_FORMAT={other:?}: use \"text\" or \"json\"")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.with_ansi(colour).try_init()
    };
    Ok(())
}
