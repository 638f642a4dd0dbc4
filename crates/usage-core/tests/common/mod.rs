//! Test exporters shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::{async_trait, Batch, Event, EventId, ExportError, Exporter, Pipeline, PipelineBuilder, RelayUsage};

/// The in-memory exporter every test records deliveries with.
pub use usage_core::testing::MemoryExporter as Recorder;

/// Never returns from export.
pub struct Hang {
    pub entered: Arc<AtomicUsize>,
}

#[async_trait]
impl Exporter for Hang {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        self.entered.fetch_add(1, SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// A pipeline that flushes every 20 ms and retries after 5-20 ms, keeping its
/// dead letters under `data_dir`: tests wait on it in milliseconds.
pub fn quick(data_dir: std::path::PathBuf) -> PipelineBuilder {
    Pipeline::builder().configure(|c| {
        c.flush_interval = Duration::from_millis(20);
        c.retry_base = Duration::from_millis(5);
        c.retry_max = Duration::from_millis(20);
        c.data_dir = data_dir;
    })
}

/// `relay_usage` number `cu` of project `p`.
pub fn relay(cu: u64) -> Event {
    Event::new(RelayUsage {
        project: "p".into(),
        cu,
        ..Default::default()
    })
}

/// Emits relays `0..n` and returns their ids in emit order.
pub fn emit_relays(p: &Pipeline, n: u64) -> Vec<EventId> {
    let sink = p.sink();
    (0..n)
        .map(|cu| {
            let e = relay(cu);
            let id = e.id();
            sink.emit(e);
            id
        })
        .collect()
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
