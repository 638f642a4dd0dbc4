//! `pack_by = "partition"` against rdkafka's in-process mock cluster: packed messages
//! land on the partition librdkafka's own partitioner gives each key.

mod common;

use rdkafka::mocking::MockCluster;
use std::collections::BTreeSet;
use std::sync::Arc;
use usage_core::{Batch, Event, Exporter, RelayUsage, Resource, Value};
use usage_kafka::{KafkaConfig, KafkaExporter, PackBy};

const PARTITIONS: i32 = 4;

fn config(brokers: &str, topic: &str) -> KafkaConfig {
    usage_core::ExporterSection::new("k", "kafka")
        .set("brokers", brokers)
        .set("topic", topic)
        .set("key", "project")
        .parse::<KafkaConfig>()
        .expect("settings")
}

fn read_partitions(brokers: &str, topic: &str, expect: usize) -> Vec<(i32, Option<String>, String)> {
    common::read_partitions(brokers, topic, PARTITIONS, expect)
}

fn project(e: &Event) -> String {
    match e.field("project") {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("no project: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_by_partition_lands_where_librdkafka_puts_each_key() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("one.relay_usage", PARTITIONS, 1).expect("topic");
    cluster
        .create_topic("packed.relay_usage", PARTITIONS, 1)
        .expect("topic");
    let brokers = cluster.bootstrap_servers();
    // 40 projects of Lava's shape (32 hex chars), 5 events each.
    let events: Vec<Event> = (0..200u64)
        .map(|i| {
            Event::new(RelayUsage {
                project: format!("{:032x}", (i % 40).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into(),
                cu: i,
                ..Default::default()
            })
        })
        .collect();
    let batch = Batch::from_events(events.clone(), Arc::new(Resource::new("svc")));

    // Ground truth: one message per project, placed by librdkafka's partitioner.
    let projects: Vec<String> = events
        .iter()
        .map(project)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let placed = common::librdkafka_places(&brokers, "one.relay_usage", PARTITIONS, &projects, None);
    assert_eq!(placed.len(), 40);
    assert!(
        placed.values().collect::<BTreeSet<_>>().len() > 1,
        "keys spread over partitions"
    );

    let mut cfg = config(&brokers, "packed.{kind}");
    cfg.events_per_message = 1000;
    cfg.pack_by = PackBy::Partition;
    let packed = KafkaExporter::new(&cfg, "exporters.packed").expect("exporter");
    packed.export(&batch).await.expect("delivered packed");
    let messages = read_partitions(&brokers, "packed.relay_usage", PARTITIONS as usize);
    assert!(messages.len() <= PARTITIONS as usize, "one message per partition");
    let mut got = Vec::new();
    for (partition, key, value) in &messages {
        assert_eq!(key, &None, "the key is in the lines");
        for line in value.lines() {
            let e = usage_core::json::decode_event(line.as_bytes()).expect("an event per line");
            assert_eq!(
                placed.get(&project(&e)),
                Some(partition),
                "project {} packed onto partition {partition}",
                project(&e)
            );
            got.push(e);
        }
    }
    got.sort_by_key(|e| e.id());
    let mut sent = events;
    sent.sort_by_key(|e| e.id());
    assert_eq!(
        got.iter().map(|e| (e.id(), e.values())).collect::<Vec<_>>(),
        sent.iter().map(|e| (e.id(), e.values())).collect::<Vec<_>>(),
        "every event once"
    );
}

#[test]
fn pack_by_partition_settings_name_the_key() {
    let mut c = config("127.0.0.1:1", "t.{kind}");
    c.pack_by = PackBy::Partition;
    assert_eq!(
        KafkaExporter::new(&c, "exporters.k")
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("exporters.k.pack_by: pack_by = \"partition\" packs messages: set events_per_message above 1")
    );
    c.events_per_message = 100;
    c.librdkafka.insert(
        "partitioner".into(),
        usage_kafka::Property::Text("murmur2_random".into()),
    );
    let e = KafkaExporter::new(&c, "exporters.k").err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.starts_with("exporters.k.librdkafka.partitioner: \"murmur2_random\"")),
        "{e:?}"
    );
    let bad = usage_core::ExporterSection::new("k", "kafka")
        .set("brokers", "b:9092")
        .set("pack_by", "project")
        .parse::<KafkaConfig>()
        .err()
        .map(|e| e.to_string());
    assert!(
        bad.as_deref()
            .is_some_and(|e| e.contains("pack_by") && e.contains("partition")),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_brokers_do_not_know_fails_the_batch_naming_it() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let mut cfg = config(&brokers, "absent.{kind}");
    cfg.events_per_message = 10;
    cfg.pack_by = PackBy::Partition;
    cfg.librdkafka
        .insert("allow.auto.create.topics".into(), usage_kafka::Property::Bool(false));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").expect("exporter");
    let batch = Batch::from_events(
        vec![Event::new(RelayUsage {
            project: "p".into(),
            ..Default::default()
        })],
        Arc::new(Resource::new("svc")),
    );
    let outcome = exporter.export(&batch).await;
    let text = outcome.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("absent.relay_usage"), "names the topic: {outcome:?}");
}
