//! The `Pipeline` handle: emit, accept, flush, stats, shutdown.

use super::ingest::{Ingest, Refused};
use super::progress::{Control, Progress};
use super::report::{AcceptError, DeliveryError, DeliveryReport};
use super::router::Router;
use super::shared::Inner;
use super::stats::{ExporterStats, PipelineStats};
use crate::event::Event;
use crate::pipeline::sink::UsageSink;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

/// The pipeline's own runtime while it is being built; dropped without blocking.
pub(crate) struct RuntimeGuard(pub(super) Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A running pipeline: owns the router and one worker per exporter.
///
/// ```
/// use std::time::Duration;
/// use usage_core::{async_trait, Batch, ExportError, Exporter, Pipeline, RelayUsage};
///
/// struct Discard;
/// #[async_trait]
/// impl Exporter for Discard {
///     async fn export(&self, _batch: &Batch) -> Result<(), ExportError> { Ok(()) }
/// }
///
/// let pipeline = Pipeline::builder().exporter("discard", Discard).build().unwrap();
/// let sink = pipeline.sink();
/// sink.emit(RelayUsage { cu: 10, ..Default::default() });
/// let report = pipeline.shutdown_blocking(Duration::from_secs(5)).unwrap();
/// assert_eq!(report.exporter("discard").unwrap().delivered, 1);
/// ```
pub struct Pipeline {
    pub(super) inner: Arc<Inner>,
    pub(super) sink: UsageSink,
    pub(super) router: Mutex<Option<JoinHandle<()>>>,
    pub(super) handle: Option<Handle>,
    pub(super) runtime: Mutex<Option<Runtime>>,
    pub(super) done: Mutex<Option<Result<DeliveryReport, DeliveryError>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field(
                "exporters",
                &self.inner.slots.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A handle for emitting; cheap to clone, usable from any thread.
    pub fn sink(&self) -> UsageSink {
        self.sink.clone()
    }

    /// Counters for the pipeline and each exporter.
    pub fn stats(&self) -> PipelineStats {
        self.inner.stats()
    }

    /// Exporter instance names, in config order.
    pub fn exporter_names(&self) -> Vec<String> {
        self.inner.slots.iter().map(|s| s.name.clone()).collect()
    }

    /// The exporters an event of `kind` is routed to, in config order.
    pub fn exporters_for(&self, kind: &str) -> Vec<&str> {
        self.inner
            .slots
            .iter()
            .filter(|s| crate::is_valid_name(kind) && s.wants(kind))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Runs every exporter's healthcheck concurrently, each bounded by `timeout`.
    /// Returns `(instance name, Ok or the reason)` in config order.
    pub async fn healthcheck(&self, timeout: Duration) -> Vec<(String, Result<(), String>)> {
        let mut out = Vec::new();
        for (name, handle) in self.spawn_healthchecks(timeout, None) {
            let r = match handle {
                Some(h) => h.await.unwrap_or_else(|e| Err(format!("healthcheck task failed: {e}"))),
                None => Err("the pipeline is shut down".to_string()),
            };
            out.push((name, r));
        }
        out
    }

    /// [`healthcheck`](Pipeline::healthcheck) for code without an async runtime.
    pub fn healthcheck_blocking(&self, timeout: Duration) -> Vec<(String, Result<(), String>)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let names: Vec<String> = self
            .spawn_healthchecks(timeout, Some(tx))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        let mut results: Vec<(String, Result<(), String>)> = Vec::new();
        while results.len() < names.len() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(r) => results.push(r),
                Err(_) => break,
            }
        }
        names
            .into_iter()
            .map(|n| {
                let r = results
                    .iter()
                    .find(|(m, _)| *m == n)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| Err("no answer before the timeout".into()));
                (n, r)
            })
            .collect()
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn spawn_healthchecks(
        &self,
        timeout: Duration,
        report: Option<std::sync::mpsc::Sender<(String, Result<(), String>)>>,
    ) -> Vec<(String, Option<tokio::task::JoinHandle<Result<(), String>>>)> {
        self.inner
            .exporters
            .iter()
            .map(|(name, exporter)| {
                let (name2, exporter, tx) = (name.clone(), exporter.clone(), report.clone());
                let task = async move {
                    let r = match tokio::time::timeout(timeout, exporter.healthcheck()).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("timed out after {timeout:?}")),
                    };
                    if let Some(tx) = tx {
                        let _ = tx.send((name2, r.clone()));
                    }
                    r
                };
                let handle = match (&self.handle, self.done_result().is_none()) {
                    (Some(h), true) => Some(h.spawn(task)),
                    _ => None,
                };
                if handle.is_none() {
                    if let Some(tx) = &report {
                        let _ = tx.send((name.clone(), Err("the pipeline is shut down".into())));
                    }
                }
                (name.clone(), handle)
            })
            .collect()
    }

    /// Enqueues `events` and returns once they are durable: committed to the spool
    /// (with one), or acknowledged by every exporter (without). For receivers that
    /// must not answer "accepted" before that, like the gateway.
    pub async fn accept(&self, events: Vec<Event>, timeout: Duration) -> Result<(), AcceptError> {
        let deadline = Instant::now() + timeout;
        if self.done_result().is_some() {
            return Err(AcceptError::ShuttingDown);
        }
        // Any commit that fails from here on may have held these events.
        let write_errors = self.spool_write_errors();
        // Without a spool, any loss from here on may have hit these events.
        let losses = self.inner.losses();
        self.inner.ingest.offer_all(events).map_err(|refused| match refused {
            Refused::Full => AcceptError::Full,
            Refused::NeverFits => AcceptError::TooLarge,
        })?;
        let inner = self.inner.clone();
        let durable = self.inner.spool.is_some();
        // The drain appends and commits (and, with fsync = "batch", fsyncs) everything queued.
        // Without a spool the caller waits for delivery, so partial batches go out now
        // rather than at their flush interval.
        let target = tokio::task::spawn_blocking(move || {
            if durable {
                inner.drain_queued(deadline).map(|()| 0)
            } else {
                Ok(inner.begin_flush())
            }
        })
        .await
        .map_err(|_| AcceptError::ShuttingDown)??;
        if self.inner.spool.is_some() {
            if self.spool_write_errors() != write_errors {
                // Not known to be on disk: the caller retries (ids make that harmless).
                return Err(AcceptError::NotDurable);
            }
            return Ok(());
        }
        let inner = &self.inner;
        if !inner
            .control
            .progress
            .wait_async(deadline, || inner.caught_up(target))
            .await
        {
            return Err(AcceptError::Timeout);
        }
        // Caught up also counts events that were dropped, dead-lettered or found no
        // exporter: only a delivery with no loss at all is an acknowledgement.
        match inner.losses().since(&losses) {
            None => Ok(()),
            Some((what, transient)) => Err(AcceptError::NotDelivered { what, transient }),
        }
    }

    pub(super) fn spool_write_errors(&self) -> u64 {
        self.inner.spool.as_ref().map_or(0, |s| {
            s.counters.write_errors.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Resumes a paused exporter now (e.g. after rotating its key) instead of
    /// waiting for the next probe: every batch it holds is retried. A request
    /// while nothing is paused answers only an attempt already under way, never
    /// a later pause. Returns false if there is no such exporter.
    pub fn resume(&self, exporter: &str) -> bool {
        match self.inner.slots.iter().find(|s| s.name == exporter) {
            Some(s) => {
                s.request_resume();
                true
            }
            None => false,
        }
    }

    /// Sends everything emitted so far and waits until every exporter has finished
    /// it or `timeout` passes. `Ok` only if nothing since the previous flush was
    /// dropped, dead-lettered or left pending.
    pub async fn flush(&self, timeout: Duration) -> Result<DeliveryReport, DeliveryError> {
        let deadline = Instant::now() + timeout;
        let target = off_the_runtime(|| self.inner.begin_flush());
        let inner = &self.inner;
        inner
            .control
            .progress
            .wait_async(deadline, || inner.caught_up(target))
            .await;
        self.inner.end_flush()
    }

    /// [`flush`](Pipeline::flush) for code without an async runtime. Do not call it
    /// from a task on the runtime the pipeline runs on.
    pub fn flush_blocking(&self, timeout: Duration) -> Result<DeliveryReport, DeliveryError> {
        let deadline = Instant::now() + timeout;
        let target = self.inner.begin_flush();
        let inner = &self.inner;
        inner
            .control
            .progress
            .wait_blocking(deadline, || inner.caught_up(target));
        self.inner.end_flush()
    }

    /// Stops accepting events, delivers everything queued until `timeout`, then
    /// abandons the rest and reports exactly what each exporter delivered and what
    /// it did not. `Ok` only if every event emitted was delivered. Idempotent.
    pub async fn shutdown(&self, timeout: Duration) -> Result<DeliveryReport, DeliveryError> {
        if let Some(r) = self.done_result() {
            return r;
        }
        let deadline = Instant::now() + timeout;
        off_the_runtime(|| self.inner.begin_shutdown(deadline));
        let inner = &self.inner;
        if !inner
            .control
            .progress
            .wait_async(deadline, || inner.all_finished())
            .await
        {
            let _ = inner.control.abort.send(true);
            let grace = Instant::now() + Duration::from_secs(2);
            inner.control.progress.wait_async(grace, || inner.all_finished()).await;
        }
        off_the_runtime(|| self.finish_shutdown())
    }

    /// [`shutdown`](Pipeline::shutdown) for code without an async runtime. Do not
    /// call it from a task on the runtime the pipeline runs on.
    pub fn shutdown_blocking(&self, timeout: Duration) -> Result<DeliveryReport, DeliveryError> {
        if let Some(r) = self.done_result() {
            return r;
        }
        let deadline = Instant::now() + timeout;
        self.inner.begin_shutdown(deadline);
        let inner = &self.inner;
        if !inner.control.progress.wait_blocking(deadline, || inner.all_finished()) {
            let _ = inner.control.abort.send(true);
            let grace = Instant::now() + Duration::from_secs(2);
            inner.control.progress.wait_blocking(grace, || inner.all_finished());
        }
        self.finish_shutdown()
    }

    pub(super) fn done_result(&self) -> Option<Result<DeliveryReport, DeliveryError>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn finish_shutdown(&self) -> Result<DeliveryReport, DeliveryError> {
        let result = self.inner.end_shutdown();
        if let Some(router) = self.router.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = router.join();
        }
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.clone());
        if let Some(rt) = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
            rt.shutdown_background();
        }
        result
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.done_result().is_some() {
            return;
        }
        // Dropped without shutdown: outside async code we can still deliver what is
        // queued; inside a runtime we must not block, so we say what is lost.
        if Handle::try_current().is_err() {
            let _ = self.shutdown_blocking(Duration::from_secs(5));
        } else {
            self.inner.begin_shutdown(Instant::now());
            let _ = self.inner.control.abort.send(true);
            self.inner.control.router_exit.store(true, Relaxed);
            self.inner.ingest.wake();
            let pending: u64 = self.inner.stats().exporters.iter().map(ExporterStats::pending).sum();
            tracing::error!(
                pending,
                "usage Pipeline dropped inside an async runtime without shutdown(); call shutdown().await to deliver queued events"
            );
            if let Some(rt) = self.runtime.lock().unwrap_or_else(|p| p.into_inner()).take() {
                rt.shutdown_background();
            }
        }
    }
}

