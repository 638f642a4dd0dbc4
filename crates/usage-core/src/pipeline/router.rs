//! Moves events from the ingest queue into per-kind chunks and offers each chunk to
//! every exporter subscribed to its kind.

use super::batch::{BufferPool, Chunk, Slice};
use super::ingest::Ingest;
use super::queue::ExporterSlot;
use super::stats::DropStats;
use crate::event::Event;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events moved per pass, so one pass never holds the lock for long.
const DRAIN_MAX: usize = 4_096;
/// Runs of at least this many events use recycled buffers; smaller ones get
/// exact-size allocations so a slow-filling batch never pins a large buffer.
const POOLED_MIN: usize = DRAIN_MAX / 4;

pub(crate) struct Router {
    pub(crate) accepted: u64,
    scratch: Vec<Event>,
    groups: Vec<Vec<Event>>,
    pool: Arc<BufferPool>,
    warned_unrouted: Vec<String>,
    last_drop_log: Option<(Instant, DropStats)>,
}

impl Router {
    pub(crate) fn new() -> Self {
        Router {
            accepted: 0,
            scratch: Vec::with_capacity(DRAIN_MAX),
            groups: Vec::new(),
            pool: Arc::new(BufferPool::new(32, DRAIN_MAX)),
            warned_unrouted: Vec::new(),
            last_drop_log: None,
        }
    }

    /// Drains everything queued right now; returns how many events moved.
    pub(crate) fn drain(&mut self, ingest: &Ingest, slots: &[Arc<ExporterSlot>]) -> u64 {
        let mut total = 0u64;
        loop {
            let n = ingest.drain_into(&mut self.scratch, DRAIN_MAX);
            if n == 0 {
                break;
            }
            total += n as u64;
            self.accepted += n as u64;
            self.group_scratch_by_kind();
            let mut groups = std::mem::take(&mut self.groups);
            for group in groups.drain(..) {
                self.route(group, ingest, slots);
            }
            self.groups = groups;
            if n < DRAIN_MAX {
                break;
            }
        }
        total
    }

    /// Moves `scratch` into `groups`: one run per kind, order kept within a kind.
    fn group_scratch_by_kind(&mut self) {
        let first_kind = match self.scratch.first() {
            Some(e) => e.kind(),
            None => return,
        };
        if self.scratch.iter().all(|e| e.kind() == first_kind) {
            // The common case: one kind. Hand the whole buffer over.
            let replacement = if self.scratch.len() >= POOLED_MIN {
                self.pool.take().0
            } else {
                Vec::with_capacity(DRAIN_MAX)
            };
            let mut run = std::mem::replace(&mut self.scratch, replacement);
            if run.len() < POOLED_MIN {
                run.shrink_to_fit();
            }
            self.groups.push(run);
            return;
        }
        for e in self.scratch.drain(..) {
            match self.groups.iter_mut().find(|g| g[0].kind() == e.kind()) {
                Some(g) => g.push(e),
                None => self.groups.push(vec![e]),
            }
        }
    }

    fn route(&mut self, events: Vec<Event>, ingest: &Ingest, slots: &[Arc<ExporterSlot>]) {
        let Some(kind) = events.first().map(|e| e.kind().to_string()) else {
            return;
        };
        let chunk = if events.capacity() >= DRAIN_MAX && events.len() >= POOLED_MIN {
            let prefix = self.pool.take().1;
            Arc::new(Chunk::pooled(events, prefix, Some(self.pool.clone())))
        } else {
            Arc::new(Chunk::new(events))
        };
        let mut routed = false;
        for slot in slots.iter().filter(|s| s.wants(&kind)) {
            routed = true;
            let dropped = slot.offer(Slice::whole(chunk.clone()));
            if dropped > 0 {
                tracing::debug!(exporter = %slot.name, dropped, "exporter queue full, events dropped");
            }
        }
        if !routed {
            ingest
                .drops
                .unrouted
                .fetch_add(chunk.events.len() as u64, Relaxed);
            if !self.warned_unrouted.contains(&kind) {
                tracing::error!(kind = %kind, "no exporter subscribes to this event kind; its events are dropped (counted as unrouted)");
                self.warned_unrouted.push(kind);
            }
        }
    }

    /// Logs ingest drops loudly, at most every 10 s, with what changed since.
    pub(crate) fn log_drops(&mut self, now: DropStats) {
        let due = self
            .last_drop_log
            .as_ref()
            .is_none_or(|(t, _)| t.elapsed() >= Duration::from_secs(10));
        let before = self
            .last_drop_log
            .as_ref()
            .map(|(_, d)| *d)
            .unwrap_or_default();
        if !due || now.total() == before.total() {
            return;
        }
        let d = now.minus(&before);
        tracing::error!(
            queue_full = d.queue_full,
            queue_bytes = d.queue_bytes,
            block_timeout = d.block_timeout,
            shutdown = d.shutdown,
            unrouted = d.unrouted,
            total_dropped = now.total(),
            "usage events DROPPED at ingest since last report"
        );
        self.last_drop_log = Some((Instant::now(), now));
    }
}
