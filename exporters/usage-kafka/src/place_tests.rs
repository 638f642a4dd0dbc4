//! The exporter's own placement of keyed messages when its partition count is
//! wrong: the batch fails retryably, the counts are asked again, the retry lands.

use crate::{KafkaConfig, KafkaExporter};
use rdkafka::mocking::MockCluster;
use std::sync::Arc;
use usage_core::{Batch, Event, ExportError, Exporter, RelayUsage, Resource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_no_longer_exists_fails_once_and_is_asked_again() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("t.relay_usage", 2, 1).expect("topic");
    let cfg = usage_core::ExporterSection::new("k", "kafka")
        .set("brokers", cluster.bootstrap_servers())
        .set("topic", "t.{kind}")
        .set("key", "project")
        .set("message_timeout", "3s")
        .parse::<KafkaConfig>()
        .expect("settings");
    let exporter = KafkaExporter::new(&cfg, "exporters.k").expect("exporter");
    // As if the topic had 10 partitions when last asked (re-created with 2 since).
    exporter.partitions.remember("t.relay_usage", 10);
    let events = (0..40u64)
        .map(|i| {
            Event::new(RelayUsage {
                project: format!("project-{i}").into(),
                ..Default::default()
            })
        })
        .collect();
    let batch = Batch::from_events(events, Arc::new(Resource::new("svc")));
    let first = exporter.export(&batch).await;
    assert!(
        matches!(first, Err(ExportError::Retryable { .. })),
        "a partition past the topic's: retryable, got {first:?}"
    );
    assert_eq!(exporter.partitions.fresh("t.relay_usage"), None, "forgotten");
    exporter.export(&batch).await.expect("the retry asks again and lands");
    assert_eq!(exporter.partitions.fresh("t.relay_usage"), Some(2));
}
