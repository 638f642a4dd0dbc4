//! The shared conformance suite against the ClickHouse engines `cargo xtask e2e`
//! starts: Debian's clickhouse-server 18.16 (the legacy path), and a current engine,
//! ClickHouse 26.x as chDB behind our HTTP front (`xtask/clickhouse_front.py`: the
//! HTTP layer is ours, the engine is ClickHouse's), or a current server with
//! `--compose`. Both persist to disk, so the outage is a real kill and restart of
//! the process.

use std::sync::Arc;
use std::time::Duration;
mod common;

use common::*;
use usage_conformance::{env_addr, record, run, scratch_dir, Backend};
use usage_core::{Event, FieldType, OwnedValue, Record, Resource, Timestamp};

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn clickhouse_exporter_passes_the_conformance_suite() {
    usage_core::link_exporters!(usage_clickhouse);
    for mut ch in ClickHouse::all() {
        let name = ch.name();
        let reports =
            run(&mut ch, &scratch_dir("conformance-clickhouse"), 3000).unwrap_or_else(|e| panic!("{name}: {e}"));
        record(&reports);
    }
}

#[tokio::test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
async fn schema_evolution_adds_columns_and_names_type_conflicts() {
    for url in urls() {
        schema_evolution(&url).await;
    }
}

async fn schema_evolution(url: &str) {
    use std::borrow::Cow;
    use usage_clickhouse::{ClickHouseConfig, ClickHouseExporter};
    use usage_core::{Batch, ExportError, Exporter, ExporterSection, FieldDef, Schema};
    let kind = format!("evo_{}", Timestamp::now().as_micros() % 1_000_000_000);
    let schema = |fields: Vec<FieldDef>| {
        Arc::new(Schema {
            kind: Cow::Owned(kind.clone()),
            fields: Cow::Owned(fields),
        })
    };
    let event = |s: &Arc<Schema>, values: Vec<OwnedValue>| Event::from_record(Record::new(s.clone(), values).unwrap());
    let cfg: ClickHouseConfig = ExporterSection::new("ch", "clickhouse")
        .set("url", url)
        .parse()
        .unwrap();
    let ch = ClickHouseExporter::new(cfg, "exporters.ch").unwrap();
    let res = Arc::new(Resource::new("evo"));

    let v1 = schema(vec![FieldDef::new("a", FieldType::Str, false)]);
    ch.export(&Batch::from_events(
        vec![event(&v1, vec![OwnedValue::Str("x".into())])],
        res.clone(),
    ))
    .await
    .unwrap();
    // The kind gains a field: the column is added, old rows keep the default.
    let v2 = schema(vec![
        FieldDef::new("a", FieldType::Str, false),
        FieldDef::new("b", FieldType::U64, false),
    ]);
    ch.export(&Batch::from_events(
        vec![event(&v2, vec![OwnedValue::Str("y".into()), OwnedValue::U64(7)])],
        res.clone(),
    ))
    .await
    .unwrap();
    let cols = http(
        url,
        &format!("SELECT name, type FROM system.columns WHERE table = '{kind}' FORMAT TSV"),
    )
    .unwrap();
    assert!(cols.contains("b\tUInt64"), "{cols}");
    let sum = http(url, &format!("SELECT count(), sum(b) FROM default.{kind} FORMAT TSV")).unwrap();
    assert_eq!(sum.trim(), "2\t7");
    // A field changes type: nothing is retyped, the exporter pauses and says exactly what clashes.
    let v3 = schema(vec![
        FieldDef::new("a", FieldType::U64, false),
        FieldDef::new("b", FieldType::U64, false),
    ]);
    let e = ch
        .export(&Batch::from_events(
            vec![event(&v3, vec![OwnedValue::U64(1), OwnedValue::U64(2)])],
            res,
        ))
        .await
        .unwrap_err();
    match e {
        ExportError::Paused { message } => {
            assert!(
                message.contains(&format!("table default.{kind} column `a` has type String")),
                "{message}"
            );
            assert!(message.contains("needs UInt64"), "{message}");
        }
        other => panic!("expected a pause, got {other:?}"),
    }
    let cols = http(
        url,
        &format!("SELECT type FROM system.columns WHERE table = '{kind}' AND name = 'a' FORMAT TSV"),
    )
    .unwrap();
    assert_eq!(cols.trim(), "String", "never retyped");
}

/// The `-- clickhouse: <name>` queries of docs/billing.md.
fn billing_queries() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/billing.md"))
        .expect("docs/billing.md");
    doc.split("```sql\n")
        .skip(1)
        .filter_map(|block| {
            let sql = block.split("```").next()?;
            let name = sql.lines().next()?.strip_prefix("-- clickhouse: ")?;
            Some((name.trim().to_string(), sql.to_string()))
        })
        .collect()
}

