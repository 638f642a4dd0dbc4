//! # usage
//!
//! The one dependency a service needs: everything of [`usage_core`] (events, the sink,
//! the pipeline, config), plus the exporters chosen by cargo feature, registered
//! without naming their crates:
//!
//! ```toml
//! usage = { version = "0.1", features = ["kafka", "s3"] }   # `file` is on by default
//! ```
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = usage::from_config(&usage::UsageConfig::load()?)?;
//! pipeline.sink().emit(usage::RelayUsage { cu: 10, ..Default::default() });
//! # Ok(()) }
//! ```
//!
//! Your own kinds, through this crate (so the derive is told where it lives):
//!
//! ```
//! #[derive(Debug, Clone, usage::UsageEvent)]
//! #[usage(kind = "storage_usage", crate = "usage")]
//! pub struct StorageUsage {
//!     pub bucket: usage::Text,
//!     pub bytes: u64,
//! }
//! let ev = usage::Event::new(StorageUsage { bucket: "b1".into(), bytes: 42 });
//! assert_eq!(ev.kind(), "storage_usage");
//! ```
//!
//! Features: `file` (default), `kafka`, `s3`, `clickhouse`, `http`, `otlp`, `all`.
//! Each exporter crate is also re-exported under its short name (`usage::kafka`, ...)
//! for its config types.

pub use usage_core::*;

#[cfg(feature = "clickhouse")]
pub use usage_clickhouse as clickhouse;
#[cfg(feature = "file")]
pub use usage_file as file;
#[cfg(feature = "http")]
pub use usage_http as http;
#[cfg(feature = "kafka")]
pub use usage_kafka as kafka;
#[cfg(feature = "otlp")]
pub use usage_otlp as otlp;
#[cfg(feature = "s3")]
pub use usage_s3 as s3;

/// The exporter types this build carries, one per enabled feature.
#[allow(clippy::vec_init_then_push)] // one push per feature, each under its own cfg
pub fn enabled_exporters() -> Vec<&'static ExporterFactory> {
    #[allow(unused_mut)]
    let mut all: Vec<&'static ExporterFactory> = Vec::new();
    #[cfg(feature = "file")]
    all.push(usage_file::exporter_factory());
    #[cfg(feature = "kafka")]
    all.push(usage_kafka::exporter_factory());
    #[cfg(feature = "s3")]
    all.push(usage_s3::exporter_factory());
    #[cfg(feature = "clickhouse")]
    all.push(usage_clickhouse::exporter_factory());
    #[cfg(feature = "http")]
    all.push(usage_http::exporter_factory());
    #[cfg(feature = "otlp")]
    all.push(usage_otlp::exporter_factory());
    all
}

/// Registers every exporter of an enabled feature, so a config can name it. The
/// linker drops a crate nothing refers to, registration included; this refers to
/// each. [`from_config`] and [`builder_from_config`] call it; call it yourself
/// before [`Pipeline::from_config`]. Cheap and idempotent.
pub fn link_exporters() {
    usage_core::registry::link(&enabled_exporters());
}

/// A running pipeline as `config` describes it, any enabled exporter available.
pub fn from_config(config: &UsageConfig) -> Result<Pipeline, ConfigError> {
    link_exporters();
    Pipeline::from_config(config)
}

/// A builder from `config` (add exporters in code, then `build`), any enabled
/// exporter available.
pub fn builder_from_config(config: &UsageConfig) -> Result<PipelineBuilder, ConfigError> {
    link_exporters();
    PipelineBuilder::from_config(config)
}

#[cfg(test)]
mod tests {
    /// Every enabled feature's exporter is in the list, and no other: a feature added
    /// without its line here would leave configs naming it unable to start.
    #[test]
    fn the_enabled_exporters_are_exactly_the_enabled_features() {
        let features = [
            ("clickhouse", cfg!(feature = "clickhouse")),
            ("file", cfg!(feature = "file")),
            ("http", cfg!(feature = "http")),
            ("kafka", cfg!(feature = "kafka")),
            ("otlp", cfg!(feature = "otlp")),
            ("s3", cfg!(feature = "s3")),
        ];
        let want: Vec<&str> = features.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        let mut got: Vec<&str> = super::enabled_exporters().iter().map(|f| f.type_name).collect();
        got.sort();
        assert_eq!(got, want);
        super::link_exporters();
        let registered = usage_core::registry::registered_exporters();
        for name in want {
            assert!(registered.iter().any(|f| f.type_name == name), "{name} not registered");
        }
    }

    #[test]
    #[cfg(feature = "file")]
    fn a_config_naming_an_enabled_exporter_starts() {
        let dir = std::env::temp_dir().join(format!("usage-facade-{}", std::process::id()));
        let cfg = super::UsageConfig::from_toml(&format!(
            "[pipeline]\ndata_dir = {:?}\n[exporters.out]\ntype = \"file\"\n",
            dir.display().to_string()
        ))
        .unwrap();
        let p = super::from_config(&cfg).unwrap();
        assert_eq!(p.exporter_names(), vec!["out"]);
        p.shutdown_blocking(std::time::Duration::from_secs(5)).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The README's code samples, compiled (and run, unless marked `no_run`) as doc
/// tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
