//! The pipeline: ingest queue -> router -> one queue and worker per exporter.
//!
//! ```text
//! emit ──► ingest queue ──► router ──► [queue ► worker ► exporter A]
//!  (lock-free, bounded)      (per kind)  [queue ► worker ► exporter B]
//! ```
//!
//! Each worker owns its batching, retries, pause and dead-letter handling, so a
//! hung or failing exporter only ever fills its own queue.

pub(crate) mod backoff;
pub(crate) mod batch;
pub(crate) mod deadletter;
pub(crate) mod ingest;
pub(crate) mod queue;
pub(crate) mod report;
pub(crate) mod router;
pub(crate) mod stats;
pub(crate) mod worker;

use crate::config::{ConfigError, ExporterOptions, ExporterSection, PipelineConfig, UsageConfig};
use crate::event::kind::{kind_schema, registered_kinds, validate_registered_kinds};
use crate::event::Event;
use crate::exporter::Exporter;
use crate::registry::{exporter_factory, unknown_type_error, ExporterContext, ExporterDefaults};
use crate::resource::Resource;
use crate::sink::UsageSink;
use crate::spool::{cursor, Spool, SpoolConfig};
use ingest::Ingest;
use queue::ExporterSlot;
use report::{DeliveryError, DeliveryReport};
use router::Router;
use stats::{ExporterStats, PipelineStats};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{watch, Notify};
use worker::{Worker, WorkerSettings};

/// Wakes anyone waiting for progress (flush/shutdown), from sync or async code.
pub(crate) struct Progress {
    generation: Mutex<u64>,
    cv: Condvar,
    notify: Notify,
}

impl Progress {
    fn new() -> Self {
        Progress {
            generation: Mutex::new(0),
            cv: Condvar::new(),
            notify: Notify::new(),
        }
    }

    pub(crate) fn bump(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    /// Blocks until `done()` or the deadline; returns `done()`.
    fn wait_blocking(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Bounded waits also cover progress that bumps no one (e.g. a router pass).
            let step = (deadline - now).min(Duration::from_millis(50));
            g = self.cv.wait_timeout(g, step).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    async fn wait_async(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(step, notified).await;
        }
    }
}

/// Signals shared by the pipeline handle and its tasks.
pub(crate) struct Control {
    pub(crate) stopping: AtomicBool,
    /// Tells the router thread to exit.
    router_exit: AtomicBool,
    pub(crate) flush_gen: AtomicU64,
    pub(crate) abort: watch::Sender<bool>,
    pub(crate) progress: Progress,
    deadline: Mutex<Option<Instant>>,
}

impl Control {
    /// Time left before the shutdown deadline, if one is set.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

struct Inner {
    ingest: Arc<Ingest>,
    slots: Vec<Arc<ExporterSlot>>,
    exporters: Vec<(String, Arc<dyn Exporter>)>,
    router: Mutex<Router>,
    spool: Option<Arc<crate::spool::Shared>>,
    control: Arc<Control>,
    router_tick: Duration,
    flush_base: Mutex<PipelineStats>,
}

impl Inner {
    fn lock_router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves queued events to the exporters; returns the seq below which every
    /// event emitted so far has been routed.
    fn drain(&self) -> u64 {
        let mut r = self.lock_router();
        if r.drain(&self.ingest, &self.slots) > 0 {
            self.control.progress.bump();
        }
        r.log_drops(self.ingest.drops.snapshot());
        r.end_seq()
    }

    /// Drains until every event queued now has been through a commit (with a spool),
    /// however many drain passes that takes: one pass stops at `COMMIT_MAX`. `Err`
    /// when the spool is full and the queue cannot move, or at `deadline`.
    fn drain_queued(&self, deadline: Instant) -> Result<(), AcceptError> {
        // With the router locked nothing drains, so these two agree: FIFO order
        // means the queue's current events are through once `accepted` reaches this.
        let target = {
            let r = self.lock_router();
            r.accepted + self.ingest.len() as u64
        };
        loop {
            self.drain();
            if self.lock_router().accepted >= target {
                return Ok(());
            }
            if self.ingest.is_spool_full() {
                return Err(AcceptError::Full);
            }
            if Instant::now() >= deadline {
                return Err(AcceptError::Timeout);
            }
        }
    }

