//! `[gateway]` and `[[gateway.keys]]`.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use usage_core::config::units;
use usage_core::{ConfigError, Secret};

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The bearer key (string, `{ env = "VAR" }` or `{ file = "/path" }`).
    pub key: Secret,
    /// A name for logs and metrics (never the key itself).
    pub name: Option<String>,
    /// Binds the key to a project: events carrying a different `project` are refused.
    pub project: Option<String>,
    /// Events per second this key may send (token bucket); default `gateway.rate_limit`.
    pub rate_limit: Option<f64>,
    /// Bucket size in events; default 2 seconds' worth.
    pub burst: Option<f64>,
}

/// `[gateway]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Listen address.
    pub listen: String,
    /// Largest request body (compressed), default 10MiB; bodies inflate to at most 8x this.
    #[serde(deserialize_with = "units::bytes")]
    pub max_body: usize,
    /// Events per request, default 10000.
    pub max_events: usize,
    /// How long a repeated Idempotency-Key is answered from memory, default 10m.
    #[serde(deserialize_with = "units::duration")]
    pub idempotency_window: Duration,
    /// How many Idempotency-Keys are remembered at most.
    pub idempotency_max_keys: usize,
    /// How long a request waits for its events to be durable, default 10s.
    #[serde(deserialize_with = "units::duration")]
    pub accept_timeout: Duration,
    /// Accept event kinds this binary does not know (their schema is inferred).
    pub allow_unknown_kinds: bool,
    /// Default events/s per key (none: unlimited).
    pub rate_limit: Option<f64>,
    /// Where refused records are kept (default `<pipeline.data_dir>/rejected`).
    pub rejected_dir: Option<PathBuf>,
    /// API keys. At least one is required.
    pub keys: Vec<KeyConfig>,
}

/// What every deployed producer sends at most in one request: Daydream's reporter
/// sends up to 500 events and 1 MiB, so smaller limits would refuse its batches.
pub const MIN_MAX_EVENTS: usize = 500;
/// See [`MIN_MAX_EVENTS`].
pub const MIN_MAX_BODY: usize = 1 << 20;

impl GatewayConfig {
    /// Checks the limits admit what deployed producers send; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_events < MIN_MAX_EVENTS {
            return Err(ConfigError::key(
                "gateway.max_events",
                format!(
                    "{} is below {MIN_MAX_EVENTS}, the batch Daydream's reporter sends",
                    self.max_events
                ),
            ));
        }
        if self.max_body < MIN_MAX_BODY {
            return Err(ConfigError::key(
                "gateway.max_body",
                format!(
                    "{} bytes is below 1MiB, the body Daydream's reporter sends",
                    self.max_body
                ),
            ));
        }
        Ok(())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            max_body: 10 << 20,
            max_events: 10_000,
            idempotency_window: Duration::from_secs(600),
            idempotency_max_keys: 100_000,
            accept_timeout: Duration::from_secs(10),
            allow_unknown_kinds: false,
            rate_limit: None,
            rejected_dir: None,
            keys: Vec::new(),
        }
    }
}
