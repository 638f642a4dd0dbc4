//! One exporter instance's own queue: chunk slices routed to it, bounded in
//! events and bytes, so a slow exporter only ever fills its own queue.

use super::batch::{Batch, Slice};
use super::stats::ExporterCounters;
use crate::resource::Resource;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct QueueState {
    slices: VecDeque<Slice>,
    pub(crate) events: usize,
    pub(crate) bytes: usize,
}

impl QueueState {
    pub(crate) fn oldest(&self) -> Option<Instant> {
        self.slices.front().map(|s| s.chunk.created)
    }

    /// Takes up to `max_events` / `max_bytes` (at least one event) from the front.
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
            // How many of this slice's events fit in the remaining count and bytes;
            // a batch always takes at least one event.
            let room = max_events - n;
            let mut fit = front.fit(room, max_bytes - bytes);
            if fit == 0 && n == 0 {
                fit = 1;
            }
            let fit_bytes = front.bytes_of_first(fit);
            if fit == 0 {
                break;
            }
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
    max_events: usize,
    max_bytes: usize,
    state: Mutex<QueueState>,
    /// Data arrived, flush requested, or stopping.
    pub(crate) notify: Notify,
    /// Manual resume of a paused exporter.
    pub(crate) resume: Notify,
    pub(crate) counters: ExporterCounters,
    pub(crate) finished: std::sync::atomic::AtomicBool,
}

impl ExporterSlot {
    pub(crate) fn new(
        name: String,
        type_name: String,
        kinds: Option<Vec<String>>,
        max_events: usize,
        max_bytes: usize,
    ) -> Self {
        ExporterSlot {
            name,
            type_name,
            kinds,
            max_events,
            max_bytes,
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
            resume: Notify::new(),
            counters: ExporterCounters::default(),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn wants(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|k| k.iter().any(|x| x == kind))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds as much of the slice as fits this exporter's bounds (oldest first) and
    /// drops-and-counts the rest. Returns how many events were dropped.
    pub(crate) fn offer(&self, mut slice: Slice) -> usize {
        let total = slice.len();
        let accepted = {
            let mut q = self.lock();
            let room = self.max_events.saturating_sub(q.events);
            let mut fit = slice.fit(room, self.max_bytes.saturating_sub(q.bytes));
            if fit == 0 && q.events == 0 && room > 0 {
                fit = 1; // an event larger than the byte bound still gets through alone
            }
            let fit_bytes = slice.bytes_of_first(fit);
            if fit > 0 {
                let part = if fit == total {
                    slice
                } else {
                    slice.take_front(fit)
                };
                q.events += fit;
                q.bytes += fit_bytes;
                q.slices.push_back(part);
            }
            fit
        };
        let dropped = total - accepted;
        if dropped > 0 {
            self.counters
                .dropped_queue_full
                .fetch_add(dropped as u64, Relaxed);
        }
        if accepted > 0 {
            self.counters.routed.fetch_add(accepted as u64, Relaxed);
            self.notify.notify_one();
        }
        dropped
    }
}
