//! Moves events from the ingest queue into per-kind chunks, numbers them, appends
//! them to the spool (when there is one) with one group commit per pass, and offers
//! each chunk to every exporter subscribed to its kind.

use super::ingest::Ingest;
use super::queue::ExporterSlot;
use super::ring::Unfilled;
use super::stats::DropStats;
use crate::event::Event;
use crate::export::batch::{BufferPool, Chunk, Slice};
use crate::spool::{cursor, Spool};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events moved per pass, so one pass never holds the lock for long.
const DRAIN_MAX: usize = 4_096;
/// Runs of at least this many events use recycled buffers; smaller ones get
/// exact-size allocations so a slow-filling batch never pins a large buffer.
const POOLED_MIN: usize = DRAIN_MAX / 4;
/// Most events appended before one group commit.
const COMMIT_MAX: usize = 64 * 1024;

/// What the router has done, readable without its lock (which it holds across
/// spool writes and fsyncs): stats and health checks never wait on the disk.
#[derive(Default)]
pub(crate) struct Published {
    /// Events moved out of the ingest queue.
    accepted: AtomicU64,
    /// Every event below this seq is routed.
    pub(crate) end_seq: AtomicU64,
    /// Odd while events are between the ingest queue and `accepted`.
    moving: AtomicU64,
}

/// Walks of the ingest queue [`Published::accepted_and_queued`] tries before it
/// counts slots in use instead.
const MAX_QUEUE_WALKS: u32 = 8;

impl Published {
    /// `accepted` and the ingest queue's length at one moment: no event is counted
    /// in both or in neither.
    pub(crate) fn accepted_and_queued(&self, ingest: &Ingest) -> (u64, u64) {
        // Counting the queued events walks the queue; a router draining without
        // pause could keep moving events under every walk. After a few tries the
        // count is the slots in use, which may include slots emitting threads have
        // claimed and not yet filled (at most 47 per thread in the default ring).
        let mut walks = 0;
        loop {
            let before = self.moving.load(SeqCst);
            if before.is_multiple_of(2) {
                let queued = if walks < MAX_QUEUE_WALKS {
                    walks += 1;
                    ingest.len()
                } else {
                    ingest.slots_in_use()
                };
                let accepted = self.accepted.load(SeqCst);
                if self.moving.load(SeqCst) == before {
                    return (accepted, queued as u64);
                }
            }
            std::hint::spin_loop();
        }
    }
}

pub(crate) struct Router {
    pub(crate) accepted: u64,
    pub(crate) published: Arc<Published>,
    /// Next sequence number (without a spool; the spool numbers its own).
    next_seq: u64,
    pub(crate) spool: Option<Spool>,
    scratch: Vec<Event>,
    groups: Vec<Vec<Event>>,
    ready: Vec<Arc<Chunk>>,
    pool: Arc<BufferPool>,
    warned_unrouted: Vec<String>,
    /// Per exporter (by slot position): when its queue drops were last logged, and
    /// how many since.
    exporter_drops: Vec<(Option<Instant>, u64)>,
    last_drop_log: Option<(Instant, DropStats)>,
    persisted: Vec<u64>,
    spool_errors: u64,
}

impl Router {
    pub(crate) fn new(spool: Option<Spool>) -> Self {
        let published = Published::default();
        if let Some(s) = &spool {
            published.end_seq.store(s.next_seq(), Relaxed);
        }
        Router {
            accepted: 0,
            published: Arc::new(published),
            next_seq: 0,
            spool,
            scratch: Vec::with_capacity(DRAIN_MAX),
            groups: Vec::new(),
            ready: Vec::new(),
            pool: Arc::new(BufferPool::new(32, DRAIN_MAX)),
            warned_unrouted: Vec::new(),
            exporter_drops: Vec::new(),
            last_drop_log: None,
            persisted: Vec::new(),
            spool_errors: 0,
        }
    }

    /// The seq the next event will get: everything below is routed.
    pub(crate) fn end_seq(&self) -> u64 {
        self.spool.as_ref().map_or(self.next_seq, Spool::next_seq)
    }

