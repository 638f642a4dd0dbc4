//! # usage-s3
//!
//! S3 exporter (aws-sdk-s3). Objects land in hive partitions by **event time**:
//!
//! ```text
//! s3://<bucket>/<prefix>/year=YYYY/month=MM/day=DD/hour=HH/part-<batch id>.ndjson.gz
//! ```
//!
//! gzip NDJSON by default (what Athena reads), zstd selectable. The object key is
//! deterministic per batch and written once (`If-None-Match: *`), so a retried or
//! replayed upload is a no-op, and no batch overwrites another's object.
//! Parts roll at 64 MiB (uncompressed) or 5 minutes; large parts use a multipart
//! upload; whatever is buffered is uploaded at shutdown (and survives a crash with
//! the spool on). `usage schema athena` prints the matching table definition.
//!
//! ```toml
//! [exporters.relay_archive]
//! type = "s3"
//! bucket = "relay-usage"
//! prefix = "{kind}"                 # default
//! events = ["relay_usage"]
//! # for S3-compatible stores:
//! endpoint = "http://127.0.0.1:9000"
//! access_key_id = { env = "S3_KEY" }
//! secret_access_key = { env = "S3_SECRET" }
//! ```

mod athena;
mod config;
mod exporter;
mod write_once;

pub use athena::athena_ddl;
pub use config::S3Config;
pub use exporter::{S3Exporter, FACTORY};

usage_core::register_exporter!(FACTORY);
