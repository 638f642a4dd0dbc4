//! Test exporters shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use usage_core::{async_trait, Batch, EventId, ExportError, Exporter};

/// What a scripted exporter does on each call.
pub type Script = Box<dyn Fn(&Batch, usize) -> Result<(), ExportError> + Send + Sync>;

/// Records every delivered event id and every attempt, and answers from a script.
#[derive(Clone)]
pub struct Recorder {
    pub delivered: Arc<Mutex<Vec<EventId>>>,
    pub attempts: Arc<Mutex<Vec<(Instant, usize)>>>,
    pub batch_sizes: Arc<Mutex<Vec<usize>>>,
    pub calls: Arc<AtomicUsize>,
    pub probe_ok: Arc<AtomicBool>,
    script: Arc<Script>,
}

impl Recorder {
    pub fn ok() -> Self {
        Self::scripted(|_, _| Ok(()))
    }

    pub fn scripted(f: impl Fn(&Batch, usize) -> Result<(), ExportError> + Send + Sync + 'static) -> Self {
        Recorder {
            delivered: Arc::default(),
            attempts: Arc::default(),
            batch_sizes: Arc::default(),
            calls: Arc::default(),
            probe_ok: Arc::new(AtomicBool::new(false)),
            script: Arc::new(Box::new(f)),
        }
    }

    pub fn delivered_ids(&self) -> Vec<EventId> {
        self.delivered.lock().unwrap().clone()
    }

    pub fn delivered_count(&self) -> usize {
        self.delivered.lock().unwrap().len()
    }
}

#[async_trait]
impl Exporter for Recorder {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let call = self.calls.fetch_add(1, SeqCst);
        self.attempts.lock().unwrap().push((Instant::now(), batch.len()));
        let r = (self.script)(batch, call);
        match &r {
            Ok(()) => {
                self.batch_sizes.lock().unwrap().push(batch.len());
                self.delivered.lock().unwrap().extend(batch.iter().map(|e| e.id()));
            }
            Err(ExportError::PartiallyRejected { indices, .. }) => {
                let ok = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !indices.contains(i))
                    .map(|(_, e)| e.id());
                self.delivered.lock().unwrap().extend(ok);
            }
            Err(_) => {}
        }
        r
    }

    async fn probe(&self) -> Result<(), ExportError> {
        if self.probe_ok.load(SeqCst) {
            Ok(())
        } else {
            Err(ExportError::paused("still unauthorized"))
        }
    }
}

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
