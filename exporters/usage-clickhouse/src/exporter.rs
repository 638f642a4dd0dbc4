//! The ClickHouse exporter: one table per kind, created and migrated from the event
//! schema; each batch inserted as RowBinary (LZ4), one block per table, a large
//! block as several INSERTs at once.

use crate::blocks::{block_token, Blocks, Table};
use crate::config::{ClickHouseConfig, InsertCompression, MAX_INSERT_CONCURRENCY};
use crate::ddl::{self, Flavor};
use crate::errors::{self, Class};
use crate::rowbinary;
use clickhouse::Client;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ConfigError, Event, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    Schema,
};

/// Rows encoded per chunk of an INSERT's body (about 300 KiB of RowBinary): the server
/// parses one chunk while the next is encoded and compressed.
const STREAM_CHUNK_ROWS: usize = 2048;

/// The fewest rows an INSERT is split down to (`insert_concurrency`): smaller parts
/// would cost the server more parts to merge than parallel parsing saves.
const MIN_PART_ROWS: usize = 4 * STREAM_CHUNK_ROWS;

/// Inserts batches into ClickHouse, one table per kind.
pub struct ClickHouseExporter {
    client: Client,
    cfg: ClickHouseConfig,
    flavor: tokio::sync::OnceCell<Flavor>,
    tables: tokio::sync::Mutex<HashMap<String, Table>>,
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct ColumnRow {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// A client error as the pipeline's error.
fn classify(e: clickhouse::error::Error, what: &str) -> ExportError {
    errors::classify(e, what).1
}

impl ClickHouseExporter {
    /// An exporter from settings.
    pub fn new(cfg: ClickHouseConfig, section: &str) -> Result<Self, ConfigError> {
        for (kind, order) in &cfg.order_by {
            if !ddl::order_by_ends_with_id(order) {
                return Err(ConfigError::key(
                    format!("{section}.order_by.{kind}"),
                    format!(
                        "{order:?} must have `id` as its last column, so copies of one event collapse \
                         and distinct events never do"
                    ),
                ));
            }
        }
        if !(1..=MAX_INSERT_CONCURRENCY).contains(&cfg.insert_concurrency) {
            return Err(ConfigError::key(
                format!("{section}.insert_concurrency"),
                format!(
                    "{} is out of range: 1 (one INSERT at a time) to {MAX_INSERT_CONCURRENCY}",
                    cfg.insert_concurrency
                ),
            ));
        }
        if let Some(c) = &cfg.cluster {
            if c.trim().is_empty() {
                return Err(ConfigError::key(format!("{section}.cluster"), "must name a cluster"));
            }
        }
        let mut client = Client::default()
            .with_url(&cfg.url)
            .with_database(&cfg.database)
            .with_validation(false)
            .with_compression(match cfg.compression {
                InsertCompression::Lz4 => clickhouse::Compression::Lz4,
                InsertCompression::None => clickhouse::Compression::None,
            });
        if let Some(u) = &cfg.user {
            client = client.with_user(u);
        }
        if let Some(p) = &cfg.password {
            client = client.with_password(
                p.expose()
                    .map_err(|e| ConfigError::key(format!("{section}.password"), e))?,
            );
        }
        Ok(ClickHouseExporter {
            client,
            cfg,
            flavor: tokio::sync::OnceCell::new(),
            tables: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The server generation (asked once).
    pub async fn flavor(&self) -> Result<Flavor, ExportError> {
        self.flavor
            .get_or_try_init(|| async {
                let v: String = self
                    .client
                    .query("SELECT version()")
                    .fetch_one()
                    .await
                    .map_err(|e| classify(e, "SELECT version()"))?;
                let f = Flavor::from_version(&v);
                tracing::info!(url = %usage_core::export::redact_url(&self.cfg.url), version = %v, flavor = ?f, "clickhouse server detected");
                Ok(f)
            })
            .await
            .copied()
    }

    fn target<'a>(&'a self, table: &'a str) -> ddl::Target<'a> {
        ddl::Target {
            database: &self.cfg.database,
            table,
            cluster: self.cfg.cluster.as_deref(),
        }
    }

    fn table_name(&self, kind: &str) -> String {
        self.cfg.table.replace("{kind}", kind)
    }

    /// Creates the kind's table or adds missing columns; never drops or retypes.
    async fn ensure_table(&self, schema: &Schema) -> Result<Table, ExportError> {
        let flavor = self.flavor().await?;
        let name = self.table_name(&schema.kind);
        let wanted = ddl::columns(schema, flavor);
        let existing: Vec<ColumnRow> = self
            .client
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ?")
            .bind(&self.cfg.database)
            .bind(&name)
            .fetch_all()
            .await
            .map_err(|e| classify(e, "reading system.columns"))?;
        let full = format!("{}.{}", self.cfg.database, name);
        if existing.is_empty() {
            if !self.cfg.migrate {
                return Err(ExportError::paused(format!(
                    "clickhouse table {full} does not exist and migrate = false"
                )));
            }
            let order = self
                .cfg
                .order_by
                .get(schema.kind.as_ref())
                .cloned()
                .unwrap_or_else(|| ddl::default_order_by(schema));
            for sql in ddl::create_statements(self.target(&name), schema, flavor, &order) {
                self.client
                    .query(&sql)
                    .execute()
                    .await
                    .map_err(|e| classify(e, &format!("creating {full}")))?;
            }
            tracing::info!(table = %full, "clickhouse table created");
        } else {
            for col in &wanted {
                match existing.iter().find(|c| c.name == col.name) {
                    Some(have) if ddl::compatible(&have.ty, &col.ty) => {}
                    Some(have) => {
                        // Pause: the data waits while an operator resolves the conflict.
                        return Err(ExportError::paused(format!(
                            "clickhouse table {full} column `{}` has type {} but kind `{}` needs {}; \
                             columns are never retyped automatically: migrate it by hand",
                            col.name, have.ty, schema.kind, col.ty
                        )));
                    }
                    None if self.cfg.migrate => {
                        for sql in ddl::add_column_statements(self.target(&name), col) {
                            self.client
                                .query(&sql)
                                .execute()
                                .await
                                .map_err(|e| classify(e, &format!("altering {full}")))?;
                        }
                        tracing::warn!(table = %full, column = %col.name, ty = %col.ty, "clickhouse column added");
                    }
                    None => {
                        return Err(ExportError::paused(format!(
                            "clickhouse table {full} lacks column `{}` and migrate = false",
                            col.name
                        )))
                    }
                }
            }
        }
        Ok(Table {
            name,
            schema: schema.clone(),
            columns: wanted,
        })
    }

    async fn table_for(&self, e: &Event) -> Result<Table, ExportError> {
        let mut tables = self.tables.lock().await;
        if let Some(t) = tables.get(e.kind()) {
            if t.schema == *e.schema() {
                return Ok(t.clone());
            }
        }
        let t = self.ensure_table(e.schema()).await?;
        tables.insert(e.kind().to_string(), t.clone());
        Ok(t)
    }

    /// One INSERT of one block. Its dedup token is the block's own (see [`block_token`]).
    async fn insert(&self, table: &Table, events: &[&Event], batch: &Batch, flavor: Flavor) -> Result<(), ExportError> {
        let cols: Vec<String> = table.columns.iter().map(|c| ddl::ident(&c.name)).collect();
        let sql = format!(
            "INSERT INTO {}.{} ({}) FORMAT RowBinary",
            ddl::ident(&self.cfg.database),
            ddl::ident(&table.name),
            cols.join(", ")
        );
        let mut insert = self.client.insert_formatted_with(sql);
        if flavor == Flavor::Modern {
            // A retried block carries the same token: the server drops the repeat.
            insert = insert.with_setting("insert_deduplication_token", block_token(batch, &table.name, events));
        }
        if self.cfg.cluster.is_some() {
            // Answer once the shards have the rows (and see the token), not when queued.
            insert = insert.with_setting("insert_distributed_sync", "1");
        }
        let what = format!("insert into {}.{}", self.cfg.database, table.name);
        // Streamed in chunks: the server parses one while the next is encoded (and
        // compressed). Still one INSERT, so still one block and one dedup token.
        let mut sent = Ok(());
        for chunk in events.chunks(STREAM_CHUNK_ROWS) {
            // Room for Lava's relay_usage rows (~200 bytes) without regrowing mid-chunk.
            let mut rows = Vec::with_capacity(chunk.len() * 256);
            rowbinary::encode(
                &mut rows,
                chunk.iter().copied(),
                &table.columns,
                flavor,
                batch.resource(),
            );
            sent = insert.send(bytes::Bytes::from(rows)).await;
            if sent.is_err() {
                break;
            }
        }
        let sent = match sent {
            Ok(()) => insert.end().await,
            Err(e) => Err(e),
        };
        let Err(e) = sent else { return Ok(()) };
        let (class, error) = errors::classify(e, &what);
        if class == Class::Schema {
            // Dropped or recreated by an operator: re-create or migrate on the retry.
            tracing::warn!(table = %table.name, %error, "clickhouse table changed; re-reading its definition");
            self.tables.lock().await.clear();
        }
        Err(error)
    }
}

/// A block's rows as up to `concurrency` INSERTs of at least [`MIN_PART_ROWS`] rows
/// each (one INSERT for a smaller block), in order, as equal as can be.
fn parts<'a, 'e>(events: &'a [&'e Event], concurrency: usize) -> std::slice::Chunks<'a, &'e Event> {
    let parts = (events.len() / MIN_PART_ROWS).clamp(1, concurrency.max(1));
    events.chunks(events.len().div_ceil(parts).max(1))
}

#[async_trait]
impl Exporter for ClickHouseExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let flavor = self.flavor().await?;
        let mut blocks = Blocks::default();
        for slice in batch.slices() {
            let Some(first) = slice.first() else { continue };
            let table = self.table_for(first).await?;
            // A slice is one kind; events decoded at run time may still carry a newer schema.
            if slice.iter().all(|e| *e.schema() == table.schema) {
                blocks.add(&table, slice);
            } else {
                for e in slice {
                    let t = self.table_for(e).await?;
                    blocks.add(&t, std::iter::once(e));
                }
            }
        }
        // Rows have no order in a table: the next batch may be encoded and sent
        // while this one's INSERTs run.
        batch.handed_off();
        for (table, events) in &blocks.blocks {
            // In parts sent at once, each its own INSERT and token. The split depends
            // only on the block, so a retried batch repeats the same parts and tokens:
            // the server drops the parts that had arrived. Every part runs to its end
            // (none is cancelled when another fails), then the first error is returned.
            let inserts =
                parts(events, self.cfg.insert_concurrency).map(|part| self.insert(table, part, batch, flavor));
            for result in futures_util::future::join_all(inserts).await {
                result?;
            }
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(|e| classify(e, "SELECT 1"))
    }

    async fn probe(&self) -> Result<(), ExportError> {
        // Re-read table definitions: the pause may have been a schema conflict an operator fixed.
        let kinds: Vec<Schema> = self.tables.lock().await.drain().map(|(_, t)| t.schema).collect();
        for s in &kinds {
            self.ensure_table(s).await?;
        }
        self.healthcheck().await
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let section = format!("exporters.{}", ctx.section.name);
    let cfg: ClickHouseConfig = ctx.section.parse()?;
    Ok(Box::new(ClickHouseExporter::new(cfg, &section)?))
}

/// The `clickhouse` exporter type.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "clickhouse",
    description: "RowBinary inserts into a ReplacingMergeTree table per kind, created and migrated from the schema",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(100_000),
        batch_max_bytes: Some(32 << 20),
        flush_interval: Some(Duration::from_secs(1)),
        batches_in_flight: Some(2),
    },
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::parses_as::<crate::config::ClickHouseConfig>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use usage_core::{ExporterSection, RelayUsage, Resource};

    fn relays(n: u64) -> Batch {
        let events = (0..n)
            .map(|cu| {
                Event::new(RelayUsage {
                    cu,
                    ..Default::default()
                })
            })
            .collect();
        Batch::from_events(events, Arc::new(Resource::default()))
    }

    #[test]
    fn a_large_block_goes_out_in_parts_with_tokens_of_their_own() {
        let batch = relays(100_000);
        let all: Vec<&Event> = batch.iter().collect();
        let sizes = |concurrency| parts(&all, concurrency).map(<[_]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(2), [50_000, 50_000]);
        assert_eq!(sizes(3), [33_334, 33_334, 33_332]);
        assert_eq!(sizes(1), [100_000], "one INSERT at a time");
        assert_eq!(sizes(16).len(), 12, "no part under MIN_PART_ROWS");
        assert_eq!(parts(&all[..MIN_PART_ROWS * 2 - 1], 2).count(), 1, "too small to split");
        let tokens: Vec<String> = parts(&all, 2).map(|p| block_token(&batch, "relay_usage", p)).collect();
        assert_ne!(
            tokens[0], tokens[1],
            "the server would keep only one part under one token"
        );
        let again: Vec<String> = parts(&all, 2).map(|p| block_token(&batch, "relay_usage", p)).collect();
        assert_eq!(tokens, again, "a retry repeats the parts and their tokens");
    }

    #[test]
    fn insert_concurrency_out_of_range_is_refused_naming_the_key() {
        for bad in [0, MAX_INSERT_CONCURRENCY + 1] {
            let cfg: ClickHouseConfig = ExporterSection::new("ch", "clickhouse")
                .set("insert_concurrency", bad as i64)
                .parse()
                .unwrap();
            let Err(e) = ClickHouseExporter::new(cfg, "exporters.ch") else {
                panic!("{bad} was accepted");
            };
            let e = e.to_string();
            assert!(
                e.contains("exporters.ch.insert_concurrency") && e.contains(&bad.to_string()),
                "{e}"
            );
        }
    }
}
