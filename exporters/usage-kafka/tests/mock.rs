//! Unit tests against rdkafka's in-process mock cluster (no broker needed). The
//! real-broker proof is the conformance suite against tansu (`cargo xtask e2e`).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{Batch, Event, ExportError, Exporter, NetworkEvent, RelayUsage, Resource};
use usage_kafka::{KafkaConfig, KafkaExporter};

fn config(brokers: &str) -> KafkaConfig {
    usage_core::ExporterSection::new("k", "kafka")
        .set("brokers", brokers)
        .set("topic", "t.{kind}")
        .set("key", "project")
        .parse::<KafkaConfig>()
        .unwrap()
}

/// (key, value, headers) of each message read.
type Read = (Option<String>, String, Vec<(String, String)>);

fn read_all(brokers: &str, topic: &str, partitions: i32, expect: usize) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < expect && std::time::Instant::now() < end {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::message::Headers;
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(|k| String::from_utf8_lossy(k).into()),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into(),
                headers,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_per_kind_key_headers_and_json_value() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t.relay_usage", 2, 1).unwrap();
    cluster.create_topic("t.network_event", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let exporter = KafkaExporter::new(&config(&brokers), "exporters.k").unwrap();
    exporter.healthcheck().await.unwrap();
    let mut events: Vec<Event> = (0..10)
        .map(|cu| {
            Event::new(RelayUsage {
                project: "acme".into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    events.push(Event::new(NetworkEvent {
        stream_id: "s1".into(),
        ..Default::default()
    }));
    let batch = Batch::from_events(events.clone(), Arc::new(Resource::new("svc")));
    exporter.export(&batch).await.unwrap();
    let relays = read_all(&brokers, "t.relay_usage", 2, 10);
    assert_eq!(relays.len(), 10);
    for (key, value, headers) in &relays {
        assert_eq!(key.as_deref(), Some("acme"), "keyed by the configured field");
        let back = usage_core::json::decode_event(value.as_bytes()).unwrap();
        let sent = events.iter().find(|e| e.id() == back.id()).unwrap();
        assert_eq!(back.values(), sent.values());
        assert!(headers.contains(&("kind".into(), "relay_usage".into())));
        assert!(headers.contains(&("event-id".into(), sent.id().to_string())));
    }
    let net = read_all(&brokers, "t.network_event", 1, 1);
    assert_eq!(net.len(), 1);
    assert_eq!(net[0].0, None, "network_event has no `project`: no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_is_rejected_alone() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t.relay_usage", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut cfg = config(&brokers);
    cfg.librdkafka
        .insert("message.max.bytes".into(), usage_kafka::Property::Int(1000));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    let mut events: Vec<Event> = (0..5)
        .map(|cu| {
            Event::new(RelayUsage {
                project: "p".into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    events[2] = Event::new(RelayUsage {
        project: "p".into(),
        origin: "x".repeat(5000).into(),
        ..Default::default()
    });
    let batch = Batch::from_events(events, Arc::new(Resource::default()));
    match exporter.export(&batch).await {
        Err(ExportError::PartiallyRejected { indices, message }) => {
            assert_eq!(indices, vec![2]);
            assert!(message.contains("message.max.bytes"), "{message}");
        }
        other => panic!("expected a partial rejection, got {other:?}"),
    }
    assert_eq!(
        read_all(&brokers, "t.relay_usage", 1, 4).len(),
        4,
        "the rest went through"
    );
}

#[test]
fn bad_settings_name_the_key() {
    let bad = |k: &str, v: &str| {
        let mut s = usage_core::ExporterSection::new("k", "kafka").set("brokers", "127.0.0.1:1");
        s = s.set(k, v);
        match s.parse::<KafkaConfig>() {
            Ok(c) => KafkaExporter::new(&c, "exporters.k")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        bad("acks", "most"),
        "exporters.k.acks: \"most\" is not one of \"all\", \"1\", \"0\""
    );
    assert!(bad("compression", "lz5").starts_with("exporters.k.compression: unknown variant"));
    assert!(bad("topic", "usage.{knd}").contains("the only placeholder is {kind}"));
    assert!(bad("linger", "soon").contains("exporters.k.linger: invalid duration"));
}
