//! The shared conformance suite against the ClickHouse engines `cargo xtask e2e`
//! starts: Debian's clickhouse-server 18.16 (the legacy path), and a current engine,
//! ClickHouse 26.x as chDB behind our HTTP front (`xtask/clickhouse_front.py`: the
//! HTTP layer is ours, the engine is ClickHouse's), or a current server with
//! `--compose`. Both persist to disk, so the outage is a real kill and restart of
//! the process.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_conformance::{env_addr, record, run, scratch_dir, Backend};
use usage_core::{kind_schema, Event, EventId, FieldType, OwnedValue, Record, Resource, Text, Timestamp};

struct ClickHouse {
    url: String,
    port: u16,
    /// How to start it again after a kill.
    restart: Vec<String>,
    /// What the e2e table calls it, e.g. `clickhouse 26.9.2.1 (chdb)`.
    suffix: &'static str,
    pid: Option<u32>,
    child: Option<Child>,
}

impl ClickHouse {
    /// Every engine `cargo xtask e2e` started: (URL variable, pid variable, restart command, suffix).
    fn all() -> Vec<ClickHouse> {
        let mut out = Vec::new();
        let server = std::env::var("USAGE_E2E_CLICKHOUSE_CONFIG").ok().map(|config| {
            vec![
                std::env::var("USAGE_E2E_CLICKHOUSE_BIN").unwrap_or("clickhouse-server".into()),
                format!("--config-file={config}"),
            ]
        });
        let front = std::env::var("USAGE_E2E_CHDB_CMD")
            .ok()
            .map(|c| serde_json::from_str::<Vec<String>>(&c).expect("USAGE_E2E_CHDB_CMD is a JSON list"));
        for (url, pid, restart, suffix) in [
            ("USAGE_E2E_CLICKHOUSE_URL", "USAGE_E2E_CLICKHOUSE_PID", server, ""),
            ("USAGE_E2E_CHDB_URL", "USAGE_E2E_CHDB_PID", front, " (chdb)"),
        ] {
            let Ok(url) = std::env::var(url) else { continue };
            let port: u16 = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
            out.push(ClickHouse {
                url,
                port,
                restart: restart.unwrap_or_default(), // unset with --compose
                suffix,
                pid: std::env::var(pid).ok().and_then(|p| p.parse().ok()),
                child: None,
            });
        }
        assert!(
            !out.is_empty(),
            "no ClickHouse engine: run the e2e tests with `cargo xtask e2e`"
        );
        out
    }
}

// A server this test restarted keeps running for the other e2e tests; `cargo xtask
// e2e` stops it at the end (by its config path).

