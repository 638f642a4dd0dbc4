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
    /// Binds the key to a project: events carrying a different `project`, or none,
    /// are refused (and kept).
    pub project: Option<String>,
    /// With `project`: kinds this key may send that carry no `project` field
    /// (`optimizer_qos`, `network_event`); any other kind without one is refused.
    #[serde(default)]
    pub unbound_kinds: Vec<String>,
    /// Events per second this key may send (token bucket); default `gateway.rate_limit`.
    pub rate_limit: Option<f64>,
    /// Bucket size in events; default 2 seconds' worth.
    pub burst: Option<f64>,
}

/// `[gateway]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Listen address of the ingest API (`/v1/metrics`, OTLP/HTTP `/v1/logs`).
    pub listen: String,
    /// Serve OTLP/gRPC (the logs service) on `otlp_grpc_listen`, off by default.
    pub otlp_grpc: bool,
    /// Where OTLP/gRPC is served when `otlp_grpc` is on, default `127.0.0.1:4317`
    /// (the OTLP convention).
    pub otlp_grpc_listen: String,
    /// Serves `/metrics`, `/healthz`, `/readyz` and the tap here, apart from ingest;
    /// unset, they are served on `listen` (health stays on `listen` either way, for
    /// load balancers).
    pub admin_listen: Option<String>,
    /// Largest request body as sent (compressed or not), default 10MiB.
    #[serde(deserialize_with = "units::bytes")]
    pub max_body: usize,
    /// Largest body once inflated (gzip), default 16MiB; inflating stops there.
    #[serde(deserialize_with = "units::bytes")]
    pub max_inflated_body: usize,
    /// Memory an OTLP/JSON body may take once decoded, default 32MiB: its small
    /// objects cost more decoded than sent, so the body's structure is counted first.
    #[serde(deserialize_with = "units::bytes")]
    pub max_decode_bytes: usize,
    /// Events per request, default 10000.
    pub max_events: usize,
    /// Attributes (fields) per event or log record, default 64; a record with more is refused alone.
    pub max_attributes: usize,
    /// Bytes per string value, default 64KiB; a record with a longer one is refused alone.
    #[serde(deserialize_with = "units::bytes")]
    pub max_string_bytes: usize,
    /// Open connections, default 256; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests read, decoded and accepted at once, default 4; more wait up to
    /// `accept_timeout`, then get 503.
    pub max_in_flight: usize,
    /// Time to receive a request's head, default 10s.
    #[serde(deserialize_with = "units::duration")]
    pub header_timeout: Duration,
    /// Time to receive a request's body, default 30s.
    #[serde(deserialize_with = "units::duration")]
    pub body_timeout: Duration,
    /// How long a repeated Idempotency-Key is answered from memory, default 10m.
    #[serde(deserialize_with = "units::duration")]
    pub idempotency_window: Duration,
    /// How many Idempotency-Keys are remembered at most, for each API key.
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

/// Where OTLP/gRPC listens unless `otlp_grpc_listen` says otherwise.
pub const DEFAULT_OTLP_GRPC_LISTEN: &str = "127.0.0.1:4317";

/// What every deployed producer sends at most in one request: Daydream's reporter
/// sends up to 500 events and 1 MiB, so smaller limits would refuse its batches.
pub const MIN_MAX_EVENTS: usize = 500;
/// See [`MIN_MAX_EVENTS`].
pub const MIN_MAX_BODY: usize = 1 << 20;

impl GatewayConfig {
    /// What one record may cost, for both receive paths.
    pub fn record_limits(&self) -> usage_core::receive::RecordLimits {
        usage_core::receive::RecordLimits {
            max_attributes: self.max_attributes,
            max_string_bytes: self.max_string_bytes,
            max_decode_bytes: self.max_decode_bytes,
        }
    }

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
        if self.max_inflated_body < self.max_body {
            return Err(ConfigError::key(
                "gateway.max_inflated_body",
                format!(
                    "{} bytes is below gateway.max_body ({}): an uncompressed body of the largest size would be refused",
                    self.max_inflated_body, self.max_body
                ),
            ));
        }
        for (key, value) in [
            ("gateway.max_attributes", self.max_attributes),
            ("gateway.max_string_bytes", self.max_string_bytes),
            ("gateway.max_connections", self.max_connections),
            ("gateway.max_in_flight", self.max_in_flight),
            ("gateway.max_decode_bytes", self.max_decode_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            ("gateway.header_timeout", self.header_timeout),
            ("gateway.body_timeout", self.body_timeout),
            ("gateway.accept_timeout", self.accept_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::key(key, "must be longer than 0s"));
            }
        }
        Ok(())
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            otlp_grpc: false,
            otlp_grpc_listen: DEFAULT_OTLP_GRPC_LISTEN.into(),
            admin_listen: None,
            max_body: 10 << 20,
            max_inflated_body: 16 << 20,
            max_decode_bytes: 32 << 20,
            max_events: 10_000,
            max_attributes: 64,
            max_string_bytes: 64 << 10,
            max_connections: 256,
            max_in_flight: 4,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
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
