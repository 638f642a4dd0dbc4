//! `usage-bench kafka-count`: consumes a topic from the beginning and counts the
//! events that arrived, distinct by event id, until `expect` are in or `timeout`.
//! Messages are either our `kafka` exporter's (one event each, or NDJSON when it
//! packs events) or OTLP log batches (a collector's kafka exporter, protobuf).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How messages carry events.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// One event per message with its id in the `event-id` header, or NDJSON
    /// events (`event-count` header) with each id in its line.
    Events,
    /// An OTLP `ExportLogsServiceRequest` (protobuf) per message, id in `event.id`.
    Otlp,
    /// One event per message, its id the message key (our exporter's default key,
    /// for messages without headers).
    Keys,
}

pub fn run(
    brokers: &str,
    topic: &str,
    format: Format,
    expect: u64,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("usage-bench-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // Counting must not be the bottleneck: do not wait for fuller fetches.
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    // Assign every partition from the start: no group rebalance to wait for. The
    // topic appears with the first message, which may still be on its way.
    let mut assignment = rdkafka::TopicPartitionList::new();
    while assignment.count() == 0 && start.elapsed() < timeout {
        if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
                for p in t.partitions() {
                    assignment
                        .add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if assignment.count() == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let (mut messages, mut records) = (0u64, 0u64);
    let mut ids: HashSet<String> = HashSet::new();
    let mut malformed = 0u64;
    let mut first: Option<f64> = None;
    while (ids.len() as u64) < expect && start.elapsed() < timeout {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        messages += 1;
        first.get_or_insert(start.elapsed().as_secs_f64());
        match format {
            Format::Events => {
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "event-id").and_then(|h| h.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                if let Some(id) = id {
                    records += 1;
                    ids.insert(id);
                    continue;
                }
                for line in m.payload().unwrap_or_default().split(|&b| b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    records += 1;
                    match crate::ids::json_line_id(line) {
                        Some(id) => {
                            ids.insert(id);
                        }
                        None => malformed += 1,
                    }
                }
            }
            Format::Keys => match m.key().map(|k| String::from_utf8_lossy(k).into_owned()) {
                Some(id) => {
                    records += 1;
                    ids.insert(id);
                }
                None => malformed += 1,
            },
            Format::Otlp => match crate::ids::otlp_record_ids(m.payload().unwrap_or_default()) {
                Ok(record_ids) => {
                    for id in record_ids {
                        records += 1;
                        match id {
                            Some(id) => {
                                ids.insert(id);
                            }
                            None => malformed += 1,
                        }
                    }
                }
                Err(_) => malformed += 1,
            },
        }
    }
    Ok(serde_json::json!({
        "messages": messages,
        "records": records,
        "unique": ids.len(),
        "malformed": malformed,
        "seconds": start.elapsed().as_secs_f64(),
        "first_message_seconds": first,
    }))
}