/// Runs `f`, which may write and fsync the spool or join the router thread, from
/// async code: on a multi-threaded runtime the worker thread hands its other tasks
/// over first, so they are not stalled behind the disk (review M6). On a
/// current-thread runtime, or none, it runs in place.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Pipeline {
    pub(super) fn disabled() -> Pipeline {
        let (abort, _) = watch::channel(false);
        let router = Router::new(None);
        let published = router.published.clone();
        let inner = Arc::new(Inner {
            ingest: Arc::new(Ingest::new(1, 1, 1, Default::default(), Duration::ZERO)),
            slots: Vec::new(),
            exporters: Vec::new(),
            router: Mutex::new(router),
            published,
            spool: None,
            control: Arc::new(Control {
                stopping: AtomicBool::new(true),
                router_exit: AtomicBool::new(true),
                flush_gen: AtomicU64::new(0),
                abort,
                progress: Progress::new(),
                deadline: Mutex::new(None),
            }),
            router_tick: Duration::from_secs(1),
            flush_base: Mutex::new(PipelineStats::default()),
        });
        Pipeline {
            inner,
            sink: UsageSink::noop(),
            router: Mutex::new(None),
            handle: None,
            runtime: Mutex::new(None),
            done: Mutex::new(Some(Ok(DeliveryReport::default()))),
        }
    }
}
