//! # usage-otlp-proto
//!
//! Usage events as OTLP logs, both ways, with no SDK in between:
//!
//! - [`proto`]: events to `ExportLogsServiceRequest` (body = kind, `event.id`, one
//!   typed attribute per field; a string map becomes `<field>.<key>` attributes);
//! - [`receive`]: OTLP/HTTP bodies (protobuf or JSON) back to events, record by record,
//!   refusing only the records that cannot be read.
//!
//! The `otlp` exporter and the gateway's OTLP receiver both build on it, so the
//! gateway does not depend on an exporter.

pub mod proto;
pub mod receive;

/// The OTLP protobuf types, for code that builds or reads requests.
pub use opentelemetry_proto;

/// The attribute holding the event id.
pub const ID_ATTRIBUTE: &str = "event.id";
