//! # usage-file
//!
//! The embedded default exporter: NDJSON parts, zstd-compressed (gzip selectable),
//! under a root directory in the layout the S3 exporter shares:
//!
//! ```text
//! <root>/<kind>/year=YYYY/month=MM/day=DD/hour=HH/part-<batch id>.ndjson.zst
//! ```
//!
//! partitioned by **event time**. Registered as exporter type `file`; a pipeline
//! with no configured exporters uses it under `pipeline.data_dir`.
//!
//! ```toml
//! [exporters.local]
//! type = "file"
//! path = "/var/lib/usage"      # default: pipeline.data_dir
//! compression = "zstd"         # or "gzip", "none"
//! ```

mod config;
pub mod encode;
mod exporter;
pub mod layout;
pub mod read;

pub use config::FileConfig;
pub use exporter::{FileExporter, FACTORY};
pub use layout::{Compression, Partition};

usage_core::register_exporter!(FACTORY);

/// docs/exporters.md's complete exporter, compiled and run.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/exporters.md")]
pub struct ExportersDoctests;
