//! Reading events back from topics (tests, e2e checks, debugging).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::time::{Duration, Instant};
use usage_core::json::Decoder;
use usage_core::Event;

/// Every event in `topic` from the beginning (one per message, or NDJSON lines of
/// packed messages), read until the topic has been quiet
/// for `quiet` (some brokers' high watermarks lag) or `limit` passes.
pub fn read_events(brokers: &str, topic: &str, quiet: Duration, limit: Duration) -> Result<Vec<Event>, String> {
    read_events_with(brokers, &[], topic, quiet, limit)
}

/// [`read_events`] with extra librdkafka properties (TLS, SASL).
pub fn read_events_with(
    brokers: &str,
    properties: &[(&str, &str)],
    topic: &str,
    quiet: Duration,
    limit: Duration,
) -> Result<Vec<Event>, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "usage-read-events")
        .set("enable.auto.commit", "false");
    for (k, v) in properties {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
    let mut out = Vec::new();
    if partitions == 0 {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let decoder = Decoder::default().require_id(true).allow_unknown_kinds(true);
    let end = Instant::now() + limit;
    let mut last = Instant::now();
    while last.elapsed() < quiet && Instant::now() < end {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                // One event per message, or NDJSON when the producer packs events.
                for line in m.payload().unwrap_or_default().split(|&b| b == b'\n') {
                    if !line.is_empty() {
                        out.push(decoder.decode(line).map_err(|e| format!("{topic}: {e}"))?);
                    }
                }
            }
            Some(Err(e)) => return Err(format!("consume {topic}: {e}")),
            None => {}
        }
    }
    Ok(out)
}
