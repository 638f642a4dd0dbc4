//! Test exporters shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::{async_trait, Batch, ExportError, Exporter};

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
