//! One exporter instance's own queue: chunk slices routed to it, bounded in
//! events and bytes, so a slow exporter only ever fills its own queue.
//!
//! Every event has a sequence number, assigned by the router in routing order;
//! each slice covers a contiguous range. The slot tracks how far the router has
//! gone (`passed`) and how far the worker has finished (`acked`), which is what
//! flush waits on and what the spool's cursors persist.
//!
//! With a spool, an overflowing queue does not drop: the slot becomes *lagging*,
//! the router stops queueing for it, and the worker reads the skipped events back
//! from the spool. Once the queue has drained to half its bounds the router queues
//! again, the first slice marked as following a gap: the worker reads the gap from
//! the spool, then goes on from memory. Reading back costs more than taking events
//! from memory, so an exporter that fell behind once would otherwise read every
//! later event from disk until it caught up with the router, which under steady
//! load it might never do.

use super::stats::ExporterCounters;
use crate::event::resource::Resource;
use crate::export::batch::{Batch, Slice};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct QueueState {
    slices: VecDeque<Slice>,
    pub(crate) events: usize,
    pub(crate) bytes: usize,
    /// End seq of the last chunk the router offered to or skipped for this slot.
    pub(crate) passed: u64,
    /// Spool mode only: events after the last queued slice up to `passed` were not
    /// queued and must be read from the spool; the router queues nothing meanwhile
    /// until the queue has drained to half its bounds.
    pub(crate) lagging: bool,
    /// First sequence numbers of queued slices that follow a gap (events the
    /// router did not queue while lagging), oldest first: the worker reads the
    /// spool up to each before taking that slice.
    gaps: VecDeque<u64>,
}

impl QueueState {
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.slices.front().map(|s| s.chunk.created)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Where the gap before the front slice ends, if that slice follows one.
    pub(crate) fn gap_before_front(&self) -> Option<u64> {
        let front = self.slices.front()?;
        self.gaps.front().copied().filter(|&g| g == front.start_seq())
    }

    /// The worker has read the gap before the front slice from the spool.
    pub(crate) fn gap_read(&mut self) {
        self.gaps.pop_front();
    }

    /// Takes up to `max_events` / `max_bytes` (at least one event) from the front,
    /// stopping before a slice that follows a gap (its gap must be read first).
    /// The caller has read any gap before the front slice.
    pub(crate) fn take_batch(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        resource: &Arc<Resource>,
    ) -> Option<Batch> {
        let mut taken = Vec::new();
        let (mut n, mut bytes) = (0usize, 0usize);
        while let Some(front) = self.slices.front_mut() {
            if n >= max_events || bytes >= max_bytes {
                break;
            }
            if n > 0 && self.gaps.front() == Some(&front.start_seq()) {
                break;
            }
            // How many of this slice's events fit in the remaining count and bytes;
            // a batch always takes at least one event.
            let room = max_events - n;
            let mut fit = front.fit(room, max_bytes - bytes);
            if fit == 0 && n == 0 {
                fit = 1;
            }
            if fit == 0 {
                break;
            }
            let fit_bytes = front.bytes_of_first(fit);
            let slice = if fit == front.len() {
                self.slices.pop_front()?
            } else {
                front.take_front(fit)
            };
            n += fit;
            bytes += fit_bytes;
            taken.push(slice);
        }
        self.events -= n;
        self.bytes = self.bytes.saturating_sub(bytes);
        Batch::from_slices(taken, resource.clone())
    }
}

/// Shared by the router (producer), the worker (consumer), stats and flush.
pub(crate) struct ExporterSlot {
    pub(crate) name: String,
    pub(crate) type_name: String,
    kinds: Option<Vec<String>>,
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    /// With a spool, overflow means lagging instead of dropping.
    spooled: bool,
    state: Mutex<QueueState>,
    /// Data arrived, flush requested, or stopping.
    pub(crate) notify: Notify,
    /// Wakes a paused worker when `resume_requests` moves.
    pub(crate) resume: Notify,
    /// Manual resumes asked for so far; a worker that pauses later compares it
    /// with what it was when its refused attempt began, so an earlier request
    /// never ends a later pause.
    resume_requests: AtomicU64,
    pub(crate) counters: ExporterCounters,
    /// Every event with a smaller seq is finished for this exporter.
    pub(crate) acked: AtomicU64,
    pub(crate) finished: AtomicBool,
}

impl ExporterSlot {
    pub(crate) fn new(
        name: String,
        type_name: String,
        kinds: Option<Vec<String>>,
        max_events: usize,
        max_bytes: usize,
        spooled: bool,
    ) -> Self {
        ExporterSlot {
            name,
            type_name,
            kinds,
            max_events,
            max_bytes,
            spooled,
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            resume: Notify::new(),
            resume_requests: AtomicU64::new(0),
            counters: ExporterCounters::default(),
            acked: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// Asks a paused worker to resume now.
    pub(crate) fn request_resume(&self) {
        self.resume_requests.fetch_add(1, SeqCst);
        self.resume.notify_waiters();
    }

    pub(crate) fn resume_requests(&self) -> u64 {
        self.resume_requests.load(SeqCst)
    }

    /// Starts a spooled slot at its cursor; everything from there to `spool_end`
    /// is read from the spool first.
    pub(crate) fn start_at(&self, cursor: u64, spool_end: u64) {
        self.acked.store(cursor, Relaxed);
        let mut q = self.lock();
        q.passed = spool_end;
        q.lagging = cursor < spool_end;
    }

    pub(crate) fn wants(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.iter().any(|x| x == kind))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the router moved past a chunk this exporter does not subscribe to.
    pub(crate) fn skip(&self, end_seq: u64) {
        let mut q = self.lock();
        q.passed = q.passed.max(end_seq);
    }

    /// Offers a slice (seqs `..end_seq`). Queues as much as fits this exporter's
    /// bounds (oldest first). The rest is dropped and counted, or, with a spool,
    /// left for the worker to read back (the slot starts lagging).
    /// Returns how many events were dropped.
    pub(crate) fn offer(&self, mut slice: Slice, end_seq: u64) -> usize {
        let total = slice.len();
        let (accepted, dropped) = {
            let mut q = self.lock();
            q.passed = q.passed.max(end_seq);
            // A lagging slot queues again once half its bounds are free, so each
            // gap read back from the spool is long, not one per routed slice.
            let after_gap = q.lagging;
            if after_gap && (q.events > self.max_events / 2 || q.bytes > self.max_bytes / 2) {
                return 0; // the worker reads it from the spool
            }
            let room = self.max_events.saturating_sub(q.events);
            let mut fit = slice.fit(room, self.max_bytes.saturating_sub(q.bytes));
            if fit == 0 && q.events == 0 && room > 0 {
                fit = 1; // an event larger than the byte bound still gets through alone
            }
            let fit_bytes = slice.bytes_of_first(fit);
            if fit > 0 {
                if after_gap {
                    // What was skipped is read back before this slice.
                    q.gaps.push_back(slice.start_seq());
                    q.lagging = false;
                }
                let part = if fit == total { slice } else { slice.take_front(fit) };
                q.events += fit;
                q.bytes += fit_bytes;
                q.slices.push_back(part);
            }
            let rest = total - fit;
            if rest > 0 && self.spooled {
                q.lagging = true;
                (fit, 0)
            } else {
                (fit, rest)
            }
        };
        if dropped > 0 {
            self.counters.dropped_queue_full.fetch_add(dropped as u64, Relaxed);
        }
        if accepted > 0 {
            self.counters.routed.fetch_add(accepted as u64, Relaxed);
        }
        self.notify.notify_one();
        dropped
    }
}
