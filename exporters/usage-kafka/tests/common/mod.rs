//! What librdkafka itself does with keys, against the mock cluster: the ground
//! truth the exporter's own placement of keyed messages is held to.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// (partition, key, value) of every message on `topic`'s first `partitions`
/// partitions, until `expect` are read (or 10 s pass).
pub fn read_partitions(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expect: usize,
) -> Vec<(i32, Option<String>, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while out.len() < expect && Instant::now() < end {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((
                m.partition(),
                m.key().map(|k| String::from_utf8_lossy(k).into()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into(),
            ));
        }
    }
    out
}

/// The partition librdkafka's partitioner (its default, or `partitioner`) gives
/// each key: one message per key produced to `topic`, read back.
pub fn librdkafka_places(
    brokers: &str,
    topic: &str,
    partitions: i32,
    keys: &[String],
    partitioner: Option<&str>,
) -> BTreeMap<String, i32> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    if let Some(p) = partitioner {
        config.set("partitioner", p);
    }
    let producer: BaseProducer = config.create().expect("producer");
    for k in keys {
        producer
            .send(BaseRecord::<str, str>::to(topic).key(k.as_str()).payload("x"))
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
    read_partitions(brokers, topic, partitions, keys.len())
        .into_iter()
        .map(|(p, k, _)| (k.expect("keyed"), p))
        .collect()
}
