//! One task per exporter instance: takes batches from its own queue, exports them,
//! and decides what every failure means (retry, pause, split, dead-letter).

use super::backoff::Backoff;
use super::deadletter::DeadLetter;
use super::pause::PauseGate;
use super::progress::Control;
use super::queue::ExporterSlot;
use super::spool_reader::SpoolReader;
use crate::config::{ConfigError, ExporterSection, PipelineConfig};
use crate::event::resource::Resource;
use crate::event::Event;
use crate::export::batch::Batch;
use crate::export::exporter::{ExportError, Exporter};
use crate::export::registry::{ExporterDefaults, MAX_BATCHES_IN_FLIGHT};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::{sleep, sleep_until, timeout};

/// Resolved per-instance settings.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSettings {
    pub(crate) batch_max_events: usize,
    pub(crate) batch_max_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) export_timeout: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) probe_interval: Duration,
    /// Batches exported at once.
    pub(crate) batches_in_flight: usize,
}

impl WorkerSettings {
    /// An instance's settings: its own keys, else its type's defaults, else
    /// `[pipeline]`. An error names the key that makes the worker unable to run
    /// (a zero batch bound would end it; a zero timeout or backoff would spin).
    pub(crate) fn resolve(
        section: &ExporterSection,
        d: &ExporterDefaults,
        c: &PipelineConfig,
    ) -> Result<WorkerSettings, ConfigError> {
        let o = &section.options;
        let s = WorkerSettings {
            batch_max_events: o.batch_max_events.or(d.batch_max_events).unwrap_or(c.batch_max_events),
            batch_max_bytes: o.batch_max_bytes.or(d.batch_max_bytes).unwrap_or(c.batch_max_bytes),
            flush_interval: o.flush_interval.or(d.flush_interval).unwrap_or(c.flush_interval),
            export_timeout: o.export_timeout.unwrap_or(c.export_timeout),
            retry_base: o.retry_base.unwrap_or(c.retry_base),
            retry_max: o.retry_max.unwrap_or(c.retry_max),
            probe_interval: o.probe_interval.unwrap_or(c.probe_interval),
            batches_in_flight: o
                .batches_in_flight
                .or(d.batches_in_flight)
                .unwrap_or(1)
                .clamp(1, MAX_BATCHES_IN_FLIGHT),
        };
        let key = |k: &str| format!("exporters.{}.{k}", section.name);
        for (k, zero) in [
            ("batch_max_events", s.batch_max_events == 0),
            ("batch_max_bytes", s.batch_max_bytes == 0),
            ("queue_max_bytes", o.queue_max_bytes == Some(0)),
            ("export_timeout", s.export_timeout.is_zero()),
            ("retry_base", s.retry_base.is_zero()),
            ("probe_interval", s.probe_interval.is_zero()),
        ] {
            if zero {
                return Err(ConfigError::key(key(k), "must be greater than 0"));
            }
        }
        if let Some(n) = o.batches_in_flight {
            if d.batches_in_flight.is_none() && n != 1 {
                return Err(ConfigError::key(
                    key("batches_in_flight"),
                    format!("the {} exporter sends one batch at a time", section.type_name),
                ));
            }
            if !(1..=MAX_BATCHES_IN_FLIGHT).contains(&n) {
                return Err(ConfigError::key(
                    key("batches_in_flight"),
                    format!("{n} is not between 1 and {MAX_BATCHES_IN_FLIGHT}"),
                ));
            }
        }
        if s.retry_max < s.retry_base {
            return Err(ConfigError::key(
                key("retry_max"),
                format!("{:?} is less than retry_base {:?}", s.retry_max, s.retry_base),
            ));
        }
        Ok(s)
    }
}

pub(crate) struct Worker {
    pub(crate) slot: Arc<ExporterSlot>,
    /// The spool to read from when this exporter lags (or after a restart).
    pub(crate) spool: Option<SpoolReader>,
    pub(crate) exporter: Arc<dyn Exporter>,
    pub(crate) settings: WorkerSettings,
    pub(crate) dead_letter: DeadLetter,
    pub(crate) resource: Arc<Resource>,
    pub(crate) control: Arc<Control>,
    /// One refused delivery probes while the others wait (see [`PauseGate`]).
    pub(crate) pause: PauseGate,
}

/// What the worker does next.
enum Step {
    Read { from: u64, to: u64 },
    Wait(Option<Instant>),
}

