//! Configuration: defaults, then a TOML file (`usage.toml`, or the path in
//! `USAGE_CONFIG`), then `USAGE_...` environment variables with `__` for nesting
//! (`USAGE_PIPELINE__QUEUE_CAPACITY=100000`, `USAGE_EXPORTERS__MAIN__TYPE=kafka`).
//!
//! Every key is listed with its default in `docs/configuration.md`.

mod env;
pub(crate) mod secret;
mod spool;
pub mod suggest;
pub mod units;

use env::check_env_sections;
pub use env::env_provider;

pub use spool::{FsyncMode, SpoolConfig};

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem. The message names the key path and the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl ConfigError {
    /// An error about one key.
    pub fn key(path: impl fmt::Display, message: impl fmt::Display) -> Self {
        ConfigError(format!("{path}: {message}"))
    }

    /// A free-form error.
    pub fn msg(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }

    pub(crate) fn from_figment(err: figment::Error, prefix: &str) -> Self {
        Self::from_figment_with(err, prefix, &[])
    }

    /// [`ConfigError::from_figment`], suggesting from `more` names as well as the
    /// ones serde expected (an exporter's section also takes the common options).
    pub(crate) fn from_figment_with(err: figment::Error, prefix: &str, more: &[&str]) -> Self {
        let lines: Vec<String> = err
            .into_iter()
            .map(|e| {
                let key = prefix
                    .split('.')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .chain(e.path.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(".");
                let origin = match (&e.metadata, &e.profile) {
                    (Some(md), _) if md.name.contains("environment") && !e.path.is_empty() => {
                        format!(" (from env USAGE_{})", e.path.join("__").to_ascii_uppercase())
                    }
                    (Some(md), _) => match &md.source {
                        Some(src) => format!(" (in {src})"),
                        None => String::new(),
                    },
                    _ => String::new(),
                };
                let hint = match &e.kind {
                    figment::error::Kind::UnknownField(word, expected)
                    | figment::error::Kind::UnknownVariant(word, expected) => {
                        suggest::hint(word, expected.iter().chain(more).copied())
                    }
                    _ => String::new(),
                };
                if key.is_empty() {
                    format!("{}{hint}{origin}", e.kind)
                } else {
                    format!("{key}: {}{hint}{origin}", e.kind)
                }
            })
            .collect();
        ConfigError(lines.join("; "))
    }
}

/// What emit does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Drop the new event and count it (`dropped.queue_full`). Emit never blocks.
    #[default]
    DropNewest,
    /// Wait up to `block_timeout` for space, then drop and count it.
    BlockWithTimeout,
}

/// `[pipeline]`: the queue, batching and retry defaults for every exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// `false` turns the sink into a no-op.
    pub enabled: bool,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// `service.instance.id`; default `hostname-pid`.
    pub service_instance_id: Option<String>,
    /// Where dead-letter files (and the default `file` exporter's data) go.
    pub data_dir: PathBuf,
    /// Ingest queue bound in events.
    pub queue_capacity: usize,
    /// Ingest queue bound in bytes (events' approximate in-memory size).
    #[serde(deserialize_with = "units::bytes")]
    pub queue_max_bytes: usize,
    /// What emit does when the queue is full.
    pub full_policy: FullPolicy,
    /// Longest wait with `full_policy = "block_with_timeout"`.
    #[serde(deserialize_with = "units::duration")]
    pub block_timeout: Duration,
    /// Events per batch.
    pub batch_max_events: usize,
    /// Bytes per batch.
    #[serde(deserialize_with = "units::bytes")]
    pub batch_max_bytes: usize,
    /// Longest an event waits for its batch to fill.
    #[serde(deserialize_with = "units::duration")]
    pub flush_interval: Duration,
    /// Deadline for one export call; a timeout is retried.
    #[serde(deserialize_with = "units::duration")]
    pub export_timeout: Duration,
    /// First retry backoff (full jitter, doubling).
    #[serde(deserialize_with = "units::duration")]
    pub retry_base: Duration,
    /// Largest retry backoff.
    #[serde(deserialize_with = "units::duration")]
    pub retry_max: Duration,
    /// How often a paused exporter is probed.
    #[serde(deserialize_with = "units::duration")]
    pub probe_interval: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            enabled: true,
            service_name: "unknown_service".into(),
            service_instance_id: None,
            data_dir: PathBuf::from("usage-data"),
            queue_capacity: 50_000,
            queue_max_bytes: 64 << 20,
            full_policy: FullPolicy::DropNewest,
            block_timeout: Duration::from_millis(100),
            batch_max_events: 1_000,
            batch_max_bytes: 4 << 20,
            flush_interval: Duration::from_millis(500),
            export_timeout: Duration::from_secs(10),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            probe_interval: Duration::from_secs(30),
        }
    }
}

