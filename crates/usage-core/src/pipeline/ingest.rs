//! The ingest queue behind `emit`: lock-free, bounded in events and bytes.
//!
//! Emit is one atomic add for the byte bound and one lock-free push; it wakes the
//! router thread only when the queued bytes cross a multiple of the wake threshold,
//! so the amortised cost of waking is a fraction of a nanosecond per event.

use super::stats::DropCounters;
use crate::config::FullPolicy;
use crate::event::Event;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub(crate) struct Ingest {
    queue: ArrayQueue<Event>,
    bytes: CachePadded<AtomicUsize>,
    max_bytes: usize,
    /// Wake the router when queued bytes cross a multiple of `1 << wake_shift`
    /// (a shift, not a division: this runs on every emit).
    wake_shift: u32,
    policy: FullPolicy,
    block_timeout: Duration,
    closed: AtomicBool,
    /// Set by the router while the spool is full: overflow is then counted as `spool_full`.
    spool_full: AtomicBool,
    pub(crate) drops: DropCounters,
    /// The router thread, woken when there is work.
    router: OnceLock<Thread>,
    space_lock: Mutex<()>,
    space: Condvar,
    waiters: AtomicUsize,
    /// One `offer_all` at a time, so each sees the room the others leave.
    offer_lock: Mutex<()>,
}

/// Why [`Ingest::offer_all`] took none of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No room now.
    Full,
    /// More events or bytes than the queue ever holds.
    NeverFits,
}

enum Full {
    Count,
    Bytes,
}

