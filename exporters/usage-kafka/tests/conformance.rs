//! The shared conformance suite against a real Kafka-protocol broker (tansu, started
//! by `cargo xtask e2e`). tansu keeps data in memory, so the outage is a network
//! outage: its advertised address is a pausable proxy. It runs twice: one message
//! per event, then packed (`events_per_message = 500`).

#[path = "conformance/secured.rs"]
mod secured;

use std::time::Duration;
use usage_conformance::{env_addr, record, record_json, run, scratch_dir, Backend, TcpProxy};
use usage_core::{Event, NetworkEvent, Pipeline, RelayUsage, UsageConfig};

struct Tansu {
    proxy: TcpProxy,
    brokers: String,
    /// `events_per_message`: 1 is one message per event.
    per_message: usize,
    /// Packed by the partition each event's project picks (`pack_by = "partition"`).
    by_partition: bool,
}

impl Backend for Tansu {
    fn name(&self) -> String {
        if self.by_partition {
            format!("tansu 0.6, packed x{} by partition", self.per_message)
        } else if self.per_message > 1 {
            format!("tansu 0.6, packed x{}", self.per_message)
        } else {
            "tansu 0.6".into()
        }
    }
    fn exporter_type(&self) -> String {
        "kafka".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        let key = if self.by_partition {
            "key = \"project\"\npack_by = \"partition\"\n"
        } else {
            "key = \"id\"\n"
        };
        format!(
            "brokers = {:?}\ntopic = \"conf-{run}.{{kind}}\"\n{key}events_per_message = {}\n",
            self.brokers, self.per_message
        )
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        let _ = expected;
        let mut out = Vec::new();
        for kind in ["relay_usage", "network_event", "optimizer_qos"] {
            let topic = format!("conf-{run}.{kind}");
            out.extend(usage_kafka::read::read_events(
                &self.brokers,
                &topic,
                Duration::from_secs(1),
                Duration::from_secs(30),
            )?);
        }
        Ok(out)
    }
    fn stop(&mut self) -> Result<(), String> {
        self.proxy.pause();
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        self.proxy.resume();
        Ok(())
    }
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn kafka_exporter_passes_the_conformance_suite_against_tansu() {
    usage_core::link_exporters!(usage_kafka);
    let upstream = env_addr("USAGE_E2E_KAFKA_UPSTREAM").parse().expect("address");
    let port: u16 = env_addr("USAGE_E2E_KAFKA_PROXY_PORT").parse().expect("port");
    let proxy = TcpProxy::start(port, upstream).expect("proxy");
    let mut backend = Tansu {
        brokers: format!("127.0.0.1:{}", proxy.port()),
        proxy,
        per_message: 1,
        by_partition: false,
    };
    let scratch = scratch_dir("conformance-kafka");
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka: {e}"));
    record(&reports);
    // Packed into NDJSON messages: the same suite, through the same proxy (one port).
    backend.per_message = 500;
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka, packed: {e}"));
    record(&reports);
    // Packed per partition, keyed by project (kinds without one go unkeyed).
    backend.by_partition = true;
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka, packed by partition: {e}"));
    record(&reports);
    // Through the same proxy (one port): Daydream's envelope, read by another client.
    stream_trace_reads_back_field_by_field_with_confluent_kafka(&backend.brokers);
    packed_by_partition_lands_where_confluent_kafka_puts_each_key(&backend.brokers);
}

/// Runs `tests/interop/<script>` (confluent-kafka, a client we did not write) with
/// the e2e venv's Python; its stdout, or the test fails with its stderr.
fn confluent_kafka(script: &str, args: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out = std::process::Command::new(env_addr("USAGE_E2E_PYTHON"))
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pipeline with one kafka exporter `events` to `topic`, plus `settings`.
fn kafka_pipeline(brokers: &str, topic: &str, scratch: &str, settings: &str) -> Pipeline {
    let dir = scratch_dir(scratch);
    let cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\ndata_dir = {:?}\n[exporters.events]\ntype = \"kafka\"\nbrokers = {brokers:?}\ntopic = {topic:?}\n{settings}",
        dir.display().to_string()
    ))
    .expect("config");
    Pipeline::from_config(&cfg).expect("pipeline")
}

