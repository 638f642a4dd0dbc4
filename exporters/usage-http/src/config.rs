//! The `[exporters.<name>] type = "http"` keys.

use serde::Deserialize;
use std::time::Duration;
use usage_core::Secret;

/// `[exporters.<name>] type = "http"` keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Endpoint, e.g. `https://api.example.com/v1/metrics`.
    pub url: String,
    /// API key (string, `{ env = "VAR" }` or `{ file = "/path" }`); re-read on every
    /// request, so rotating the env var or file is picked up. Without a key the
    /// instance is disabled unless `enabled = true`.
    pub key: Option<Secret>,
    /// Request timeout (default 10s).
    #[serde(default, deserialize_with = "usage_core::config::units::opt_duration")]
    pub timeout: Option<Duration>,
    /// gzip the body (default on).
    #[serde(default = "yes")]
    pub gzip: bool,
}

fn yes() -> bool {
    true
}