/// Logs a recurring problem at most once per interval, with how many were suppressed.
struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed_count)` when it is time to log.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_none_or(|l| now.duration_since(l) >= self.every) {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl Worker {
    pub(crate) async fn run(self) {
        let mut abort = self.control.abort.subscribe();
        let name = self.slot.name.clone();
        tokio::select! {
            _ = self.drain_queue() => {}
            _ = abort.wait_for(|a| *a) => {
                tracing::error!(exporter = %name, "shutdown deadline reached; abandoning in-flight and queued events");
            }
        }
        self.slot.counters.in_flight.store(0, Relaxed);
        let close_budget = self
            .control
            .remaining()
            .unwrap_or(Duration::from_secs(5))
            .max(Duration::from_millis(200));
        match timeout(close_budget, self.exporter.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(exporter = %name, error = %e, "exporter close failed"),
            Err(_) => tracing::error!(exporter = %name, "exporter close timed out"),
        }
        self.slot.finished.store(true, Relaxed);
        self.control.progress.bump();
    }

    /// Waits until a batch is due: full by count or bytes, its oldest event has waited
    /// `flush_interval`, a flush was requested, or the pipeline is stopping. What the
    /// router skipped while this exporter lagged is read from the spool from `pos`
    /// instead, before the queued events that follow it. Returns `None` once
    /// stopping with nothing left.
    /// `idle` says no batch is in flight. Only then may finding nothing more
    /// acknowledge up to `pos`, and only then is a batch taken before it is full:
    /// while others are in flight a partial batch would only mean more, smaller
    /// exports (packed Kafka messages half full), and it goes as soon as they end.
    pub(super) async fn next_batch(&self, pos: &mut u64, seen_flush: &mut u64, idle: bool) -> Option<Batch> {
        let s = &self.settings;
        loop {
            let notified = self.slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let step = {
                let mut q = self.slot.lock();
                let stopping = self.control.stopping.load(Relaxed);
                let flush_gen = self.control.flush_gen.load(Relaxed);
                if let Some(gap_end) = q.gap_before_front() {
                    if *pos >= gap_end || self.spool.is_none() {
                        q.gap_read();
                    }
                }
                if let Some(gap_end) = q.gap_before_front() {
                    // Events the router skipped while this slot lagged come first.
                    Step::Read {
                        from: *pos,
                        to: gap_end,
                    }
                } else if !q.is_empty() {
                    let oldest = q.oldest();
                    let due = oldest.is_some_and(|t| t.elapsed() >= s.flush_interval);
                    let full = q.events >= s.batch_max_events || q.bytes >= s.batch_max_bytes;
                    let asked = due || stopping || flush_gen > *seen_flush || q.lagging;
                    if full || (idle && asked) {
                        return q.take_batch(s.batch_max_events, s.batch_max_bytes, &self.resource);
                    }
                    // Not idle: the batch in flight ending wakes the drain loop.
                    Step::Wait(oldest.filter(|_| idle).map(|t| t + s.flush_interval))
                } else if q.lagging && *pos < q.passed && self.spool.is_some() {
                    if idle || q.passed - *pos >= s.batch_max_events as u64 {
                        Step::Read {
                            from: *pos,
                            to: q.passed,
                        }
                    } else {
                        Step::Wait(None)
                    }
                } else {
                    // Caught up: everything the router passed is finished or not ours.
                    q.lagging = false;
                    *pos = (*pos).max(q.passed);
                    if idle {
                        self.slot.acked.fetch_max(*pos, Relaxed);
                    }
                    *seen_flush = flush_gen;
                    if stopping {
                        return None;
                    }
                    Step::Wait(None)
                }
            };
            match step {
                Step::Read { from, to } => match self.read_spool(from, to).await {
                    Ok((events, next)) if events.is_empty() => {
                        if next <= from {
                            // Nothing readable yet (the spool has not written that far):
                            // wait to be woken rather than read again at once.
                            tokio::select! {
                                _ = &mut notified => {}
                                _ = sleep(s.flush_interval.clamp(Duration::from_millis(1), Duration::from_millis(100))) => {}
                            }
                            continue;
                        }
                        *pos = next.max(*pos);
                        if idle {
                            self.slot.acked.fetch_max(*pos, Relaxed);
                            self.control.progress.bump();
                        }
                    }
                    Ok((events, next)) => {
                        return Some(Batch::from_events(events, self.resource.clone()).with_end_seq(next));
                    }
                    Err(e) => {
                        tracing::error!(exporter = %self.slot.name, "cannot read the spool, retrying: {e}");
                        tokio::select! {
                            _ = &mut notified => {}
                            _ = sleep(self.settings.retry_max.min(Duration::from_secs(1))) => {}
                        }
                    }
                },
                Step::Wait(Some(d)) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = sleep_until(d.into()) => {}
                    }
                }
                Step::Wait(None) => notified.await,
            }
        }
    }

    /// Reads this exporter's kinds from the spool, `from..to`, up to one batch.
    async fn read_spool(&self, from: u64, to: u64) -> std::io::Result<(Vec<Event>, u64)> {
        match &self.spool {
            Some(reader) => reader.read(from, to).await,
            None => Ok((Vec::new(), to)),
        }
    }

    /// Exports one batch until it is delivered, dead-lettered or (only at the
    /// shutdown deadline) abandoned. "Too large" splits it into halves.
    pub(super) async fn deliver(&self, batch: Batch) {
        let c = &self.slot.counters;
        let mut work = vec![batch];
        let mut backoff = Backoff::new(self.settings.retry_base, self.settings.retry_max);
        let mut retry_log = Throttle::new(Duration::from_secs(10));
        while let Some(mut b) = work.pop() {
            backoff.reset();
            let mut attempt = 0u32;
            loop {
                b.set_attempt(attempt);
                if attempt > 0 {
                    c.retried.fetch_add(1, Relaxed);
                }
                let epoch = self.pause_epoch();
                let started = std::time::Instant::now();
                let result = self.export_once(&b).await;
                c.export_seconds.observe(started.elapsed().as_secs_f64());
                let err = match result {
                    Ok(()) => {
                        c.exported.fetch_add(b.len() as u64, Relaxed);
                        c.batch_events.observe(b.len() as f64);
                        break;
                    }
                    Err(e) => e,
                };
                c.errors.fetch_add(1, Relaxed);
                c.set_error(&err.to_string());
                match err {
                    ExportError::Retryable { message, retry_after } => {
                        let wait = backoff.next(retry_after);
                        if let Some(suppressed) = retry_log.ready() {
                            tracing::warn!(
                                exporter = %self.slot.name, events = b.len(), attempt, wait_ms = wait.as_millis() as u64,
                                suppressed, "export failed, will retry: {message}"
                            );
                        }
                        sleep(wait).await;
                    }
                    ExportError::Paused { message } => {
                        self.pause_until_resumed(&message, epoch).await;
                        backoff.reset();
                    }
                    ExportError::TooLarge { message } => {
                        match b.split() {
                            Some((left, right)) => {
                                tracing::warn!(exporter = %self.slot.name, events = b.len(), "batch too large, splitting: {message}");
                                work.push(right);
                                work.push(left);
                            }
                            None => {
                                let events: Vec<&Event> = b.iter().collect();
                                self.dead_letter(&b, &events, &format!("too large even alone: {message}"))
                                    .await;
                            }
                        }
                        break;
                    }
                    ExportError::Rejected { message } => {
                        let events: Vec<&Event> = b.iter().collect();
                        self.dead_letter(&b, &events, &message).await;
                        break;
                    }
                    ExportError::PartiallyRejected { indices, message } => {
                        let rejected = b.select(&indices);
                        c.exported.fetch_add((b.len() - rejected.len()) as u64, Relaxed);
                        self.dead_letter(&b, &rejected, &message).await;
                        break;
                    }
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }

    /// One attempt, bounded by `export_timeout`, in its own task so a panicking
    /// exporter costs a retry, not the worker.
    async fn export_once(&self, batch: &Batch) -> Result<(), ExportError> {
        let exporter = self.exporter.clone();
        let owned = batch.clone();
        let task = tokio::spawn(async move { exporter.export(&owned).await });
        let guard = AbortOnDrop(task.abort_handle());
        let out = match timeout(self.settings.export_timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) if join.is_panic() => Err(ExportError::retryable(format!(
                "exporter panicked: {}",
                panic_message(join)
            ))),
            Ok(Err(join)) => Err(ExportError::retryable(format!("export task failed: {join}"))),
            Err(_) => Err(ExportError::retryable(format!(
                "export timed out after {:?}",
                self.settings.export_timeout
            ))),
        };
        drop(guard);
        out
    }

    async fn dead_letter(&self, batch: &Batch, events: &[&Event], reason: &str) {
        let c = &self.slot.counters;
        let n = events.len() as u64;
        match self
            .dead_letter
            .write(events, batch.resource(), &batch.id().to_string(), reason)
            .await
        {
            Ok(path) => {
                c.dead_lettered.fetch_add(n, Relaxed);
                tracing::error!(
                    exporter = %self.slot.name, events = n, path = %path.display(),
                    "destination rejected events; written to dead-letter file: {reason}"
                );
            }
            Err(e) => {
                c.failed.fetch_add(n, Relaxed);
                tracing::error!(
                    exporter = %self.slot.name, events = n,
                    "destination rejected events and the dead-letter write failed ({e}); events LOST: {reason}"
                );
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into()),
        Err(e) => e.to_string(),
    }
}
