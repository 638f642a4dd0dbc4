//! One message per event: a keyed message's partition is picked by the exporter
//! (CRC-32 of the key) unless the settings name another partitioner, and either way
//! each message lands where librdkafka's own partitioner would put its key.

mod common;

use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::sync::Arc;
use usage_core::{Batch, Event, Exporter, RelayUsage, Resource};
use usage_kafka::{KafkaConfig, KafkaExporter, Property};

const PARTITIONS: i32 = 5;

fn config(brokers: &str, topic: &str, key: &str) -> KafkaConfig {
    usage_core::ExporterSection::new("k", "kafka")
        .set("brokers", brokers)
        .set("topic", topic)
        .set("key", key)
        .parse::<KafkaConfig>()
        .expect("settings")
}

/// 60 events of 30 projects of Lava's shape; one with an empty project (librdkafka
/// places empty keys at random: the exporter must leave those to it).
fn batch() -> Batch {
    let events = (0..60u64)
        .map(|i| {
            let project = if i == 59 {
                String::new()
            } else {
                format!("{:032x}", (i % 30).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            };
            Event::new(RelayUsage {
                project: project.into(),
                cu: i,
                ..Default::default()
            })
        })
        .collect();
    Batch::from_events(events, Arc::new(Resource::new("svc")))
}

/// Where `exporter` put each key: (key -> partition), every partition of a key the same.
async fn exported(brokers: &str, exporter: &KafkaExporter, batch: &Batch, topic: &str) -> BTreeMap<String, i32> {
    exporter.export(batch).await.expect("delivered");
    let mut placed = BTreeMap::new();
    for (partition, key, _) in common::read_partitions(brokers, topic, PARTITIONS, batch.len()) {
        let key = key.expect("keyed");
        if key.is_empty() {
            continue;
        }
        let before = placed.insert(key.clone(), partition);
        assert!(before.is_none_or(|p| p == partition), "key {key} on two partitions");
    }
    placed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_messages_land_where_librdkafka_puts_their_keys() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for t in [
        "project.relay_usage",
        "id.relay_usage",
        "murmur.relay_usage",
        "truth_crc",
        "truth_id",
        "truth_murmur",
    ] {
        cluster.create_topic(t, PARTITIONS, 1).expect("topic");
    }
    let brokers = cluster.bootstrap_servers();
    let batch = batch();

    // Keyed by project, placed by the exporter.
    let exporter = KafkaExporter::new(&config(&brokers, "project.{kind}", "project"), "exporters.k").expect("exporter");
    let ours = exported(&brokers, &exporter, &batch, "project.relay_usage").await;
    assert_eq!(ours.len(), 30);
    let keys: Vec<String> = ours.keys().cloned().collect();
    let truth = common::librdkafka_places(&brokers, "truth_crc", PARTITIONS, &keys, None);
    assert_eq!(ours, truth, "placed as librdkafka's default partitioner places them");
    assert!(
        ours.values().collect::<std::collections::BTreeSet<_>>().len() > 2,
        "keys spread"
    );

    // Keyed by event id (the default key).
    let exporter = KafkaExporter::new(&config(&brokers, "id.{kind}", "id"), "exporters.k").expect("exporter");
    let ours = exported(&brokers, &exporter, &batch, "id.relay_usage").await;
    assert_eq!(ours.len(), 60);
    let keys: Vec<String> = ours.keys().cloned().collect();
    assert_eq!(
        ours,
        common::librdkafka_places(&brokers, "truth_id", PARTITIONS, &keys, None)
    );

    // Another partitioner named in the settings: librdkafka places, with it.
    let mut cfg = config(&brokers, "murmur.{kind}", "project");
    cfg.librdkafka
        .insert("partitioner".into(), Property::Text("murmur2_random".into()));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").expect("exporter");
    let ours = exported(&brokers, &exporter, &batch, "murmur.relay_usage").await;
    let keys: Vec<String> = ours.keys().cloned().collect();
    let murmur = common::librdkafka_places(&brokers, "truth_murmur", PARTITIONS, &keys, Some("murmur2_random"));
    assert_eq!(ours, murmur, "placed by the partitioner the settings name");
    assert_ne!(murmur, truth, "the two partitioners differ on these keys");
}
