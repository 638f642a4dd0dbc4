//! `[exporters.<name>] type = "clickhouse"` keys.

use serde::Deserialize;
use std::collections::BTreeMap;
use usage_core::Secret;

/// Insert compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InsertCompression {
    /// ClickHouse's LZ4 block compression (default).
    #[default]
    Lz4,
    /// None.
    None,
}

/// The ClickHouse exporter's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, default `http://127.0.0.1:8123`.
    #[serde(default = "default_url")]
    pub url: String,
    /// Database, default `default`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Table name template; `{kind}` is replaced by the event kind.
    #[serde(default = "default_table")]
    pub table: String,
    /// User (default: the server's default user).
    pub user: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// `ORDER BY` per kind for tables this exporter creates, e.g.
    /// `{ relay_usage = "(project, chain, api_method, ts, id)" }`; must end with `id`
    /// so duplicates of an event collapse.
    #[serde(default)]
    pub order_by: BTreeMap<String, String>,
    /// Create missing tables and add missing columns (default on).
    #[serde(default = "yes")]
    pub migrate: bool,
    /// `lz4` (default) or `none`.
    #[serde(default)]
    pub compression: InsertCompression,
    /// A cluster (`remote_servers` name): tables are created and migrated `ON CLUSTER`
    /// as `ReplicatedReplacingMergeTree` `<table>_local` plus a `Distributed` `<table>`
    /// that inserts go to (docs/clickhouse.md, "A cluster").
    pub cluster: Option<String>,
    /// INSERTs in flight at once for one table's rows of a batch, 1-16 (default 1).
    /// Above 1, a block of at least 8,192 rows per INSERT is split into that many
    /// parts, each its own INSERT with its own dedup token, so the server parses
    /// them in parallel. The default sends one INSERT per table and batch: with two
    /// batches in flight (`batches_in_flight`) the server already parses two at
    /// once, in bigger parts.
    #[serde(default = "default_insert_concurrency")]
    pub insert_concurrency: usize,
}

/// The most INSERTs one exporter sends at once.
pub const MAX_INSERT_CONCURRENCY: usize = 16;

fn default_insert_concurrency() -> usize {
    1
}

fn default_url() -> String {
    "http://127.0.0.1:8123".into()
}
fn default_database() -> String {
    "default".into()
}
fn default_table() -> String {
    "{kind}".into()
}
fn yes() -> bool {
    true
}