    /// Drains everything queued right now (up to an unfilled claim, as `unfilled`
    /// says); returns how many events moved.
    pub(crate) fn drain(&mut self, ingest: &Ingest, slots: &[Arc<ExporterSlot>], unfilled: Unfilled) -> u64 {
        let mut total = 0u64;
        loop {
            if let Some(spool) = &self.spool {
                // A full spool stops the drain; the ingest queue then fills and emit's
                // full policy applies, counted as `spool_full`.
                let full = spool.is_full();
                ingest.set_spool_full(full);
                if full {
                    break;
                }
            }
            self.published.moving.fetch_add(1, SeqCst);
            let n = ingest.drain_into(&mut self.scratch, DRAIN_MAX, unfilled);
            self.accepted += n as u64;
            self.published.accepted.store(self.accepted, SeqCst);
            self.published.moving.fetch_add(1, SeqCst);
            if n == 0 {
                break;
            }
            total += n as u64;
            self.group_scratch_by_kind();
            let mut groups = std::mem::take(&mut self.groups);
            for group in groups.drain(..) {
                self.number(group);
            }
            self.groups = groups;
            if n < DRAIN_MAX || self.ready.iter().map(|c| c.events.len()).sum::<usize>() >= COMMIT_MAX {
                break;
            }
        }
        self.commit_and_route(ingest, slots);
        self.published.end_seq.store(self.end_seq(), Relaxed);
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

    /// Gives a run its sequence numbers (appending it to the spool) and holds it
    /// until the commit.
    fn number(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let first_seq = match self.spool.as_mut() {
            Some(spool) => spool.append(&events),
            None => {
                let s = self.next_seq;
                self.next_seq += events.len() as u64;
                s
            }
        };
        let chunk = if events.capacity() >= DRAIN_MAX && events.len() >= POOLED_MIN {
            let prefix = self.pool.take().1;
            Chunk::pooled(events, prefix, Some(self.pool.clone()))
        } else {
            Chunk::new(events)
        };
        self.ready.push(Arc::new(chunk.at_seq(first_seq)));
    }

    /// One group commit for everything numbered, then fan-out: with `fsync = "batch"`
    /// no exporter sees an event before it is durable.
    fn commit_and_route(&mut self, ingest: &Ingest, slots: &[Arc<ExporterSlot>]) {
        if self.ready.is_empty() {
            return;
        }
        // Events below this seq are committed; without a spool, all of them.
        let mut durable_end = u64::MAX;
        if let Some(spool) = self.spool.as_mut() {
            let result = spool.commit();
            durable_end = spool.shared.written_seq.load(Relaxed);
            match result {
                Err(e) => {
                    spool.shared.counters.write_errors.fetch_add(1, Relaxed);
                    self.spool_errors += 1;
                    // Once per incident; the drop summary counts the rest.
                    if self.spool_errors == 1 {
                        tracing::error!(
                            spool = %spool.shared.dir.display(),
                            "SPOOL WRITE FAILED: events that are not on disk are refused (counted as dropped, reason spool_error); the spool stays open and every commit tries again: {e}"
                        );
                    }
                }
                Ok(()) if self.spool_errors > 0 => {
                    tracing::warn!(failed_commits = self.spool_errors, "spool writes succeed again");
                    self.spool_errors = 0;
                }
                Ok(()) => {}
            }
        }
        let ready = std::mem::take(&mut self.ready);
        let mut refused = 0u64;
        for chunk in ready {
            let len = chunk.events.len();
            let durable = durable_end.saturating_sub(chunk.first_seq).min(len as u64) as usize;
            refused += (len - durable) as u64;
            if durable > 0 {
                let mut all = Slice::whole(chunk);
                self.route(all.take_front(durable), ingest, slots);
            }
        }
        if refused > 0 {
            ingest.drops.spool_error.fetch_add(refused, Relaxed);
        }
    }

    fn route(&mut self, slice: Slice, ingest: &Ingest, slots: &[Arc<ExporterSlot>]) {
        let Some(kind) = slice.events().first().map(|e| e.kind().to_string()) else {
            return;
        };
        let end = slice.end_seq();
        // Exporters build paths, topics, tables and prefixes from the kind: one that
        // cannot name them (a schema built by hand, never validated) goes nowhere.
        let valid = crate::is_valid_name(&kind);
        let mut routed = false;
        for (index, slot) in slots.iter().enumerate() {
            if !valid || !slot.wants(&kind) {
                slot.skip(end);
                continue;
            }
            routed = true;
            let dropped = slot.offer(slice.clone(), end);
            if dropped > 0 {
                self.log_exporter_drops(index, &slot.name, dropped as u64);
            }
        }
        if !routed {
            ingest.drops.unrouted.fetch_add(slice.len() as u64, Relaxed);
            if !self.warned_unrouted.contains(&kind) {
                if valid {
                    tracing::error!(kind = %kind, "no exporter subscribes to this event kind; its events are dropped (counted as unrouted)");
                } else {
                    tracing::error!(kind = ?kind.chars().take(64).collect::<String>(), "this event kind is not a valid name ([a-z][a-z0-9_]*, at most 64); its events are dropped (counted as unrouted)");
                }
                self.warned_unrouted.push(kind);
            }
        }
    }

    /// Persists cursors that moved, deletes finished segments, and applies the
    /// interval fsync. Called about once a second and at shutdown.
    pub(crate) fn housekeeping(&mut self, slots: &[Arc<ExporterSlot>]) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        if let Err(e) = spool.sync_if_due() {
            tracing::error!("spool fsync failed: {e}");
        }
        self.persisted.resize(slots.len(), u64::MAX);
        let dir = spool.shared.dir.clone();
        let mut min_ack = u64::MAX;
        for (slot, last) in slots.iter().zip(self.persisted.iter_mut()) {
            let acked = slot.acked.load(Relaxed);
            min_ack = min_ack.min(acked);
            if acked != *last {
                match cursor::store(&cursor::path(&dir, &slot.name), acked) {
                    Ok(()) => *last = acked,
                    Err(e) => tracing::error!(exporter = %slot.name, "cannot persist spool cursor: {e}"),
                }
            }
        }
        if !slots.is_empty() {
            spool.gc(min_ack);
        }
    }

