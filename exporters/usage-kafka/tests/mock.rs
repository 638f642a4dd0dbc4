//! Unit tests against rdkafka's in-process mock cluster (no broker needed). The
//! real-broker proof is the conformance suite against tansu (`cargo xtask e2e`).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{Batch, Event, ExportError, Exporter, NetworkEvent, RelayUsage, Resource};
use usage_kafka::{KafkaConfig, KafkaExporter};

/// A one-broker mock cluster with these topics (name, partitions) and its
/// bootstrap address; the cluster lives as long as the value is kept.
fn cluster(topics: &[(&str, i32)]) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    for (name, partitions) in topics {
        cluster.create_topic(name, *partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

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
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 2), ("t.network_event", 1)]);
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

/// `n` small relay_usage events, the one at `huge` with a 5,000-byte origin.
fn batch_with_a_huge_event(n: u64, huge: usize) -> Batch {
    let mut events: Vec<Event> = (0..n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: "p".into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    events[huge] = Event::new(RelayUsage {
        project: "p".into(),
        origin: "x".repeat(5000).into(),
        ..Default::default()
    });
    Batch::from_events(events, Arc::new(Resource::default()))
}

/// The export refused exactly the huge event, naming the setting to raise.
fn assert_rejected_alone(outcome: Result<(), ExportError>, huge: usize) {
    match outcome {
        Err(ExportError::PartiallyRejected { indices, message }) => {
            assert_eq!(indices, vec![huge], "only the huge event, alone in its message");
            assert!(message.contains("message.max.bytes"), "{message}");
        }
        other => panic!("expected a partial rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_is_rejected_alone() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 1)]);
    let mut cfg = config(&brokers);
    cfg.librdkafka
        .insert("message.max.bytes".into(), usage_kafka::Property::Int(1000));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    let batch = batch_with_a_huge_event(5, 2);
    assert_rejected_alone(exporter.export(&batch).await, 2);
    assert_eq!(
        read_all(&brokers, "t.relay_usage", 1, 4).len(),
        4,
        "the rest went through"
    );
}

/// A batch of `n` `relay_usage` events of `project`, `cu` 0 to n - 1.
fn relays(n: u64, project: &str) -> Batch {
    let events = (0..n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: project.into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    Batch::from_events(events, Arc::new(Resource::new("svc")))
}

/// librdkafka's queue bounded at 5 messages: a batch of 200 fills it again and
/// again, each refusal (queue full) is waited out and the message produced again,
/// and every event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_is_waited_out_not_refused() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 1)]);
    let mut cfg = config(&brokers);
    cfg.librdkafka
        .insert("queue.buffering.max.messages".into(), usage_kafka::Property::Int(5));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    exporter.export(&relays(200, "a")).await.unwrap();
    let back = read_all(&brokers, "t.relay_usage", 1, 200);
    let mut ids: Vec<_> = back
        .iter()
        .map(|(_, v, _)| usage_core::json::decode_event(v.as_bytes()).unwrap().id())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((back.len(), ids.len()), (200, 200));
}

/// Each packed message's events, decoded from its NDJSON lines.
fn unpack(value: &str) -> Vec<Event> {
    value
        .lines()
        .map(|l| usage_core::json::decode_event(l.as_bytes()).unwrap())
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], key: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_messages_are_ndjson_grouped_by_key() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 2)]);
    let mut cfg = config(&brokers);
    cfg.events_per_message = 4;
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    let events: Vec<Event> = (0..10u64)
        .map(|cu| {
            Event::new(RelayUsage {
                project: if cu < 7 { "a" } else { "b" }.into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    let batch = Batch::from_events(events.clone(), Arc::new(Resource::new("svc")));
    exporter.export(&batch).await.unwrap();
    // a: 4 + 3, b: 3.
    let messages = read_all(&brokers, "t.relay_usage", 2, 3);
    let mut counts: Vec<usize> = Vec::new();
    let mut got: Vec<Event> = Vec::new();
    for (key, value, headers) in &messages {
        let inside = unpack(value);
        assert_eq!(header(headers, "event-count"), Some(inside.len().to_string().as_str()));
        assert_eq!(header(headers, "content-type"), Some("application/x-ndjson"));
        assert_eq!(header(headers, "kind"), Some("relay_usage"));
        assert_eq!(header(headers, "event-id"), None, "ids are in the lines");
        for e in &inside {
            assert_eq!(
                e.field("project"),
                key.as_deref().map(usage_core::Value::Str),
                "keyed by project"
            );
        }
        counts.push(inside.len());
        got.extend(inside);
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![3, 3, 4]);
    got.sort_by_key(|e| e.id());
    let mut sent = events;
    sent.sort_by_key(|e| e.id());
    assert_eq!(
        got.iter().map(|e| (e.id(), e.values())).collect::<Vec<_>>(),
        sent.iter().map(|e| (e.id(), e.values())).collect::<Vec<_>>()
    );
    let back = read_relays(&brokers);
    assert_eq!(back.len(), 10, "read_events unpacks NDJSON messages");
}

/// `headers` chooses what each message carries, read back by a consumer: only
/// `event-id` on one message per event, nothing at all on packed messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_the_chosen_ones_or_none() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 1), ("p.relay_usage", 1)]);
    let batch = relays(6, "a");
    let mut cfg = config(&brokers);
    cfg.headers = Some(vec!["event-id".into()]);
    KafkaExporter::new(&cfg, "exporters.k")
        .unwrap()
        .export(&batch)
        .await
        .unwrap();
    let each = read_all(&brokers, "t.relay_usage", 1, 6);
    assert_eq!(each.len(), 6);
    for (_, value, headers) in &each {
        let id = usage_core::json::decode_event(value.as_bytes())
            .unwrap()
            .id()
            .to_string();
        assert_eq!(headers, &vec![("event-id".to_string(), id)]);
    }
    let mut cfg = config(&brokers);
    cfg.topic = "p.{kind}".into();
    cfg.events_per_message = 3;
    cfg.headers = Some(vec![]);
    KafkaExporter::new(&cfg, "exporters.k")
        .unwrap()
        .export(&batch)
        .await
        .unwrap();
    let packed = read_all(&brokers, "p.relay_usage", 1, 2);
    assert_eq!(packed.iter().map(|(_, v, _)| unpack(v).len()).sum::<usize>(), 6);
    assert!(packed.iter().all(|(_, _, h)| h.is_empty()), "{packed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_in_several_router_chunks_packs_as_one_run() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 1)]);
    let mut cfg = config(&brokers);
    cfg.events_per_message = 4;
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    let relay = |cu| {
        Event::new(RelayUsage {
            project: "a".into(),
            cu,
            ..Default::default()
        })
    };
    // Three chunks of 3, 3 and 2 events of one kind and key, as a batch taken from
    // an exporter's queue holds them: 8 events make two full messages, not three
    // half-full ones.
    let chunks = vec![
        (0..3).map(relay).collect(),
        (3..6).map(relay).collect(),
        (6..8).map(relay).collect(),
    ];
    let batch = usage_core::testing::batch_of_chunks(chunks, Arc::new(Resource::new("svc")));
    assert_eq!(batch.slices().count(), 3);
    exporter.export(&batch).await.unwrap();
    let messages = read_all(&brokers, "t.relay_usage", 1, 2);
    let counts: Vec<usize> = messages.iter().map(|(_, value, _)| unpack(value).len()).collect();
    assert_eq!(counts, vec![4, 4]);
    let cus: Vec<u64> = messages
        .iter()
        .flat_map(|(_, value, _)| unpack(value))
        .filter_map(|e| match e.field("cu") {
            Some(usage_core::Value::U64(cu)) => Some(cu),
            _ => None,
        })
        .collect();
    assert_eq!(cus, (0..8).collect::<Vec<_>>(), "in order, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packing_keeps_under_the_byte_bound_and_a_huge_event_is_rejected_alone() {
    let (_cluster, brokers) = cluster(&[("t.relay_usage", 1)]);
    let mut cfg = config(&brokers);
    cfg.key = "id".into();
    cfg.events_per_message = 1000;
    cfg.max_message_bytes = 2000;
    cfg.librdkafka
        .insert("message.max.bytes".into(), usage_kafka::Property::Int(4000));
    let exporter = KafkaExporter::new(&cfg, "exporters.k").unwrap();
    let batch = batch_with_a_huge_event(20, 9);
    assert_rejected_alone(exporter.export(&batch).await, 9);
    let back = read_relays(&brokers);
    assert_eq!(back.len(), 19, "the rest went through");
    let messages = read_all(&brokers, "t.relay_usage", 1, 19);
    assert!(
        messages.len() > 1,
        "packed under the byte bound: {} messages",
        messages.len()
    );
    for (key, value, _) in &messages {
        assert_eq!(key, &None, "keyed by id: packed messages carry no key");
        assert!(value.len() <= 2000, "{} bytes", value.len());
    }
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
    let mut c = config("127.0.0.1:1");
    c.events_per_message = 0;
    assert_eq!(
        KafkaExporter::new(&c, "exporters.k").err().unwrap().to_string(),
        "exporters.k.events_per_message: must be at least 1"
    );
    let mut c = config("127.0.0.1:1");
    c.max_message_bytes = 10;
    assert!(KafkaExporter::new(&c, "exporters.k")
        .err()
        .unwrap()
        .to_string()
        .starts_with("exporters.k.max_message_bytes: 10 bytes is too small"));
}

/// Every event on `t.relay_usage`, unpacked, as a consumer would read them back.
fn read_relays(brokers: &str) -> Vec<Event> {
    usage_kafka::read::read_events(
        brokers,
        "t.relay_usage",
        Duration::from_millis(500),
        Duration::from_secs(10),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_trace_messages_are_daydreams_envelope_keyed_by_id() {
    let mock = MockCluster::new(1).unwrap();
    // One partition: the reader below reads partition 0 (a random key would pick
    // any of an auto-created topic's partitions).
    mock.create_topic("network_events", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let mut c = config(&brokers);
    c.key = "id".into();
    c.format = usage_kafka::Format::StreamTrace;
    c.topic = "network_events".into();
    let x = KafkaExporter::new(&c, "exporters.k").unwrap();
    let data = r#"{"type":"stream_started","client_source":"scope","session_id":"s-9","connection_info":{"ice":[1,{"a":null}]}}"#;
    let e = Event::new(NetworkEvent {
        event_type: "stream_started".into(),
        data: Some(data.into()),
        ..Default::default()
    });
    let batch = Batch::from_events(vec![e.clone()], Arc::new(Resource::new("scope")));
    x.export(&batch).await.unwrap();
    let got = read_all(&brokers, "network_events", 1, 1);
    assert_eq!(got.len(), 1);
    let (key, value, _) = &got[0];
    assert_eq!(key.as_deref(), Some(e.id().to_string().as_str()));
    let v: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(v["id"], e.id().to_string());
    assert_eq!(v["type"], "stream_trace");
    assert_eq!(v["timestamp"], e.ts().as_millis().to_string());
    assert_eq!(v["data"], serde_json::from_str::<serde_json::Value>(data).unwrap());
}

#[test]
fn stream_trace_takes_only_stream_events() {
    usage_core::link_exporters!(usage_kafka);
    let dir = tempfile::tempdir().unwrap();
    let err = |extra: &str| {
        let toml = format!(
            "[pipeline]\ndata_dir = {:?}\n[exporters.k]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\nformat = \"stream_trace\"\n{extra}",
            dir.path().display().to_string()
        );
        usage_core::Pipeline::from_config(&usage_core::UsageConfig::from_toml(&toml).unwrap())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(
        err("").starts_with("exporters.k.events: format = \"stream_trace\" takes only network_event"),
        "{}",
        err("")
    );
    assert!(err("events = [\"network_event\"]\nkey = \"stream_id\"").starts_with("exporters.k.key:"));
    assert_eq!(
        err("events = [\"network_event\"]"),
        "",
        "a stream-event instance builds"
    );
}
