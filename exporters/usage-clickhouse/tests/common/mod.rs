//! The ClickHouse engines `cargo xtask e2e` starts, as a conformance backend, and the
//! helpers the suites share (SQL over HTTP, reading rows back as events).
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_conformance::{Backend, Server};
use usage_core::{kind_schema, Event, EventId, FieldType, OwnedValue, Record, Resource, Text, Timestamp};

pub struct ClickHouse {
    url: String,
    port: u16,
    /// How to start it again after a kill.
    restart: Vec<String>,
    /// What the e2e table calls it, e.g. `clickhouse 26.9.2.1 (chdb)`.
    suffix: &'static str,
    pid: Option<u32>,
}

impl ClickHouse {
    /// Every engine `cargo xtask e2e` started: (URL variable, pid variable, restart command, suffix).
    pub fn all() -> Vec<ClickHouse> {
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
            });
        }
        assert!(
            !out.is_empty(),
            "no ClickHouse engine: run the e2e tests with `cargo xtask e2e`"
        );
        out
    }
}

/// `docker compose -f FILE <action> clickhouse` (`cargo xtask e2e --compose`).
pub fn compose(file: &str, action: &str) -> Result<(), String> {
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

pub fn http(url: &str, sql: &str) -> Result<String, String> {
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

pub fn to_value(ty: FieldType, v: &serde_json::Value) -> Result<OwnedValue, String> {
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

pub fn parse_ts(row: &serde_json::Map<String, serde_json::Value>) -> Result<Timestamp, String> {
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
        if let Some(pid) = self.pid.take() {
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
        let mut command = Command::new(program);
        command.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        // It keeps running for the other e2e tests, which `cargo xtask e2e` stops at the end.
        let server = Server::start("clickhouse", &mut command, self.port, Duration::from_secs(60))?;
        self.pid = Some(server.detach());
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

/// Urls of every engine started (`http()` and the exporter talk to both alike).
pub fn urls() -> Vec<String> {
    ["USAGE_E2E_CLICKHOUSE_URL", "USAGE_E2E_CHDB_URL"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .collect()
}

/// A `relay_usage` event with `cu` compute units, the rest default: `sum(cu)` then
/// tells which events arrived, and how often.
pub fn relay(cu: u64) -> Event {
    Event::new(usage_core::RelayUsage {
        cu,
        ..Default::default()
    })
}

/// A clickhouse exporter on `url` with the table template `table`.
pub fn exporter(url: &str, table: &str) -> usage_clickhouse::ClickHouseExporter {
    exporter_with(url, table, 1)
}

/// An exporter sending each table's rows of a batch as `insert_concurrency` INSERTs.
pub fn exporter_with(url: &str, table: &str, insert_concurrency: i64) -> usage_clickhouse::ClickHouseExporter {
    let cfg: usage_clickhouse::ClickHouseConfig = usage_core::ExporterSection::new("ch", "clickhouse")
        .set("url", url)
        .set("table", table)
        .set("insert_concurrency", insert_concurrency)
        .parse()
        .unwrap();
    usage_clickhouse::ClickHouseExporter::new(cfg, "exporters.ch").unwrap()
}