impl PipelineConfig {
    /// Checks ranges; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("pipeline.queue_capacity", self.queue_capacity),
            ("pipeline.queue_max_bytes", self.queue_max_bytes),
            ("pipeline.batch_max_events", self.batch_max_events),
            ("pipeline.batch_max_bytes", self.batch_max_bytes),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(ConfigError::key(k, "must be greater than 0"));
            }
        }
        for (k, v) in [
            ("pipeline.flush_interval", self.flush_interval),
            ("pipeline.export_timeout", self.export_timeout),
            ("pipeline.retry_base", self.retry_base),
            ("pipeline.probe_interval", self.probe_interval),
        ] {
            if v.is_zero() {
                return Err(ConfigError::key(k, "must be greater than 0"));
            }
        }
        if self.retry_max < self.retry_base {
            return Err(ConfigError::key(
                "pipeline.retry_max",
                format!("{:?} is less than retry_base {:?}", self.retry_max, self.retry_base),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::key("pipeline.service_name", "must not be empty"));
        }
        Ok(())
    }
}

/// Keys every `[exporters.<name>]` section may set besides `type`; the rest belong
/// to the exporter type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExporterOptions {
    /// Kinds this instance receives; default all.
    pub events: Option<Vec<String>>,
    /// `false` skips the instance.
    pub enabled: Option<bool>,
    /// Overrides `pipeline.batch_max_events`.
    pub batch_max_events: Option<usize>,
    /// Overrides `pipeline.batch_max_bytes`.
    #[serde(deserialize_with = "units::opt_bytes")]
    pub batch_max_bytes: Option<usize>,
    /// Overrides `pipeline.flush_interval`.
    #[serde(deserialize_with = "units::opt_duration")]
    pub flush_interval: Option<Duration>,
    /// Overrides `pipeline.export_timeout`.
    #[serde(deserialize_with = "units::opt_duration")]
    pub export_timeout: Option<Duration>,
    /// Overrides `pipeline.retry_base`.
    #[serde(deserialize_with = "units::opt_duration")]
    pub retry_base: Option<Duration>,
    /// Overrides `pipeline.retry_max`.
    #[serde(deserialize_with = "units::opt_duration")]
    pub retry_max: Option<Duration>,
    /// Overrides `pipeline.probe_interval`.
    #[serde(deserialize_with = "units::opt_duration")]
    pub probe_interval: Option<Duration>,
    /// This exporter's own queue bound in events (default `pipeline.queue_capacity`).
    pub queue_max_events: Option<usize>,
    /// This exporter's own queue bound in bytes (default the larger of
    /// `pipeline.queue_max_bytes` and twice the batch bytes).
    #[serde(deserialize_with = "units::opt_bytes")]
    pub queue_max_bytes: Option<usize>,
    /// Batches exported at once (1 to 16), for types that allow more than one;
    /// acknowledgements still advance in batch order.
    pub batches_in_flight: Option<usize>,
}

/// Names of the [`ExporterOptions`] keys (kept in sync by a test).
pub(crate) const OPTION_KEYS: [&str; 12] = [
    "events",
    "enabled",
    "batch_max_events",
    "batch_max_bytes",
    "flush_interval",
    "export_timeout",
    "retry_base",
    "retry_max",
    "probe_interval",
    "queue_max_events",
    "queue_max_bytes",
    "batches_in_flight",
];

/// One `[exporters.<name>]` section: its type, the common options, and the
/// type-specific keys for the exporter's factory.
///
/// Its `Debug` output redacts every value under a key that looks secret
/// (`key`, `password`, `secret`, `token`, `credential`, `auth`, `sasl`).
#[derive(Clone, PartialEq)]
pub struct ExporterSection {
    /// Instance name (the table key).
    pub name: String,
    /// Registered exporter type, e.g. `kafka`.
    pub type_name: String,
    /// Common options.
    pub options: ExporterOptions,
    /// Type-specific keys.
    pub settings: Dict,
}

/// Key names whose values are never printed.
const SECRET_HINTS: [&str; 7] = ["key", "password", "secret", "token", "credential", "auth", "sasl"];

/// Renders settings like TOML-ish text, with secret-looking values replaced by `***`.
fn redacted(dict: &Dict) -> String {
    let items: Vec<String> = dict
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            if SECRET_HINTS.iter().any(|h| lower.contains(h)) {
                format!("{k:?}: ***")
            } else {
                format!("{k:?}: {}", show(v))
            }
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match n.to_f64() {
            Some(f) if n.to_i128().is_none() => f.to_string(),
            _ => n.to_i128().map_or_else(|| "?".into(), |i| i.to_string()),
        },
        Value::Empty(..) => "none".into(),
        Value::Dict(_, d) => redacted(d),
        Value::Array(_, a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
    }
}

impl fmt::Debug for ExporterSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterSection")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("options", &self.options)
            .field("settings", &format_args!("{}", redacted(&self.settings)))
            .finish()
    }
}