impl Ingest {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        wake_bytes: usize,
        policy: FullPolicy,
        block_timeout: Duration,
    ) -> Self {
        Ingest {
            queue: ArrayQueue::new(capacity.max(1)),
            bytes: CachePadded::new(AtomicUsize::new(0)),
            max_bytes,
            wake_shift: wake_bytes.max(1).next_power_of_two().trailing_zeros(),
            policy,
            block_timeout,
            closed: AtomicBool::new(false),
            spool_full: AtomicBool::new(false),
            drops: DropCounters::default(),
            router: OnceLock::new(),
            space_lock: Mutex::new(()),
            space: Condvar::new(),
            waiters: AtomicUsize::new(0),
            offer_lock: Mutex::new(()),
        }
    }

    /// Enqueues or drops-and-counts. Never blocks unless the policy is
    /// `block_with_timeout`, and then for at most `block_timeout`.
    #[inline(always)]
    pub(crate) fn push(&self, event: Event) {
        if self.closed.load(Relaxed) {
            self.drops.shutdown.fetch_add(1, Relaxed);
            return;
        }
        let size = event.approx_bytes();
        let before = self.bytes.fetch_add(size, Relaxed);
        let why = if before + size > self.max_bytes {
            Full::Bytes
        } else {
            match self.queue.push(event) {
                Ok(()) => {
                    if before >> self.wake_shift != (before + size) >> self.wake_shift {
                        self.wake();
                    }
                    return;
                }
                Err(event) => {
                    self.bytes.fetch_sub(size, Relaxed);
                    return self.full(event, Full::Count);
                }
            }
        };
        self.bytes.fetch_sub(size, Relaxed);
        // Not moved into the queue: rebuild nothing, just hand it to the slow path.
        self.full_bytes(event, why);
    }

    #[cold]
    #[inline(never)]
    fn full(&self, event: Event, why: Full) {
        match self.policy {
            FullPolicy::DropNewest => self.count_full(why),
            FullPolicy::BlockWithTimeout => self.push_blocking(event),
        }
    }

    #[cold]
    #[inline(never)]
    fn full_bytes(&self, event: Event, why: Full) {
        self.full(event, why)
    }

    /// Enqueues if there is room, without counting a drop when there is not (the
    /// caller refuses the event upstream instead, e.g. the gateway answers 503).
    pub(crate) fn offer(&self, event: Event) -> bool {
        !self.closed.load(Relaxed) && self.try_push(event).is_ok()
    }

    /// Enqueues the whole batch or none of it: the room for all of it, in events and
    /// bytes, is checked before the first is enqueued. Batches offered this way
    /// never cut each other; a library emitting into the same pipeline at the same
    /// moment can still take the room, and then the batch is cut where it ran out
    /// (the caller refuses it, and the part enqueued is delivered: a re-send
    /// repeats those ids).
    pub(crate) fn offer_all(&self, events: Vec<Event>) -> Result<(), Refused> {
        let (n, bytes) = (events.len(), events.iter().map(Event::approx_bytes).sum::<usize>());
        if n > self.queue.capacity() || bytes > self.max_bytes {
            return Err(Refused::NeverFits);
        }
        let _one_at_a_time = self.offer_lock.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.queue.capacity() - self.queue.len();
        if self.closed.load(Relaxed) || n > room || self.bytes.load(Relaxed) + bytes > self.max_bytes {
            return Err(Refused::Full);
        }
        for e in events {
            if !self.offer(e) {
                return Err(Refused::Full);
            }
        }
        Ok(())
    }

    pub(crate) fn is_spool_full(&self) -> bool {
        self.spool_full.load(Relaxed)
    }

    /// One attempt, for the blocking path: hands the event back when there is no room.
    #[allow(clippy::result_large_err)]
    fn try_push(&self, event: Event) -> Result<(), Event> {
        let size = event.approx_bytes();
        let before = self.bytes.fetch_add(size, Relaxed);
        if before + size > self.max_bytes {
            self.bytes.fetch_sub(size, Relaxed);
            return Err(event);
        }
        match self.queue.push(event) {
            Ok(()) => {
                if before >> self.wake_shift != (before + size) >> self.wake_shift {
                    self.wake();
                }
                Ok(())
            }
            Err(event) => {
                self.bytes.fetch_sub(size, Relaxed);
                Err(event)
            }
        }
    }

    /// Registers the router thread to wake.
    pub(crate) fn set_router(&self, t: Thread) {
        let _ = self.router.set(t);
    }

    /// Wakes the router thread (cheap if it is already awake).
    pub(crate) fn wake(&self) {
        if let Some(t) = self.router.get() {
            t.unpark();
        }
    }

    pub(crate) fn set_spool_full(&self, full: bool) {
        if self.spool_full.load(Relaxed) != full {
            self.spool_full.store(full, Relaxed);
        }
    }

    fn count_full(&self, why: Full) {
        if self.spool_full.load(Relaxed) {
            self.drops.spool_full.fetch_add(1, Relaxed);
            return;
        }
        match why {
            Full::Count => &self.drops.queue_full,
            Full::Bytes => &self.drops.queue_bytes,
        }
        .fetch_add(1, Relaxed);
    }

    #[cold]
    fn push_blocking(&self, mut event: Event) {
        let deadline = Instant::now() + self.block_timeout;
        self.wake();
        loop {
            let guard = self.space_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.waiters.fetch_add(1, Relaxed);
            // Re-try under the lock: the router notifies under it, so no wake-up is lost.
            match self.try_push(event) {
                Ok(()) => {
                    self.waiters.fetch_sub(1, Relaxed);
                    return;
                }
                Err(e) => event = e,
            }
            let now = Instant::now();
            if now >= deadline || self.closed.load(Relaxed) {
                self.waiters.fetch_sub(1, Relaxed);
                let counter = if self.closed.load(Relaxed) {
                    &self.drops.shutdown
                } else {
                    &self.drops.block_timeout
                };
                counter.fetch_add(1, Relaxed);
                return;
            }
            let _unused = self.space.wait_timeout(guard, deadline - now);
            self.waiters.fetch_sub(1, Relaxed);
        }
    }

    /// Pops up to `max` events into `out`; returns how many.
    /// Counts every event still queued as dropped at shutdown (review L7: one
    /// pushed after the final drain is otherwise neither routed nor counted).
    pub(crate) fn discard_remaining(&self) -> u64 {
        let mut n = 0u64;
        while let Some(e) = self.queue.pop() {
            self.bytes.fetch_sub(e.approx_bytes(), Relaxed);
            n += 1;
        }
        if n > 0 {
            self.drops.shutdown.fetch_add(n, Relaxed);
        }
        n
    }

    pub(crate) fn drain_into(&self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut n = 0;
        let mut bytes = 0;
        while n < max {
            match self.queue.pop() {
                Some(e) => {
                    bytes += e.approx_bytes();
                    out.push(e);
                    n += 1;
                }
                None => break,
            }
        }
        if bytes > 0 {
            self.bytes.fetch_sub(bytes, Relaxed);
        }
        if n > 0 && self.waiters.load(Relaxed) > 0 {
            let _g = self.space_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.space.notify_all();
        }
        n
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        let _g = self.space_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.space.notify_all();
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The byte bound (`pipeline.queue_max_bytes`).
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RelayUsage;

    fn ingest(policy: FullPolicy) -> Ingest {
        Ingest::new(1, 1 << 20, 1 << 20, policy, Duration::from_millis(50))
    }

    #[test]
    fn drop_newest_counts_without_waiting() {
        let q = ingest(FullPolicy::DropNewest);
        q.push(Event::new(RelayUsage::default()));
        q.push(Event::new(RelayUsage::default()));
        assert_eq!((q.len(), q.drops.snapshot().queue_full), (1, 1));
    }

    #[test]
    fn byte_bound_is_enforced_and_released_on_drain() {
        let one = Event::new(RelayUsage::default()).approx_bytes();
        let q = Ingest::new(100, one * 2, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
        for _ in 0..3 {
            q.push(Event::new(RelayUsage::default()));
        }
        assert_eq!((q.len(), q.bytes(), q.drops.snapshot().queue_bytes), (2, one * 2, 1));
        let mut out = Vec::new();
        assert_eq!(q.drain_into(&mut out, 10), 2);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn block_with_timeout_waits_for_space_then_counts() {
        let q = std::sync::Arc::new(ingest(FullPolicy::BlockWithTimeout));
        q.push(Event::new(RelayUsage::default()));
        // Nobody drains: the second push waits the full timeout, then counts a drop.
        let start = Instant::now();
        q.push(Event::new(RelayUsage::default()));
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(q.drops.snapshot().block_timeout, 1);
        // A drainer frees space: the blocked push succeeds instead of dropping.
        let drainer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while q.waiters.load(Relaxed) == 0 {
                    std::thread::yield_now();
                }
                q.drain_into(&mut out, 10)
            })
        };
        q.push(Event::new(RelayUsage::default()));
        assert_eq!(drainer.join().unwrap(), 1);
        assert_eq!(q.len(), 1);
        assert_eq!(q.drops.snapshot().block_timeout, 1, "no new drop");
    }

    #[test]
    fn closed_queue_counts_shutdown_drops() {
        let q = ingest(FullPolicy::DropNewest);
        q.close();
        q.push(Event::new(RelayUsage::default()));
        assert_eq!((q.len(), q.drops.snapshot().shutdown), (0, 1));
    }

    #[test]
    fn events_left_after_the_final_drain_are_counted_not_forgotten() {
        let q = Ingest::new(8, 1 << 20, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
        // Pushed past the closed check just before close: queued, never drained.
        q.push(Event::new(RelayUsage::default()));
        q.push(Event::new(RelayUsage::default()));
        q.close();
        assert_eq!(q.discard_remaining(), 2);
        assert_eq!((q.len(), q.bytes(), q.drops.snapshot().shutdown), (0, 0, 2));
    }
}