/// `docker compose -f FILE <action> clickhouse` (`cargo xtask e2e --compose`).
fn compose(file: &str, action: &str) -> Result<(), String> {
    let status = Command::new("docker")
        .args(["compose", "-f", file, action, "clickhouse"])
        .status()
        .map_err(|e| format!("docker compose {action}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("docker compose {action} clickhouse: {status}"))
    }
}

fn http(url: &str, sql: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let req = format!(
        "POST /?output_format_json_quote_64bit_integers=0 HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    if !head.contains(" 200 ") {
        return Err(format!("{sql}: {body}"));
    }
    Ok(body.to_string())
}

fn to_value(ty: FieldType, v: &serde_json::Value) -> Result<OwnedValue, String> {
    use serde_json::Value as J;
    Ok(match (ty, v) {
        (_, J::Null) => OwnedValue::Null,
        (FieldType::Str, J::String(s)) => OwnedValue::Str(Text::new(s)),
        (FieldType::U64, J::Number(n)) => OwnedValue::U64(n.as_u64().ok_or("u64")?),
        (FieldType::U64, J::String(s)) => OwnedValue::U64(s.parse().map_err(|_| "u64")?),
        (FieldType::I64, J::Number(n)) => OwnedValue::I64(n.as_i64().ok_or("i64")?),
        (FieldType::F64, J::Number(n)) => OwnedValue::F64(n.as_f64().ok_or("f64")?),
        (FieldType::Bool, J::Bool(b)) => OwnedValue::Bool(*b),
        (FieldType::Bool, J::Number(n)) => OwnedValue::Bool(n.as_u64() == Some(1)),
        (FieldType::StrMap, J::Object(m)) => OwnedValue::StrMap(
            m.iter()
                .map(|(k, v)| (Text::new(k), Text::new(v.as_str().unwrap_or_default())))
                .collect(),
        ),
        // Legacy servers keep string maps as JSON text.
        (FieldType::StrMap, J::String(s)) => {
            let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(s).map_err(|e| e.to_string())?;
            to_value(FieldType::StrMap, &J::Object(m))?
        }
        (t, v) => return Err(format!("cannot read {v} as {t}")),
    })
}

fn parse_ts(row: &serde_json::Map<String, serde_json::Value>) -> Result<Timestamp, String> {
    if let Some(us) = row
        .get("ts_us")
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
    {
        return Ok(Timestamp::from_micros(us as i64));
    }
    let s = row.get("ts").and_then(|v| v.as_str()).ok_or("no ts")?;
    Timestamp::parse_rfc3339(&format!("{}Z", s.replace(' ', "T"))).map_err(|e| e.to_string())
}

impl Backend for ClickHouse {
    fn name(&self) -> String {
        let v = http(&self.url, "SELECT version()").unwrap_or_default();
        format!("clickhouse {}{}", v.trim(), self.suffix)
    }
    fn exporter_type(&self) -> String {
        "clickhouse".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!("url = {:?}\ntable = \"conf_{run}_{{kind}}\"\n", self.url)
    }
    fn read_back(&self, run: &str, _expected: usize) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        for kind in ["relay_usage", "network_event", "optimizer_qos"] {
            let table = format!("conf_{run}_{kind}");
            let exists = http(&self.url, &format!("EXISTS TABLE default.{table}"))?;
            if exists.trim() != "1" {
                continue;
            }
            let schema = Arc::new(kind_schema(kind).ok_or("kind")?.clone());
            let body = http(
                &self.url,
                &format!("SELECT * FROM default.{table} FINAL FORMAT JSONEachRow"),
            )?;
            for line in body.lines().filter(|l| !l.is_empty()) {
                let row: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(line).map_err(|e| e.to_string())?;
                let mut values = Vec::new();
                for f in schema.fields.iter() {
                    let v = row
                        .get(f.name.as_ref())
                        .ok_or_else(|| format!("{table}: no column {}", f.name))?;
                    values.push(to_value(f.ty, v).map_err(|e| format!("{table}.{}: {e}", f.name))?);
                }
                let id: EventId = row["id"].as_str().ok_or("id")?.parse().map_err(|_| "id")?;
                let res = Resource {
                    service_name: Text::new(row["service_name"].as_str().unwrap_or_default()),
                    service_instance_id: Text::new(row["service_instance_id"].as_str().unwrap_or_default()),
                };
                let rec = Record::new(schema.clone(), values).map_err(|e| e.to_string())?;
                out.push(
                    Event::from_record(rec)
                        .with_id(id)
                        .with_ts(parse_ts(&row)?)
                        .with_resource(Arc::new(res)),
                );
            }
        }
        Ok(out)
    }
    fn stop(&mut self) -> Result<(), String> {
        if let Ok(file) = std::env::var("USAGE_E2E_COMPOSE") {
            return compose(&file, "stop");
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else if let Some(pid) = self.pid.take() {
            Command::new("kill")
                .arg(pid.to_string())
                .status()
                .map_err(|e| e.to_string())?;
        }
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if Instant::now() > end {
                return Err("clickhouse did not stop".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        if let Ok(file) = std::env::var("USAGE_E2E_COMPOSE") {
            compose(&file, "start")?;
            let end = Instant::now() + Duration::from_secs(60);
            while http(&self.url, "SELECT 1").is_err() {
                if Instant::now() > end {
                    return Err("clickhouse did not come back".into());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            return Ok(());
        }
        let (program, args) = self.restart.split_first().ok_or("no restart command")?;
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("restart clickhouse: {e}"))?;
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(60);
        while http(&self.url, "SELECT 1").is_err() {
            if Instant::now() > end {
                return Err("clickhouse did not come back".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

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

/// Urls of every engine started (`http()` and the exporter talk to both alike).
fn urls() -> Vec<String> {
    ["USAGE_E2E_CLICKHOUSE_URL", "USAGE_E2E_CHDB_URL"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect()
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

/// A clickhouse exporter on `url` with the table template `table`.
fn exporter(url: &str, table: &str) -> usage_clickhouse::ClickHouseExporter {
    let cfg: usage_clickhouse::ClickHouseConfig = usage_core::ExporterSection::new("ch", "clickhouse")
        .set("url", url)
        .set("table", table)
        .parse()
        .unwrap();
    usage_clickhouse::ClickHouseExporter::new(cfg, "exporters.ch").unwrap()
}

/// Review C1: several router slices of one kind in a batch each became an INSERT under
/// one dedup token, and a current server kept only the first. Now one block per
/// table, with its own token: all rows arrive, and a retried batch adds none.
#[tokio::test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
async fn a_current_engine_keeps_every_slice_and_drops_a_retried_block() {
    use usage_core::{Batch, Exporter, OptimizerQos, RelayUsage};
    let url = env_addr("USAGE_E2E_CHDB_URL");
    let table = format!("dedup_{}_{{kind}}", Timestamp::now().as_micros() % 1_000_000_000);
    let ch = exporter(&url, &table);
    let relay = |cu| {
        Event::new(RelayUsage {
            cu,
            ..Default::default()
        })
    };
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
    use usage_core::{Batch, ExportError, Exporter, RelayUsage};
    for url in urls() {
        let table = format!("dropped_{}", Timestamp::now().as_micros() % 1_000_000_000);
        let ch = exporter(&url, &table);
        let batch = |cu| {
            Batch::from_events(
                vec![Event::new(RelayUsage {
                    cu,
                    ..Default::default()
                })],
                Arc::new(Resource::new("drop")),
            )
        };
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