impl ExporterSection {
    /// A section built in code (no config file).
    pub fn new(name: impl Into<String>, type_name: impl Into<String>) -> Self {
        ExporterSection {
            name: name.into(),
            type_name: type_name.into(),
            options: ExporterOptions::default(),
            settings: Dict::new(),
        }
    }

    /// Deserializes the type-specific keys into the exporter's own config struct.
    /// Errors are prefixed with `exporters.<name>.`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Value::from(self.settings.clone())
            .deserialize::<T>()
            .map_err(|e| ConfigError::from_figment_with(e, &format!("exporters.{}", self.name), &OPTION_KEYS))
    }

    /// Sets a type-specific key (for sections built in code and tests).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.settings.insert(key.to_string(), value.into());
        self
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageConfig {
    /// `[pipeline]`.
    pub pipeline: PipelineConfig,
    /// `[spool]`: the crash-safe write-ahead log (off when absent).
    pub spool: Option<SpoolConfig>,
    /// `[exporters.<name>]`, sorted by name. Empty means the default `file` exporter.
    pub exporters: Vec<ExporterSection>,
    /// `[gateway]`, read by the `usage gateway` command (see [`UsageConfig::gateway`]).
    pub gateway: Option<Dict>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    pipeline: PipelineConfig,
    spool: Option<SpoolConfig>,
    exporters: BTreeMap<String, Dict>,
    gateway: Option<Dict>,
}

impl UsageConfig {
    /// Loads defaults, then `usage.toml` (or `$USAGE_CONFIG`, which must exist), then
    /// `USAGE_...` environment variables.
    pub fn load() -> Result<Self, ConfigError> {
        match std::env::var_os("USAGE_CONFIG") {
            Some(p) => Self::load_file(Path::new(&p), true),
            None => Self::load_file(Path::new("usage.toml"), false),
        }
    }

    /// Loads defaults, then the given TOML file, then environment variables.
    /// With `required`, a missing file is an error.
    pub fn load_file(path: &Path, required: bool) -> Result<Self, ConfigError> {
        if required && !path.is_file() {
            return Err(ConfigError::msg(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        let file = if required {
            Toml::file_exact(path)
        } else {
            Toml::file(path)
        };
        check_env_sections(std::env::vars_os())?;
        Self::from_figment(Figment::new().merge(file).merge(env_provider()))
    }

    /// Parses TOML text only (no environment), e.g. in tests.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_figment(Figment::new().merge(Toml::string(text)))
    }

    /// Extracts from any figment (add your own providers).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawConfig = figment.extract().map_err(|e| ConfigError::from_figment(e, ""))?;
        raw.pipeline.validate()?;
        let mut exporters = Vec::with_capacity(raw.exporters.len());
        for (name, mut dict) in raw.exporters {
            exporters.push(split_section(name, &mut dict)?);
        }
        Ok(UsageConfig {
            pipeline: raw.pipeline,
            spool: raw.spool,
            exporters,
            gateway: raw.gateway,
        })
    }
}

impl UsageConfig {
    /// The `[gateway]` section deserialized into `T` (defaults when absent); errors
    /// are prefixed with `gateway.`.
    pub fn gateway<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Value::from(self.gateway.clone().unwrap_or_default())
            .deserialize::<T>()
            .map_err(|e| ConfigError::from_figment(e, "gateway"))
    }
}

fn split_section(name: String, dict: &mut Dict) -> Result<ExporterSection, ConfigError> {
    let prefix = format!("exporters.{name}");
    let type_name = match dict.remove("type") {
        Some(Value::String(_, t)) if !t.trim().is_empty() => t,
        Some(other) => {
            return Err(ConfigError::key(
                format!("{prefix}.type"),
                format!("must be an exporter type name, got {other:?}"),
            ))
        }
        None => return Err(ConfigError::key(format!("{prefix}.type"), "is missing")),
    };
    let mut common = Dict::new();
    for k in OPTION_KEYS {
        if let Some(v) = dict.remove(k) {
            common.insert(k.to_string(), v);
        }
    }
    let options: ExporterOptions = Value::from(common)
        .deserialize()
        .map_err(|e| ConfigError::from_figment(e, &prefix))?;
    if let Some(kinds) = &options.events {
        if kinds.is_empty() {
            return Err(ConfigError::key(
                format!("{prefix}.events"),
                "is empty; leave it out to receive every kind",
            ));
        }
    }
    for (k, v) in [
        ("batch_max_events", options.batch_max_events),
        ("queue_max_events", options.queue_max_events),
    ] {
        if v == Some(0) {
            return Err(ConfigError::key(format!("{prefix}.{k}"), "must be greater than 0"));
        }
    }
    Ok(ExporterSection {
        name,
        type_name,
        options,
        settings: std::mem::take(dict),
    })
}

#[cfg(test)]
mod tests;