    /// Logs an exporter's queue drops at WARN: the first at once, then at most every
    /// 10 s with how many since (a slow exporter must not flood the log).
    fn log_exporter_drops(&mut self, index: usize, exporter: &str, dropped: u64) {
        if self.exporter_drops.len() <= index {
            self.exporter_drops.resize(index + 1, (None, 0));
        }
        let entry = &mut self.exporter_drops[index];
        entry.1 += dropped;
        if entry.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(
                exporter,
                dropped = entry.1,
                "exporter queue full: events DROPPED (counted in usage_exporter_dropped_events_total; a spool would keep them)"
            );
            *entry = (Some(Instant::now()), 0);
        }
    }

    /// Logs ingest drops loudly, at most every 10 s, with what changed since.
    pub(crate) fn log_drops(&mut self, now: DropStats) {
        let due = self
            .last_drop_log
            .as_ref()
            .is_none_or(|(t, _)| t.elapsed() >= Duration::from_secs(10));
        let before = self.last_drop_log.as_ref().map(|(_, d)| *d).unwrap_or_default();
        if !due || now.total() == before.total() {
            return;
        }
        let d = now.minus(&before);
        tracing::error!(
            queue_full = d.queue_full,
            queue_bytes = d.queue_bytes,
            spool_full = d.spool_full,
            spool_error = d.spool_error,
            block_timeout = d.block_timeout,
            shutdown = d.shutdown,
            unrouted = d.unrouted,
            too_large = d.too_large,
            total_dropped = now.total(),
            "usage events DROPPED at ingest since last report"
        );
        self.last_drop_log = Some((Instant::now(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FullPolicy;
    use crate::{Event, RelayUsage};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A router that never stops moving events invalidates every walk of the queue:
    /// stats still answer, counting slots in use.
    #[test]
    fn a_queue_count_under_a_busy_router_still_returns() {
        let ingest = Ingest::new(50_000, 64 << 20, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
        for _ in 0..3 {
            ingest.push(Event::new(RelayUsage::default()));
        }
        let published = Published::default();
        let stop = AtomicBool::new(false);
        let (accepted, queued) = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(SeqCst) {
                    published.moving.fetch_add(2, SeqCst);
                }
            });
            let counted = published.accepted_and_queued(&ingest);
            stop.store(true, SeqCst);
            counted
        });
        assert_eq!(accepted, 0);
        // Three filled; the rest of this thread's claims may be counted too.
        assert!((3..=ingest.slots_in_use() as u64).contains(&queued), "{queued}");
        assert_eq!(published.accepted_and_queued(&ingest), (0, 3), "exact when quiet");
    }
}
