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
//! 401/403, split on 413, the spool. Records are built and handed straight to the
//! OTLP exporter, with no SDK batch processor in between, so there is no second
//! queue where records could silently drop, and every export result is counted.
//! HTTP goes through this crate's own async client, so no combination of
//! `opentelemetry-otlp` features can make it panic with "no reactor running".
//!
//! ```toml
//! [exporters.otel]
//! type = "otlp"
//! endpoint = "http://collector:4318"   # else OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318
//! protocol = "http/protobuf"           # or "http/json"
//! [exporters.otel.headers]
//! "x-api-key" = { env = "OTLP_KEY" }
//! ```

mod client;
mod config;
mod exporter;
mod record;

/// The mapping to OTLP protobuf and back, shared with the gateway's receiver.
pub use usage_otlp_proto::{opentelemetry_proto, proto, receive};

pub use config::{OtlpConfig, Protocol};
pub use exporter::{OtlpExporter, FACTORY};
pub use record::{attributes_of, ID_ATTRIBUTE};

usage_core::register_exporter!(FACTORY);