    fn housekeeping(&self) {
        self.lock_router().housekeeping(&self.slots);
    }

    fn stats(&self) -> PipelineStats {
        let (accepted, end_seq) = {
            let r = self.lock_router();
            (r.accepted, r.end_seq())
        };
        let queued = self.ingest.len() as u64;
        let dropped = self.ingest.drops.snapshot();
        let exporters = self
            .slots
            .iter()
            .map(|s| {
                let (qe, qb) = {
                    let q = s.lock();
                    (q.events as u64, q.bytes as u64)
                };
                let c = &s.counters;
                ExporterStats {
                    name: s.name.clone(),
                    type_name: s.type_name.clone(),
                    routed: c.routed.load(Relaxed),
                    exported: c.exported.load(Relaxed),
                    retried: c.retried.load(Relaxed),
                    errors: c.errors.load(Relaxed),
                    dead_lettered: c.dead_lettered.load(Relaxed),
                    dropped_queue_full: c.dropped_queue_full.load(Relaxed),
                    failed: c.failed.load(Relaxed),
                    queued_events: qe,
                    queued_bytes: qb,
                    in_flight: c.in_flight.load(Relaxed),
                    paused: c.paused.load(Relaxed),
                    cursor: s.acked.load(Relaxed),
                    lag: end_seq.saturating_sub(s.acked.load(Relaxed)),
                    last_error: c.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                }
            })
            .collect();
        PipelineStats {
            emitted: accepted + queued + dropped.total() - dropped.unrouted,
            accepted: accepted + queued,
            dropped,
            queued_events: queued,
            queued_bytes: self.ingest.bytes() as u64,
            exporters,
            spool: self.spool.as_ref().map(|s| s.stats()),
        }
    }

    /// Every exporter has finished every event below `target`.
    fn caught_up(&self, target: u64) -> bool {
        self.slots.iter().all(|s| s.acked.load(Relaxed) >= target)
    }

    fn all_finished(&self) -> bool {
        self.slots.iter().all(|s| s.finished.load(Relaxed))
    }

    /// Starts a flush: moves queued events to exporters, asks workers to send now,
    /// and returns what each exporter must have finished for the flush to be complete.
    fn begin_flush(&self) -> u64 {
        let target = self.drain();
        self.control.flush_gen.fetch_add(1, Relaxed);
        for s in &self.slots {
            s.notify.notify_one();
        }
        target
    }

    fn end_flush(&self) -> Result<DeliveryReport, DeliveryError> {
        self.housekeeping();
        let now = self.stats();
        let mut base = self.flush_base.lock().unwrap_or_else(|p| p.into_inner());
        let report = DeliveryReport::between(&base, &now);
        *base = now;
        finish(report)
    }

    /// Starts a shutdown: refuses new events, moves queued ones, tells workers to
    /// finish their queues and exit.
    fn begin_shutdown(&self, deadline: Instant) {
        *self.control.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.ingest.close();
        self.drain();
        self.control.stopping.store(true, Relaxed);
        self.ingest.wake();
        for s in &self.slots {
            s.notify.notify_one();
        }
    }

