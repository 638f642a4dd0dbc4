//! # usage-clickhouse
//!
//! ClickHouse exporter. One table per kind (`table = "{kind}"`), created from the
//! event schema when missing: a `ReplacingMergeTree` partitioned by `toYYYYMM(ts)`
//! whose sorting key ends with the event id, so duplicates collapse (`FINAL` or
//! after merges). When a kind gains a field, the column is added; columns are never
//! dropped or retyped, and a type conflict pauses the exporter with an error naming
//! the table, the column and both types.
//!
//! Whole batches are inserted as RowBinary with LZ4; a retried batch is the same
//! batch, with an `insert_deduplication_token` where the server supports one.
//! Current servers get `DateTime64(6)`, `LowCardinality`, `Bool` and `Map`; older
//! ones (e.g. Debian's 18.16) get `DateTime` plus an exact `ts_us`, `UInt8` and JSON
//! text for string maps. `usage schema clickhouse` prints the DDL.
//!
//! ```toml
//! [exporters.warehouse]
//! type = "clickhouse"
//! url = "http://clickhouse:8123"
//! database = "usage"
//! user = "usage"
//! password = { env = "CLICKHOUSE_PASSWORD" }
//! [exporters.warehouse.order_by]
//! relay_usage = "(project, chain, api_method, ts, id)"
//! ```

mod blocks;
mod config;
pub mod ddl;
pub mod errors;
mod exporter;
mod rowbinary;

pub use config::{ClickHouseConfig, InsertCompression};
pub use exporter::{ClickHouseExporter, FACTORY};

usage_core::register_exporter!(FACTORY);
