//! `custom_event`: a kind of your own, declared once with `#[derive(UsageEvent)]`, then
//! exported like the built-in ones: to the `file` exporter, and to ClickHouse when
//! `CLICKHOUSE_URL` is set, where the `clickhouse` exporter creates its table from
//! the declared schema (typed columns, `Nullable` for `Option`, a `Map` for the tags).
//!
//! ```text
//! cargo run -p usage-examples --example custom_event
//! CLICKHOUSE_URL=http://127.0.0.1:8123 cargo run -p usage-examples --example custom_event
//! usage schema clickhouse     # the DDL it runs, for review (built-in kinds)
//! ```

use std::time::Duration;
use usage_core::{EventKind, Pipeline, StrMap, Text, UsageConfig, UsageEvent};

/// Bytes stored per tenant and bucket, sampled hourly: bill GB-hours from it.
#[derive(Debug, Clone, PartialEq, UsageEvent)]
#[usage(kind = "storage_usage")]
pub struct StorageUsage {
    pub tenant: Text,
    pub bucket: Text,
    pub bytes: u64,
    pub objects: u64,
    pub region: Option<Text>,
    pub tags: StrMap,
}

/// File always; ClickHouse too when `clickhouse_url` is given.
fn config(data_dir: &str, clickhouse_url: Option<&str>, table: &str) -> Result<UsageConfig, usage_core::ConfigError> {
    let mut toml = format!(
        "[pipeline]\ndata_dir = {data_dir:?}\n[exporters.local]\ntype = \"file\"\npath = \"{data_dir}/events\"\n"
    );
    if let Some(url) = clickhouse_url {
        toml.push_str(&format!(
            "[exporters.warehouse]\ntype = \"clickhouse\"\nurl = {url:?}\ntable = {table:?}\nevents = [\"storage_usage\"]\n"
        ));
    }
    UsageConfig::from_toml(&toml)
}

fn samples(hour: u32) -> Vec<StorageUsage> {
    vec![
        StorageUsage {
            tenant: "acme".into(),
            bucket: "logs".into(),
            bytes: 5_000_000_000 + hour as u64,
            objects: 1_200,
            region: Some("eu-west-1".into()),
            tags: vec![("env".into(), "prod".into()), ("team".into(), "core".into())],
        },
        StorageUsage {
            tenant: "globex".into(),
            bucket: "backups".into(),
            bytes: 800_000_000_000,
            objects: 40,
            region: None,
            tags: vec![],
        },
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    usage_core::link_exporters!(usage_file, usage_clickhouse);
    println!("kind `{}` with fields:", StorageUsage::schema().kind);
    for f in StorageUsage::schema().fields.iter() {
        println!("  {} {}{}", f.name, f.ty, if f.nullable { " (nullable)" } else { "" });
    }
    let url = std::env::var("CLICKHOUSE_URL").ok();
    let pipeline = Pipeline::from_config(&config("./usage-data", url.as_deref(), "{kind}")?)?;
    for e in samples(0) {
        pipeline.sink().emit(e);
    }
    let report = pipeline.shutdown(Duration::from_secs(10)).await?;
    println!("{report:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::{Event, Value};

    fn emit_all(url: Option<&str>, dir: &std::path::Path, table: &str) -> Vec<Event> {
        let p = Pipeline::from_config(&config(&dir.display().to_string(), url, table).unwrap()).unwrap();
        let sent: Vec<Event> = (0..3).flat_map(samples).map(Event::new).collect();
        for e in &sent {
            p.sink().emit(e.clone());
        }
        let report = p.shutdown_blocking(Duration::from_secs(30)).unwrap();
        assert_eq!(report.exporter("local").unwrap().delivered, sent.len() as u64);
        sent
    }

    #[test]
    fn a_custom_kind_round_trips_through_the_file_exporter() {
        usage_core::link_exporters!(usage_file);
        let dir = tempfile::tempdir().unwrap();
        let mut sent = emit_all(None, dir.path(), "");
        let mut got = Vec::new();
        usage_file::read::scan(&dir.path().join("events"), &Default::default(), |e| got.push(e)).unwrap();
        got.sort_by_key(|e| e.id());
        sent.sort_by_key(|e| e.id());
        // The file keeps the sender's resource too; compare the events themselves.
        let bare = |v: &[Event]| -> Vec<Event> {
            let none = std::sync::Arc::new(usage_core::Resource::default());
            v.iter().map(|e| e.clone().with_resource(none.clone())).collect()
        };
        assert_eq!(
            bare(&got),
            bare(&sent),
            "every field, the nullable region and the tags map included"
        );
        assert_eq!(got[0].kind(), "storage_usage");
        assert!(got.iter().any(|e| e.field("region") == Some(Value::Null)));
    }

    /// Run by `cargo xtask e2e` with a real ClickHouse.
    #[test]
    #[ignore = "e2e: needs USAGE_E2E_CLICKHOUSE_URL (cargo xtask e2e)"]
    fn a_custom_kind_gets_a_typed_clickhouse_table_from_its_schema() {
        usage_core::link_exporters!(usage_file, usage_clickhouse);
        let url = std::env::var("USAGE_E2E_CLICKHOUSE_URL").expect("USAGE_E2E_CLICKHOUSE_URL");
        let dir = tempfile::tempdir().unwrap();
        let table = format!("example_{}", std::process::id());
        let sent = emit_all(Some(&url), dir.path(), &table);
        let query = |q: &str| -> String {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                reqwest::Client::new()
                    .post(&url)
                    .body(q.to_string())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            })
        };
        let columns = query(&format!(
            "SELECT name, type FROM system.columns WHERE database = 'default' AND table = '{table}' FORMAT TSV"
        ));
        for want in ["tenant\tString", "bytes\tUInt64", "region\tNullable(String)"] {
            assert!(columns.contains(want), "column `{want}` from the schema: {columns}");
        }
        let totals = query(&format!(
            "SELECT count(), sum(bytes) FROM default.{table} FINAL FORMAT TSV"
        ));
        let want_bytes: u64 = sent
            .iter()
            .map(|e| match e.field("bytes") {
                Some(Value::U64(b)) => b,
                _ => 0,
            })
            .sum();
        assert_eq!(totals.trim(), format!("{}\t{want_bytes}", sent.len()));
        query(&format!("DROP TABLE default.{table}"));
    }
}