/// Column `name` of a TSVWithNames answer, summed over its rows.
fn column_sum(tsv: &str, name: &str) -> u64 {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let i = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    lines
        .map(|l| l.split('\t').nth(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn the_billing_queries_in_the_docs_run_and_count_each_event_once() {
    for url in urls() {
        billing_queries_on(&url);
    }
}

fn billing_queries_on(url: &str) {
    use usage_core::{Pipeline, RelayUsage, UsageConfig};
    usage_core::link_exporters!(usage_clickhouse);
    let table = format!("bill_{}", Timestamp::now().as_micros() % 1_000_000_000);
    let toml = format!(
        "[pipeline]\ndata_dir = {:?}\n[exporters.ch]\ntype = \"clickhouse\"\nurl = {url:?}\ntable = {table:?}\n",
        scratch_dir("billing").display().to_string()
    );
    let pipeline = Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    // November 2026, spread over hours; every tenth event sent twice (a retried batch).
    let base = Timestamp::from_micros(1_793_491_200_000_000); // 2026-11-01T00:00:00Z
    let mut events = Vec::new();
    for i in 0..300u64 {
        let e = Event::new(RelayUsage {
            project: ["acme", "globex"][i as usize % 2].into(),
            chain: ["ETH1", "ARB1", "SOL1"][i as usize % 3].into(),
            api_method: if i % 7 == 0 {
                "subscription_delivery".into()
            } else {
                "eth_call".into()
            },
            provider: if i % 11 == 0 {
                "".into()
            } else {
                format!("p{}", i % 4).into()
            },
            cu: if i % 11 == 0 { 0 } else { 10 + i % 50 },
            success: i % 11 != 0 && i % 13 != 0,
            cache_hit: i % 5 == 0,
            hedge_count: (i % 3) as u32,
            ..Default::default()
        })
        .with_ts(Timestamp::from_micros(base.as_micros() + i as i64 * 3_600_000_000 / 7));
        pipeline.sink().emit(e.clone());
        if i % 10 == 0 {
            pipeline.sink().emit(e.clone());
        }
        events.push(e);
    }
    pipeline.shutdown_blocking(Duration::from_secs(60)).expect("delivered");
    let field = |e: &Event, f: &str| match e.field(f) {
        Some(usage_core::Value::U64(v)) => v,
        Some(usage_core::Value::Bool(b)) => b as u64,
        Some(usage_core::Value::Str(s)) => s.len() as u64,
        _ => 0,
    };
    let cu_all: u64 = events.iter().map(|e| field(e, "cu")).sum();
    let cu_ok: u64 = events
        .iter()
        .filter(|e| field(e, "success") == 1)
        .map(|e| field(e, "cu"))
        .sum();
    let cu_paid: u64 = events
        .iter()
        .filter(|e| field(e, "success") == 1 && field(e, "cache_hit") == 0)
        .map(|e| field(e, "cu"))
        .sum();
    let queries = billing_queries();
    assert_eq!(
        queries.len(),
        3,
        "docs/billing.md has the hourly, invoice and providers queries"
    );
    for (name, sql) in queries {
        let sql = sql.replace("usage.relay_usage", &format!("default.{table}"));
        let out = http(url, &format!("{sql} FORMAT TSVWithNames")).unwrap_or_else(|e| panic!("{name}: {e}"));
        match name.as_str() {
            "hourly" => {
                assert_eq!(column_sum(&out, "cu"), cu_all, "hourly: each event once");
                assert_eq!(column_sum(&out, "requests"), events.len() as u64);
            }
            "invoice" => {
                assert_eq!(column_sum(&out, "cu_all"), cu_all);
                assert_eq!(column_sum(&out, "cu_successful"), cu_ok);
                assert_eq!(column_sum(&out, "cu_billable_if_cache_is_free"), cu_paid);
                assert_eq!(
                    column_sum(&out, "failed_before_provider"),
                    events.iter().filter(|e| field(e, "cu") == 0).count() as u64
                );
            }
            "providers" => {
                assert_eq!(column_sum(&out, "cu"), cu_all, "cu=0 failures have no provider");
            }
            other => panic!("an unchecked query `{other}` in docs/billing.md"),
        }
    }
    let _ = http(url, &format!("DROP TABLE default.{table}"));
}

/// Review C1: several router slices of one kind in a batch each became an INSERT under
/// one dedup token, and a current server kept only the first. Now one block per
/// table, with its own token: all rows arrive, and a retried batch adds none.
#[tokio::test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
async fn a_current_engine_keeps_every_slice_and_drops_a_retried_block() {
    use usage_core::{Batch, Exporter, OptimizerQos};
    let url = env_addr("USAGE_E2E_CHDB_URL");
    let table = format!("dedup_{}_{{kind}}", Timestamp::now().as_micros() % 1_000_000_000);
    let ch = exporter(&url, &table);
    let mut events: Vec<Event> = Vec::new();
    for pass in 0..5u64 {
        events.extend((0..100).map(|i| relay(pass * 100 + i)));
        events.push(Event::new(OptimizerQos::default()));
    }
    let batch = Batch::from_events(events, Arc::new(Resource::new("dedup")));
    assert_eq!(batch.slices().count(), 10, "five relay slices, five qos slices");
    let relays = table.replace("{kind}", "relay_usage");
    let count = || {
        http(
            &url,
            &format!("SELECT count(), sum(cu) FROM default.{relays} FORMAT TSV"),
        )
    };
    ch.export(&batch).await.unwrap();
    assert_eq!(count().unwrap().trim(), "500\t124750", "every slice arrived");
    ch.export(&batch).await.unwrap();
    assert_eq!(
        count().unwrap().trim(),
        "500\t124750",
        "the retry was dropped by its token, not stored twice"
    );
}

/// `cluster = "..."` DDL is never run here (one engine, no Keeper), so the current
/// engine's own parser checks every statement the exporter would send to a cluster.
#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn cluster_ddl_parses_on_the_current_engine() {
    use usage_clickhouse::ddl::{self, Column, Flavor, Source, Target};
    let url = env_addr("USAGE_E2E_CHDB_URL");
    for schema in usage_core::registered_kinds() {
        let target = Target {
            database: "usage",
            table: &schema.kind,
            cluster: Some("main"),
        };
        let column = Column {
            name: "added_later".into(),
            ty: "Nullable(String)".into(),
            source: Source::Field(0),
        };
        let mut statements = ddl::create_statements(target, schema, Flavor::Modern, &ddl::default_order_by(schema));
        statements.extend(ddl::add_column_statements(target, &column));
        for sql in statements {
            let ast = http(&url, &format!("EXPLAIN AST {sql}")).unwrap_or_else(|e| panic!("{sql}\n-> {e}"));
            assert!(ast.contains("Query"), "{sql}\n-> {ast}");
        }
    }
}

/// An operator drops a table under a running exporter: the insert fails with
/// UNKNOWN_TABLE (a schema error, retried), the exporter forgets the table, and the
/// retry re-creates it and delivers.
#[tokio::test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
async fn a_dropped_table_is_recreated_on_the_retry() {
    use usage_core::{Batch, ExportError, Exporter};
    for url in urls() {
        let table = format!("dropped_{}", Timestamp::now().as_micros() % 1_000_000_000);
        let ch = exporter(&url, &table);
        let batch = |cu| Batch::from_events(vec![relay(cu)], Arc::new(Resource::new("drop")));
        ch.export(&batch(1)).await.unwrap();
        http(&url, &format!("DROP TABLE default.{table}")).unwrap();
        match ch.export(&batch(2)).await {
            Err(ExportError::Retryable { message, .. }) => assert!(message.contains("Code: 60"), "{message}"),
            other => panic!("{url}: expected a retryable UNKNOWN_TABLE, got {other:?}"),
        }
        ch.export(&batch(2)).await.unwrap();
        let sum = http(
            &url,
            &format!("SELECT count(), sum(cu) FROM default.{table} FORMAT TSV"),
        )
        .unwrap();
        assert_eq!(sum.trim(), "1\t2", "{url}");
    }
}

/// A batch of 20,000 rows goes out as two INSERTs at once (`insert_concurrency =
/// 2`), each with its own token: every row arrives once, and a retry of the
/// batch adds none (dropped by its tokens on a current engine; collapsed by
/// `ReplacingMergeTree` under `FINAL` on the old server, which has no tokens).
#[tokio::test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
async fn a_batch_in_parallel_parts_arrives_once_and_its_retry_adds_none() {
    use usage_clickhouse::ddl::Flavor;
    use usage_core::{Batch, Exporter};
    for url in urls() {
        let table = format!("parts_{}", Timestamp::now().as_micros() % 1_000_000_000);
        let ch = exporter_with(&url, &table, 2);
        let events = (0..20_000u64).map(relay).collect();
        let batch = Batch::from_events(events, Arc::new(Resource::new("parts")));
        let final_ = if ch.flavor().await.unwrap() == Flavor::Modern {
            ""
        } else {
            "FINAL"
        };
        let count = || {
            http(
                &url,
                &format!("SELECT count(), sum(cu) FROM default.{table} {final_} FORMAT TSV"),
            )
        };
        ch.export(&batch).await.unwrap();
        assert_eq!(count().unwrap().trim(), "20000\t199990000", "{url}: both parts, once");
        ch.export(&batch).await.unwrap();
        assert_eq!(
            count().unwrap().trim(),
            "20000\t199990000",
            "{url}: the retry added nothing"
        );
        let _ = http(&url, &format!("DROP TABLE default.{table}"));
    }
}