    fn end_shutdown(&self) -> Result<DeliveryReport, DeliveryError> {
        self.control.router_exit.store(true, Relaxed);
        self.ingest.wake();
        {
            let mut r = self.lock_router();
            r.housekeeping(&self.slots);
            if let Some(spool) = r.spool.as_mut() {
                if let Err(e) = spool.sync() {
                    tracing::error!("spool fsync at shutdown failed: {e}");
                }
                spool.unlock();
            }
        }
        let report = DeliveryReport::between(&PipelineStats::default(), &self.stats());
        if !report.is_complete() {
            tracing::error!("usage pipeline shut down with undelivered events: {report}");
        }
        finish(report)
    }
}

/// The pipeline's own runtime while it is being built; dropped without blocking.
struct RuntimeGuard(Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Why [`Pipeline::accept`] did not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// The queue or the spool is full: try again later.
    #[error("the pipeline is full")]
    Full,
    /// Not durable before the timeout (exporters are slow or down and there is no spool).
    #[error("not acknowledged before the timeout")]
    Timeout,
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    ShuttingDown,
    /// The spool could not write (a write, fsync or roll error): these events may
    /// be among those refused. Try again; ids make a repeat harmless.
    #[error("the spool could not write the events")]
    NotDurable,
}

fn finish(report: DeliveryReport) -> Result<DeliveryReport, DeliveryError> {
    if report.is_complete() {
        Ok(report)
    } else {
        Err(DeliveryError(report))
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
    inner: Arc<Inner>,
    sink: UsageSink,
    router: Mutex<Option<JoinHandle<()>>>,
    handle: Option<Handle>,
    runtime: Mutex<Option<Runtime>>,
    done: Mutex<Option<Result<DeliveryReport, DeliveryError>>>,
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
    /// A builder with default settings and no exporters.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Builds from configuration, looking exporter types up in the registry. With
    /// no `[exporters]`, uses the `file` exporter under `pipeline.data_dir`.
    pub fn from_config(config: &UsageConfig) -> Result<Pipeline, ConfigError> {
        PipelineBuilder::from_config(config)?.build()
    }

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
    fn spawn_healthchecks(
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
        for e in events {
            if !self.inner.ingest.offer(e) {
                return Err(AcceptError::Full);
            }
        }
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
        if inner
            .control
            .progress
            .wait_async(deadline, || inner.caught_up(target))
            .await
        {
            Ok(())
        } else {
            Err(AcceptError::Timeout)
        }
    }

    fn spool_write_errors(&self) -> u64 {
        self.inner.spool.as_ref().map_or(0, |s| {
            s.counters.write_errors.load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Resumes a paused exporter now (e.g. after rotating its key) instead of
    /// waiting for the next probe. Returns false if there is no such exporter.
    pub fn resume(&self, exporter: &str) -> bool {
        match self.inner.slots.iter().find(|s| s.name == exporter) {
            Some(s) => {
                s.resume.notify_one();
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
        let target = self.inner.begin_flush();
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
        self.inner.begin_shutdown(deadline);
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
        self.finish_shutdown()
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

    fn done_result(&self) -> Option<Result<DeliveryReport, DeliveryError>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn finish_shutdown(&self) -> Result<DeliveryReport, DeliveryError> {
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

struct ExporterSpec {
    section: ExporterSection,
    exporter: Arc<dyn Exporter>,
    defaults: ExporterDefaults,
}

/// Builds a [`Pipeline`] in code or from [`UsageConfig`].
#[derive(Default)]
pub struct PipelineBuilder {
    config: PipelineConfig,
    spool: Option<SpoolConfig>,
    exporters: Vec<ExporterSpec>,
    handle: Option<Handle>,
    disabled: bool,
}

impl PipelineBuilder {
    /// Resolves every configured exporter through the registry.
    pub fn from_config(config: &UsageConfig) -> Result<Self, ConfigError> {
        let mut b = PipelineBuilder {
            config: config.pipeline.clone(),
            spool: config.spool.clone(),
            disabled: !config.pipeline.enabled,
            ..Default::default()
        };
        if b.disabled {
            return Ok(b);
        }
        let resource = Arc::new(b.resource());
        let mut sections = config.exporters.clone();
        if sections.is_empty() {
            sections.push(ExporterSection::new("file", "file"));
        }
        for section in sections {
            if section.options.enabled == Some(false) {
                continue;
            }
            let factory = match exporter_factory(&section.type_name) {
                Some(f) => f,
                None if config.exporters.is_empty() => {
                    return Err(ConfigError::msg(
                        "no [exporters] are configured and the default `file` exporter is not linked: \
                         add the usage-file crate and `usage_core::link_exporters!(usage_file);`",
                    ))
                }
                None => return Err(unknown_type_error(&section)),
            };
            if section.options.enabled.is_none() && !(factory.enabled_by_default)(&section) {
                tracing::info!(exporter = %section.name, "exporter disabled by default (see its docs); set enabled = true to force it");
                continue;
            }
            let ctx = ExporterContext {
                section: section.clone(),
                data_dir: b.config.data_dir.clone(),
                resource: resource.clone(),
            };
            let exporter = (factory.build)(&ctx)?;
            b.exporters.push(ExporterSpec {
                section,
                exporter: Arc::from(exporter),
                defaults: factory.defaults,
            });
        }
        Ok(b)
    }

    /// Replaces the pipeline settings.
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adjusts the pipeline settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut PipelineConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Adds an exporter instance that receives every kind, with pipeline defaults.
    pub fn exporter(self, name: impl Into<String>, exporter: impl Exporter) -> Self {
        let name = name.into();
        self.exporter_with(ExporterSection::new(name, "custom"), exporter)
    }

    /// Adds an exporter instance with options (kinds, batching overrides).
    pub fn exporter_with(mut self, section: ExporterSection, exporter: impl Exporter) -> Self {
        self.exporters.push(ExporterSpec {
            section,
            exporter: Arc::new(exporter),
            defaults: ExporterDefaults::NONE,
        });
        self
    }

    /// Adds an exporter instance with the given common options.
    pub fn exporter_options(self, name: impl Into<String>, options: ExporterOptions, exporter: impl Exporter) -> Self {
        let mut section = ExporterSection::new(name, "custom");
        section.options = options;
        self.exporter_with(section, exporter)
    }

    /// Puts a crash-safe spool between the router and the exporters.
    pub fn spool(mut self, spool: SpoolConfig) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Runs the exporter workers on the host's runtime instead of an owned one
    /// (the router always has its own thread).
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    fn resource(&self) -> Resource {
        let r = Resource::new(self.config.service_name.as_str());
        match &self.config.service_instance_id {
            Some(id) => r.with_instance_id(id.as_str()),
            None => r,
        }
    }

    /// Validates everything and starts the pipeline.
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        self.config.validate()?;
        validate_registered_kinds().map_err(ConfigError::msg)?;
        if self.disabled {
            return Ok(Pipeline::disabled());
        }
        if self.exporters.is_empty() {
            return Err(ConfigError::msg("the pipeline has no exporters"));
        }
        let mut names: Vec<&str> = Vec::new();
        for spec in &self.exporters {
            let name = spec.section.name.as_str();
            if names.contains(&name) {
                return Err(ConfigError::key(format!("exporters.{name}"), "is defined twice"));
            }
            names.push(name);
            for kind in spec.section.options.events.iter().flatten() {
                if kind_schema(kind).is_none() {
                    let known: Vec<String> = registered_kinds().iter().map(|s| s.kind.to_string()).collect();
                    return Err(ConfigError::key(
                        format!("exporters.{name}.events"),
                        format!("unknown event kind `{kind}`; known kinds: {}", known.join(", ")),
                    ));
                }
            }
        }
        // A build that fails after this point drops the runtime: without blocking, so a
        // caller inside async code (the gateway) gets the error, not a panic.
        let (mut runtime, handle) = match self.handle.clone() {
            Some(h) => (RuntimeGuard(None), h),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("usage-pipeline")
                    .enable_all()
                    .build()
                    .map_err(|e| ConfigError::msg(format!("cannot start the pipeline runtime: {e}")))?;
                let h = rt.handle().clone();
                (RuntimeGuard(Some(rt)), h)
            }
        };
        let c = &self.config;
        // Wake the router about every half batch of bytes (at least 64 KiB).
        let wake_bytes = (c.batch_max_bytes / 2).clamp(64 << 10, c.queue_max_bytes.max(1));
        let ingest = Arc::new(Ingest::new(
            c.queue_capacity,
            c.queue_max_bytes,
            wake_bytes,
            c.full_policy,
            c.block_timeout,
        ));
        let resource = Arc::new(self.resource());
        let mut spool_data_end = 0;
        let spool = match self.spool.clone() {
            Some(cfg) => {
                if cfg.max_bytes == 0 || cfg.segment_bytes < 4096 {
                    return Err(ConfigError::key(
                        "spool",
                        "max_bytes must be > 0 and segment_bytes at least 4KiB",
                    ));
                }
                let (spool, report) =
                    Spool::open(cfg, resource.clone()).map_err(|e| ConfigError::msg(e.to_string()))?;
                tracing::info!(
                    events = report.events,
                    segments = report.segments,
                    quarantined_bytes = report.quarantined_bytes,
                    missing_events = report.missing_events,
                    unreadable_events = report.unreadable_events,
                    damaged_events = report.damaged_events,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "spool recovered"
                );
                spool_data_end = report.data_end;
                Some(spool)
            }
            None => None,
        };
        let spool_shared = spool.as_ref().map(|s| s.shared.clone());
        let spool_end = spool.as_ref().map_or(0, Spool::next_seq);
        let (abort, _) = watch::channel(false);
        let control = Arc::new(Control {
            stopping: AtomicBool::new(false),
            router_exit: AtomicBool::new(false),
            flush_gen: AtomicU64::new(0),
            abort,
            progress: Progress::new(),
            deadline: Mutex::new(None),
        });
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        let mut exporters = Vec::new();
        for spec in self.exporters {
            exporters.push((spec.section.name.clone(), spec.exporter.clone()));
            let o = &spec.section.options;
            let d = spec.defaults;
            let settings = WorkerSettings {
                batch_max_events: o.batch_max_events.or(d.batch_max_events).unwrap_or(c.batch_max_events),
                batch_max_bytes: o.batch_max_bytes.or(d.batch_max_bytes).unwrap_or(c.batch_max_bytes),
                flush_interval: o.flush_interval.or(d.flush_interval).unwrap_or(c.flush_interval),
                export_timeout: o.export_timeout.unwrap_or(c.export_timeout),
                retry_base: o.retry_base.unwrap_or(c.retry_base),
                retry_max: o.retry_max.unwrap_or(c.retry_max),
                probe_interval: o.probe_interval.unwrap_or(c.probe_interval),
            };
            let max_events = o
                .queue_max_events
                .unwrap_or(c.queue_capacity)
                .max(settings.batch_max_events);
            let max_bytes = o
                .queue_max_bytes
                .unwrap_or_else(|| c.queue_max_bytes.max(settings.batch_max_bytes.saturating_mul(2)));
            let slot = Arc::new(ExporterSlot::new(
                spec.section.name.clone(),
                spec.section.type_name.clone(),
                o.events.clone(),
                max_events,
                max_bytes,
                spool_shared.is_some(),
            ));
            if let Some(shared) = &spool_shared {
                slot.start_at(start_cursor(shared, &slot.name, spool_end, spool_data_end), spool_end);
            }
            workers.push(Worker {
                slot: slot.clone(),
                spool: spool_shared.clone(),
                exporter: spec.exporter,
                settings,
                dead_letter: deadletter::DeadLetter::new(&c.data_dir, &spec.section.name),
                resource: resource.clone(),
                control: control.clone(),
            });
            slots.push(slot);
        }
        let inner = Arc::new(Inner {
            ingest: ingest.clone(),
            slots,
            exporters,
            router: Mutex::new(Router::new(spool)),
            spool: spool_shared,
            control,
            router_tick: router_tick(c, self.spool.as_ref()),
            flush_base: Mutex::new(PipelineStats::default()),
        });
        for w in workers {
            handle.spawn(w.run());
        }
        let router = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("usage-router".into())
                .spawn(move || run_router(inner))
                .map_err(|e| ConfigError::msg(format!("cannot start the router thread: {e}")))?
        };
        ingest.set_router(router.thread().clone());
        Ok(Pipeline {
            sink: UsageSink::from_ingest(ingest),
            inner,
            router: Mutex::new(Some(router)),
            handle: Some(handle),
            runtime: Mutex::new(runtime.0.take()),
            done: Mutex::new(None),
        })
    }
}

impl Pipeline {
    fn disabled() -> Pipeline {
        let (abort, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            ingest: Arc::new(Ingest::new(1, 1, 1, Default::default(), Duration::ZERO)),
            slots: Vec::new(),
            exporters: Vec::new(),
            router: Mutex::new(Router::new(None)),
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

/// Router tick: short enough for the flush interval and the spool's fsync interval.
fn router_tick(c: &PipelineConfig, spool: Option<&SpoolConfig>) -> Duration {
    let mut tick = (c.flush_interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    if let Some(crate::spool::FsyncMode::Interval(d)) = spool.map(|s| s.fsync) {
        tick = tick.min((d / 2).max(Duration::from_millis(1)));
    }
    tick
}

/// Where a spooled exporter starts: its cursor, or the oldest retained event when
/// the cursor is missing or unreadable (at-least-once: nothing is skipped).
fn start_cursor(spool: &crate::spool::Shared, exporter: &str, end: u64, data_end: u64) -> u64 {
    let oldest = spool.stats().oldest_seq.min(end);
    let path = cursor::path(&spool.dir, exporter);
    match cursor::load(&path) {
        // An exporter only acknowledges what was written: a cursor past the data is
        // damage (or the data went missing), and skipping to it would skip events.
        cursor::Loaded::Seq(s) if crate::spool::cursor_past_data(s, data_end, oldest) => {
            tracing::warn!(
                exporter,
                cursor = s,
                data_end,
                "spool cursor is PAST THE END of the spooled data; re-delivering from the oldest spooled event \
                 (duplicates keep their ids)"
            );
            oldest
        }
        cursor::Loaded::Seq(s) if s < oldest => {
            // Segments are deleted only once every exporter is past them: these are gone.
            tracing::warn!(
                exporter,
                cursor = s,
                oldest,
                missing_events = oldest - s,
                "spooled events this exporter had not delivered are MISSING (their segments were deleted or emptied)"
            );
            oldest
        }
        cursor::Loaded::Seq(s) => s,
        cursor::Loaded::Missing => {
            if end > oldest {
                tracing::info!(
                    exporter,
                    from = oldest,
                    to = end,
                    "no spool cursor: delivering every spooled event (at-least-once)"
                );
            }
            oldest
        }
        cursor::Loaded::Garbage(why) => {
            let q = spool
                .dir
                .join("quarantine")
                .join(format!("{exporter}.cursor.{}", crate::Timestamp::now().as_micros()));
            let moved = std::fs::rename(&path, &q).is_ok();
            spool.counters.quarantined_regions.fetch_add(1, Relaxed);
            tracing::error!(
                exporter, reason = %why, moved_to = %q.display(), moved,
                "spool cursor is DAMAGED; re-delivering from the oldest spooled event (duplicates keep their ids)"
            );
            oldest
        }
    }
}

/// The router thread: drains on wake-ups and ticks, keeps the spool tidy, exits on request.
fn run_router(inner: Arc<Inner>) {
    let mut last_housekeeping = Instant::now();
    while !inner.control.router_exit.load(Relaxed) {
        std::thread::park_timeout(inner.router_tick);
        inner.drain();
        crate::event::clock::recalibrate();
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            inner.housekeeping();
            last_housekeeping = Instant::now();
        } else if inner.spool.is_some() {
            let mut r = inner.lock_router();
            if let Some(spool) = r.spool.as_mut() {
                if let Err(e) = spool.sync_if_due() {
                    tracing::error!("spool fsync failed: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "start_cursor_tests.rs"]
mod start_cursor_tests;
