//! The `[exporters.<name>] type = "otlp"` keys, and the logs URL they resolve to.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use usage_core::Secret;

/// OTLP over HTTP: binary protobuf (default) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Protocol {
    /// `http/protobuf`.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `http/json`.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// `[exporters.<name>] type = "otlp"` keys.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Collector base URL (`/v1/logs` is appended unless present). Default:
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// else `http://localhost:4318`.
    pub endpoint: Option<String>,
    /// `"http/protobuf"` (default) or `"http/json"`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Extra request headers; values may be secrets (`{ env = "VAR" }`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Accept invalid TLS certificates (self-signed test collectors only).
    #[serde(default)]
    pub insecure: bool,
    /// Request timeout (default 10s).
    #[serde(default, deserialize_with = "usage_core::config::units::opt_duration")]
    pub timeout: Option<Duration>,
}

/// The logs URL from config and the standard OTEL_ environment variables.
pub(crate) fn logs_url(configured: Option<&str>) -> String {
    let full = |base: &str| {
        let base = base.trim_end_matches('/');
        if base.ends_with("/v1/logs") {
            base.to_string()
        } else {
            format!("{base}/v1/logs")
        }
    };
    match configured {
        Some(e) => full(e),
        None => match std::env::var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") {
            Ok(e) if !e.is_empty() => e,
            _ => full(&std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|_| "http://localhost:4318".into())),
        },
    }
}