/// `pack_by = "partition"` against a real broker: 2,000 events of 120 projects into a
/// topic of 6 partitions, packed 200 per message; confluent-kafka reads every line
/// back and places each project with its own partitioner: every line must be on
/// that partition, every event there once.
fn packed_by_partition_lands_where_confluent_kafka_puts_each_key(brokers: &str) {
    let topic = format!("packed_by_partition_{}", std::process::id());
    confluent_kafka("partitions.py", &["create", brokers, &topic, "6"]);
    let pipeline = kafka_pipeline(
        brokers,
        &topic,
        "pack-by-partition",
        "events = [\"relay_usage\"]\nkey = \"project\"\nevents_per_message = 200\npack_by = \"partition\"\n",
    );
    let sent = 2000u64;
    for i in 0..sent {
        pipeline.sink().emit(RelayUsage {
            project: format!("{:032x}", (i % 120).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into(),
            cu: i,
            ..Default::default()
        });
    }
    pipeline.shutdown_blocking(Duration::from_secs(60)).expect("delivered");
    let out = confluent_kafka("partitions.py", &["check", brokers, &topic, &sent.to_string()]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["lines"], sent, "every event read back: {report}");
    assert_eq!(report["ids"], sent, "each once: {report}");
    assert_eq!(report["projects"], 120, "{report}");
    assert_eq!(
        report["mismatched"],
        serde_json::json!([]),
        "each project on its partition: {report}"
    );
    assert!(
        report["used_partitions"].as_u64().is_some_and(|n| n > 1),
        "keys spread over partitions: {report}"
    );
    assert!(
        report["messages"].as_u64().is_some_and(|m| m < sent / 10),
        "packed: {report}"
    );
    record_json(&serde_json::json!({
        "exporter": "kafka", "backend": "tansu 0.6, read by confluent-kafka", "step": "packed by partition",
        "sent": sent, "found": report["lines"], "unique": report["ids"], "duplicates": 0,
        "lost": sent.saturating_sub(report["ids"].as_u64().unwrap_or(0)), "seconds": 0.0,
    }));
}

/// Issue 21: `format = "stream_trace"` writes what Daydream's consumers of
/// `network_events` read; confluent-kafka (Python) reads it back and every field
/// is compared with the event sent.
fn stream_trace_reads_back_field_by_field_with_confluent_kafka(brokers: &str) {
    let topic = format!("network_events_{}", std::process::id());
    let pipeline = kafka_pipeline(
        brokers,
        &topic,
        "stream-trace",
        "events = [\"network_event\"]\nformat = \"stream_trace\"\n",
    );
    let payload = |i: usize| {
        format!(
            r#"{{"type":"stream_started","client_source":"scope","session_id":"s-{i}","pipeline_ids":["longlive"],"connection_info":{{"ice":[{i},{{"a":null}}]}}}}"#
        )
    };
    let sent: Vec<Event> = (0..20)
        .map(|i| {
            Event::new(NetworkEvent {
                event_type: "stream_started".into(),
                stream_id: format!("s-{i}").into(),
                data: Some(payload(i).into()),
                ..Default::default()
            })
        })
        .collect();
    for e in &sent {
        pipeline.sink().emit(e.clone());
    }
    pipeline.shutdown_blocking(Duration::from_secs(60)).expect("delivered");
    let out = confluent_kafka("read_topic.py", &[brokers, &topic, &sent.len().to_string()]);
    let read: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(read.len(), sent.len(), "every envelope read back");
    for (i, e) in sent.iter().enumerate() {
        let m = read
            .iter()
            .find(|m| m["key"] == e.id().to_string())
            .unwrap_or_else(|| panic!("no message keyed {}", e.id()));
        let v = &m["value"];
        assert_eq!(v["id"], e.id().to_string());
        assert_eq!(v["type"], "stream_trace");
        assert_eq!(v["timestamp"], e.ts().as_millis().to_string());
        let want: serde_json::Value = serde_json::from_str(&payload(i)).unwrap();
        assert_eq!(v["data"], want, "data field by field");
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(4),
            "exactly id, type, timestamp, data"
        );
    }
    record_json(&serde_json::json!({
        "exporter": "kafka", "backend": "tansu 0.6, read by confluent-kafka", "step": "stream_trace envelope",
        "sent": sent.len(), "found": read.len(), "unique": read.len(), "duplicates": 0, "lost": 0, "seconds": 0.0,
    }));
}
