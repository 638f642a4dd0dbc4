//! # usage-otlp
//!
//! OTLP/HTTP logs exporter. One log record per event:
//!
//! - body = the event kind (`relay_usage`, ...), timestamp = event time;
//! - every field a flat, typed attribute (strings, ints, doubles, bools; a string map
//!   becomes `<field>.<key>` string attributes), plus `event.id`;
//! - resource attributes `service.name` and `service.instance.id`.
//!
//! It rides the usage pipeline: batching, retries (Retry-After honoured), pause on
//! 401/403 and 3xx, split on 413, the spool. Requests are built by
//! `usage-otlp-proto`, the same mapping the gateway's receiver reads back, and posted
//! by this crate's own async client: no SDK processor or exporter in between, so no
//! second queue where records could silently drop, no hidden retries, and every
//! answer is counted.
//!
//! ```toml
//! [exporters.otel]
//! type = "otlp"
//! endpoint = "http://collector:4318"   # else OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318
//! protocol = "http/protobuf"           # or "http/json"
//! [exporters.otel.headers]
//! "x-api-key" = { env = "OTLP_KEY" }
//! ```

mod config;
mod exporter;

/// The mapping to OTLP protobuf and back, shared with the gateway's receiver.
pub use usage_otlp_proto::{opentelemetry_proto, proto, receive};

pub use config::{OtlpConfig, Protocol};
pub use exporter::{OtlpExporter, FACTORY};
pub use usage_otlp_proto::ID_ATTRIBUTE;

usage_core::register_exporter!(FACTORY);
