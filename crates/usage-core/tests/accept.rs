//! `Pipeline::accept`, what the gateway answers by: a request's events are taken
//! whole or not at all (review M3), and without a spool an acknowledgement means
//! every one was delivered, never that some were dropped, dead-lettered or found
//! no exporter (review H7).

mod common;

use common::{Hang, Recorder as MemoryExporter};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{AcceptError, Event, ExportError, ExporterOptions, Pipeline, PipelineBuilder, RelayUsage};

fn relays(n: u64) -> Vec<Event> {
    (0..n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: "p".into(),
                cu,
                ..Default::default()
            })
        })
        .collect()
}

fn base(dir: &std::path::Path, capacity: usize) -> PipelineBuilder {
    Pipeline::builder().configure(|c| {
        c.flush_interval = Duration::from_millis(10);
        c.retry_base = Duration::from_millis(5);
        c.retry_max = Duration::from_millis(20);
        c.queue_capacity = capacity;
        c.data_dir = dir.to_path_buf();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_taken_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let hang = Hang {
        entered: Arc::default(),
    };
    let p = base(dir.path(), 5).exporter("hung", hang).build().unwrap();
    // More than the queue ever holds: refused as too large, nothing enqueued.
    let err = p.accept(relays(10), Duration::from_millis(200)).await.unwrap_err();
    assert_eq!(err, AcceptError::TooLarge);
    assert_eq!(p.stats().accepted, 0, "no prefix was enqueued");
    // A batch that fits while the queue has room for it is taken whole...
    let err = p.accept(relays(5), Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(err, AcceptError::Timeout, "taken, not delivered: the exporter hangs");
    assert_eq!(p.stats().accepted, 5);
    let _ = p.shutdown(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spool_only_a_loss_free_delivery_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = MemoryExporter::scripted(|_, _| Err(ExportError::rejected("no such project")));
    let p = base(dir.path(), 1000).exporter("refusing", refusing).build().unwrap();
    let err = p.accept(relays(3), Duration::from_secs(10)).await.unwrap_err();
    match &err {
        AcceptError::NotDelivered { what, transient } => {
            assert!(what.contains("3 events dead-lettered"), "{what}");
            assert!(!transient, "a re-send would be refused again");
        }
        other => panic!("acknowledged a dead-lettered batch: {other:?}"),
    }
    let _ = p.shutdown(Duration::from_secs(1)).await;

    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryExporter::new();
    let only_streams = ExporterOptions {
        events: Some(vec!["network_event".into()]),
        ..Default::default()
    };
    let p = base(dir.path(), 1000)
        .exporter_options("streams", only_streams, memory.clone())
        .build()
        .unwrap();
    let err = p.accept(relays(2), Duration::from_secs(10)).await.unwrap_err();
    assert!(
        matches!(&err, AcceptError::NotDelivered { what, .. } if what.contains("2 events unrouted")),
        "{err:?}"
    );
    // What the exporter takes is acknowledged.
    let streams = vec![Event::new(usage_core::NetworkEvent::default())];
    p.accept(streams, Duration::from_secs(10)).await.unwrap();
    assert_eq!(memory.count(), 1);
    // The shutdown report names the unrouted two as not delivered, too.
    let report = p.shutdown(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(report.report().dropped_at_ingest.unrouted, 2);
}
