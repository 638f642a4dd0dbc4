//! What the handle, the router thread and the workers share: the ingest queue,
//! the router behind its lock, the exporter slots, and flush/shutdown bookkeeping.

use super::ingest::Ingest;
use super::progress::Control;
use super::queue::ExporterSlot;
use super::report::{finish, AcceptError, DeliveryError, DeliveryReport};
use super::ring::Unfilled;
use super::router::{Published, Router};
use super::stats::{ExporterStats, PipelineStats};
use crate::export::exporter::Exporter;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts of events that left without being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Losses {
    unrouted: u64,
    dropped: u64,
    dead_lettered: u64,
    /// Larger than a spool record: sending again will not help, as with unrouted.
    too_large: u64,
}

impl Losses {
    /// What was lost since `before`, named, and whether it was only drops; `None`
    /// when nothing was.
    pub(super) fn since(&self, before: &Losses) -> Option<(String, bool)> {
        let only_drops = self.dead_lettered == before.dead_lettered
            && self.unrouted == before.unrouted
            && self.too_large == before.too_large;
        let parts: Vec<String> = [
            (self.dropped - before.dropped, "dropped (a queue was full)"),
            (
                self.dead_lettered - before.dead_lettered,
                "dead-lettered (an exporter refused them)",
            ),
            (
                self.unrouted - before.unrouted,
                "unrouted (no exporter takes their kind)",
            ),
            (
                self.too_large - before.too_large,
                "too large for the spool (over MAX_EVENT_BYTES)",
            ),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} events {what}"))
        .collect();
        (!parts.is_empty()).then(|| (parts.join(", "), only_drops))
    }
}

pub(crate) struct Inner {
    pub(super) ingest: Arc<Ingest>,
    pub(super) slots: Vec<Arc<ExporterSlot>>,
    pub(super) exporters: Vec<(String, Arc<dyn Exporter>)>,
    pub(super) router: Mutex<Router>,
    /// The router's progress, read without its lock.
    pub(super) published: Arc<Published>,
    pub(super) spool: Option<Arc<crate::spool::Shared>>,
    pub(super) control: Arc<Control>,
    pub(super) router_tick: Duration,
    pub(super) flush_base: Mutex<PipelineStats>,
}

impl Inner {
    pub(super) fn lock_router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves queued events to the exporters; returns the seq below which every
    /// event routed so far lies (every event emitted so far with
    /// `Unfilled::Revoke`; a patient drain may stop at another thread's claim).
    pub(super) fn drain(&self, unfilled: Unfilled) -> u64 {
        let mut r = self.lock_router();
        if r.drain(&self.ingest, &self.slots, unfilled) > 0 {
            self.control.progress.bump();
        }
        r.log_drops(self.ingest.drops.snapshot());
        r.end_seq()
    }

    /// Drains until every event queued now has been through a commit (with a spool),
    /// however many drain passes that takes: one pass stops at `COMMIT_MAX`. `Err`
    /// when the spool is full and the queue cannot move, or at `deadline`.
    pub(super) fn drain_queued(&self, deadline: Instant) -> Result<(), AcceptError> {
        // The queue pops in order: once its head passes this mark, every event
        // queued now has been popped (and slots claimed but never filled passed).
        let mark = self.ingest.mark();
        loop {
            self.drain(Unfilled::Revoke);
            // Under the router's lock no drain is between its pop and its commit.
            let through = {
                let _r = self.lock_router();
                self.ingest.drained_to(mark)
            };
            if through {
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

    /// Every way an event can leave without being delivered, summed so far.
    pub(super) fn losses(&self) -> Losses {
        let d = &self.ingest.drops;
        let mut l = Losses {
            unrouted: d.unrouted.load(Relaxed),
            dropped: d.queue_full.load(Relaxed) + d.queue_bytes.load(Relaxed) + d.spool_error.load(Relaxed),
            too_large: d.too_large.load(Relaxed),
            dead_lettered: 0,
        };
        for s in &self.slots {
            l.dropped += s.counters.dropped_queue_full.load(Relaxed) + s.counters.failed.load(Relaxed);
            l.dead_lettered += s.counters.dead_lettered.load(Relaxed);
        }
        l
    }

    pub(super) fn housekeeping(&self) {
        self.lock_router().housekeeping(&self.slots);
    }

    pub(super) fn stats(&self) -> PipelineStats {
        let (accepted, queued) = self.published.accepted_and_queued(&self.ingest);
        let end_seq = self.published.end_seq.load(Relaxed);
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
                    queue_max_bytes: s.max_bytes as u64,
                    queue_max_events: s.max_events as u64,
                    export_seconds: c.export_seconds.snapshot(),
                    batch_events: c.batch_events.snapshot(),
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
            queued_bytes: self.ingest.bytes_of(queued as usize) as u64,
            queue_max_bytes: self.ingest.max_bytes() as u64,
            exporters,
            spool: self.spool.as_ref().map(|s| s.stats()),
        }
    }

    /// Every exporter has finished every event below `target`.
    pub(super) fn caught_up(&self, target: u64) -> bool {
        self.slots.iter().all(|s| s.acked.load(Relaxed) >= target)
    }

    pub(super) fn all_finished(&self) -> bool {
        self.slots.iter().all(|s| s.finished.load(Relaxed))
    }

    /// Starts a flush: moves queued events to exporters, asks workers to send now,
    /// and returns what each exporter must have finished for the flush to be complete.
    pub(super) fn begin_flush(&self) -> u64 {
        let target = self.drain(Unfilled::Revoke);
        self.control.flush_gen.fetch_add(1, Relaxed);
        for s in &self.slots {
            s.notify.notify_one();
        }
        target
    }

    pub(super) fn end_flush(&self) -> Result<DeliveryReport, DeliveryError> {
        self.housekeeping();
        let now = self.stats();
        let mut base = self.flush_base.lock().unwrap_or_else(|p| p.into_inner());
        let report = DeliveryReport::between(&base, &now);
        *base = now;
        finish(report)
    }

    /// Starts a shutdown: refuses new events, moves queued ones, tells workers to
    /// finish their queues and exit.
    pub(super) fn begin_shutdown(&self, deadline: Instant) {
        *self.control.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.ingest.close();
        self.drain(Unfilled::Revoke);
        self.control.stopping.store(true, Relaxed);
        self.ingest.wake();
        for s in &self.slots {
            s.notify.notify_one();
        }
    }

    pub(super) fn end_shutdown(&self) -> Result<DeliveryReport, DeliveryError> {
        self.control.router_exit.store(true, Relaxed);
        self.ingest.wake();
        let late = self.ingest.discard_remaining();
        if late > 0 {
            tracing::error!(
                events = late,
                "events emitted while the pipeline shut down were not delivered (counted as dropped: shutdown)"
            );
        }
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
