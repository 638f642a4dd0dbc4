//! # usage-core
//!
//! Record what users consumed and deliver it without slowing the service down and
//! without losing a billable event.
//!
//! - [`Event`]: an idempotency key ([`EventId`], UUIDv7), the event time
//!   ([`Timestamp`]) and a typed payload of a kind with a declared [`Schema`]:
//!   the built-in [`RelayUsage`], [`OptimizerQos`], [`NetworkEvent`], or your own
//!   declared with [`usage_event!`].
//! - [`UsageSink`]: `emit` never blocks, never panics, works from any thread.
//! - [`Pipeline`]: bounded queue, routing by kind, one isolated queue and worker per
//!   [`Exporter`], retries with backoff, pause on auth failure, dead-letter files,
//!   [`stats`](Pipeline::stats), and `flush`/`shutdown` that report exactly what
//!   was delivered.
//! - [`registry`] and [`UsageConfig`]: exporters chosen in `usage.toml`/env.
//!
//! ```
//! use std::time::Duration;
//! use usage_core::{async_trait, Batch, ExportError, Exporter, Pipeline, RelayUsage};
//!
//! struct Print;
//! #[async_trait]
//! impl Exporter for Print {
//!     async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
//!         for e in batch.iter() {
//!             println!("{}", usage_core::json::to_string(e, batch.resource()));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let pipeline = Pipeline::builder().exporter("print", Print).build()?;
//! pipeline.sink().emit(RelayUsage { project: "acme".into(), cu: 10, ..Default::default() });
//! pipeline.shutdown_blocking(Duration::from_secs(5))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod config;
mod event;
pub mod export;
pub mod fs;
pub mod json;
mod pipeline;
pub mod receive;
pub use export::registry;
mod spool;
pub mod testing;
mod words;

pub use async_trait::async_trait;
pub use config::secret::{Secret, SecretError};
pub use config::{ConfigError, ExporterOptions, ExporterSection, FullPolicy, PipelineConfig, UsageConfig};
pub use event::builtin::{NetworkEvent, OptimizerQos, RelayUsage};
pub use event::id::EventId;
pub use event::kind::{kind_schema, registered_kinds, EventData, EventKind};
pub use event::record::{Record, RecordError};
pub use event::resource::{default_instance_id, Resource};
pub use event::schema::{is_valid_name, FieldDef, FieldType, Schema, RESERVED_FIELD_NAMES};
pub use event::time::{CivilTime, Timestamp, TimestampError};
pub use event::value::{finite_or_zero, FieldValue, OwnedValue, StrMap, Text, Value};
pub use event::Event;
pub use export::batch::{Batch, BatchId};
pub use export::exporter::{ExportError, Exporter};
pub use export::registry::{ExporterContext, ExporterDefaults, ExporterFactory, MAX_BATCHES_IN_FLIGHT};
pub use pipeline::histogram::HistogramSnapshot;
pub use pipeline::report::{DeliveryError, DeliveryReport, ExporterDelivery};
pub use pipeline::sink::UsageSink;
pub use pipeline::stats::{DropStats, ExporterStats, PipelineStats};
pub use pipeline::{AcceptError, Pipeline, PipelineBuilder};
pub use spool::{
    inspect as inspect_spool, CodecError, CursorInfo, FieldBuffer, FsyncMode, RecoveryReport, SegmentInfo,
    SharedFields, SpoolConfig, SpoolError, SpoolInspection, SpoolReplay, SpoolStats, WrittenFields, MAX_EVENT_BYTES,
};
/// Declares an event kind from a struct: its schema, encoding and registration.
///
/// ```
/// use usage_core::{Event, EventKind, FieldType, Text, UsageEvent};
///
/// #[derive(Debug, Clone, PartialEq, UsageEvent)]
/// #[usage(kind = "storage_usage")]
/// /// Bytes stored per bucket, sampled hourly.
/// pub struct StorageUsage {
///     pub bucket: Text,
///     /// Stored as `bytes_stored`: the name in JSON, columns and OTLP attributes.
///     #[usage(rename = "bytes_stored")]
///     pub bytes: u64,
///     pub region: Option<Text>,
/// }
///
/// let schema = StorageUsage::schema();
/// assert_eq!(schema.kind, "storage_usage");
/// assert_eq!(schema.field("bytes_stored").unwrap().ty, FieldType::U64);
/// assert!(schema.field("region").unwrap().nullable);
/// let ev = Event::new(StorageUsage { bucket: "b1".into(), bytes: 42, region: None });
/// assert_eq!(ev.kind(), "storage_usage");
/// assert!(usage_core::kind_schema("storage_usage").is_some());
/// ```
///
/// Struct options: `kind = "..."` (required), `crate = "path"` when `usage_core` is
/// reached by another name (`crate = "usage"` through the facade crate). Field
/// options: `rename = "..."`. Field types are those of [`usage_event!`]: [`Text`],
/// `String`, integers, `f64`/`f32`, `bool`, [`StrMap`], and `Option` of each. The
/// struct must also be `Debug` and `Clone`.
pub use usage_derive::UsageEvent;

/// Used by the crate's macros; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::event::kind::KindRegistration;
    pub use crate::event::Payload;
    pub use crate::export::registry::ExporterRegistration;
    pub use inventory;
}
