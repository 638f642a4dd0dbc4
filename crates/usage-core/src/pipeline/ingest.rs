//! The ingest queue behind `emit`: lock-free, bounded in events and bytes.
//!
//! The ring's slots are allocated up front, so their bytes are counted once, when
//! it is built: it gets no more slots than `queue_max_bytes` holds, and the rest of
//! the bound is the budget for what queued events hold on the heap. An event that
//! holds nothing on the heap (every `relay_usage` with Lava's values) is then one
//! lock-free push: no shared byte counter for emitting threads to contend on. The
//! router is woken about every `wake_bytes` of pushes, counted per thread, or as
//! soon as queued heap bytes cross a multiple of `wake_bytes`, and drains on its
//! tick (at most 100 ms) whatever no wake-up announced.

use super::ring::{Ring, Unfilled};
use super::stats::DropCounters;
use crate::config::FullPolicy;
use crate::event::Event;
use crate::spool::MAX_EVENT_BYTES;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub(crate) struct Ingest {
    /// One ring for every emitting thread: each thread's events leave in the order
    /// it emitted them (per-thread rings that spill into each other reordered them
    /// under load; the spool's crash test caught it).
    queue: Ring<Event>,
    /// Heap bytes held by queued events (their slots are counted once, in
    /// `heap_budget`).
    heap: CachePadded<AtomicUsize>,
    max_bytes: usize,
    /// `max_bytes` less the ring's slots.
    heap_budget: usize,
    /// The most heap bytes one event may hold: with a spool, what its record
    /// can carry ([`MAX_EVENT_BYTES`]); without one, no limit.
    max_event_heap: usize,
    /// The ring is smaller than `queue_capacity` because `max_bytes` holds no more
    /// slots: a full ring is then the byte bound.
    slots_cut_by_bytes: bool,
    /// Wake the router every this many pushes of a thread (about `wake_bytes`).
    wake_every: u32,
    /// ... and when queued heap bytes cross a multiple of `1 << wake_shift` (a
    /// shift, not a division: this runs on every push of a heap-holding event).
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
    /// More than one event may hold (see `max_event_heap`): it never fits.
    TooLarge,
}

/// What one queued event takes in the ring, whatever it holds on the heap.
const SLOT_BYTES: usize = std::mem::size_of::<Event>();

/// Heap bytes `event` holds beyond its slot.
#[inline(always)]
fn heap_bytes(event: &Event) -> usize {
    event.approx_bytes() - SLOT_BYTES
}

thread_local! {
    /// Pushes by this thread since it last woke a router.
    static PUSHES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Ingest {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: usize,
        wake_bytes: usize,
        policy: FullPolicy,
        block_timeout: Duration,
    ) -> Self {
        let wanted = capacity.max(1);
        let slots = wanted.min((max_bytes / SLOT_BYTES).max(1));
        if slots < wanted {
            tracing::info!(
                queue_capacity = wanted,
                queue_max_bytes = max_bytes,
                "the ingest queue holds {slots} events: pipeline.queue_max_bytes holds no more slots of {SLOT_BYTES} bytes"
            );
        }
        Ingest {
            queue: Ring::new(slots),
            heap: CachePadded::new(AtomicUsize::new(0)),
            max_bytes,
            heap_budget: max_bytes.saturating_sub(slots * SLOT_BYTES),
            max_event_heap: usize::MAX,
            slots_cut_by_bytes: slots < wanted,
            // Rarely: a wake-up per small group (paced emitters) costs the emitting
            // thread a syscall and the router's company on the same cores. Threads
            // that each push less than this are drained on the router's tick.
            wake_every: u32::try_from((wake_bytes / SLOT_BYTES).max(1)).unwrap_or(u32::MAX),
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

    /// For a spooled pipeline: events larger than a spool record carries are
    /// refused at `emit` and counted as `too_large`, rather than spooled as a
    /// record no reader would take.
    pub(crate) fn spooled(mut self) -> Self {
        self.max_event_heap = MAX_EVENT_BYTES.saturating_sub(SLOT_BYTES);
        self
    }

    /// Enqueues or drops-and-counts. Never blocks unless the policy is
    /// `block_with_timeout`, and then for at most `block_timeout`.
    #[inline(always)]
    pub(crate) fn push(&self, event: Event) {
        if self.closed.load(Relaxed) {
            self.drops.shutdown.fetch_add(1, Relaxed);
            return;
        }
        match self.try_push_copy(&event) {
            // The ring owns the event's bytes now: the original must not be dropped.
            Ok(()) => std::mem::forget(event),
            Err(why) => self.full(event, why),
        }
    }

    /// One attempt: queued, or handed back with why there was no room.
    #[allow(clippy::result_large_err)]
    fn try_push(&self, event: Event) -> Result<(), (Event, Full)> {
        match self.try_push_copy(&event) {
            // The ring owns the event's bytes now: the original must not be dropped.
            Ok(()) => {
                std::mem::forget(event);
                Ok(())
            }
            Err(why) => Err((event, why)),
        }
    }

    /// One attempt: `*event` copied into the ring (the caller then forgets the
    /// original), or why there was no room. By reference, so the event is copied
    /// once, from where it was built into its slot.
    #[inline(always)]
    fn try_push_copy(&self, event: &Event) -> Result<(), Full> {
        let heap = heap_bytes(event);
        let heap_before = if heap > 0 {
            if heap > self.max_event_heap {
                return Err(Full::TooLarge);
            }
            match self.reserve_heap(heap) {
                Some(before) => before,
                None => return Err(Full::Bytes),
            }
        } else {
            0
        };
        // SAFETY: on `true` every caller forgets the original.
        if unsafe { self.queue.push_copy(event) } {
            self.pushed(heap_before, heap);
            Ok(())
        } else {
            if heap > 0 {
                self.heap.fetch_sub(heap, Relaxed);
            }
            Err(self.ring_full())
        }
    }

    /// Takes `heap` bytes of the heap budget and returns the heap bytes queued
    /// before; `None` (and nothing taken) past the budget.
    #[inline]
    fn reserve_heap(&self, heap: usize) -> Option<usize> {
        let before = self.heap.fetch_add(heap, Relaxed);
        if before + heap > self.heap_budget {
            self.heap.fetch_sub(heap, Relaxed);
            return None;
        }
        Some(before)
    }

    /// Why a push found the ring full: its slots, or the byte bound that cut them.
    fn ring_full(&self) -> Full {
        if self.slots_cut_by_bytes {
            Full::Bytes
        } else {
            Full::Count
        }
    }

    /// Counts a push by this thread and wakes the router every `wake_every` pushes,
    /// or as soon as queued heap bytes cross a multiple of the wake threshold (a few
    /// large events must not wait for the router's tick while the budget fills).
    #[inline(always)]
    fn pushed(&self, heap_before: usize, heap: usize) {
        let due = PUSHES.with(|n| {
            let next = n.get() + 1;
            let due = next >= self.wake_every;
            n.set(if due { 0 } else { next });
            due
        });
        let crossed = heap > 0 && heap_before >> self.wake_shift != (heap_before + heap) >> self.wake_shift;
        if due || crossed {
            self.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn full(&self, event: Event, why: Full) {
        match (why, self.policy) {
            (Full::TooLarge, _) => self.refuse_too_large(&event),
            (why, FullPolicy::DropNewest) => self.count_full(why),
            (_, FullPolicy::BlockWithTimeout) => self.push_blocking(event),
        }
    }

    /// Counts an event larger than a spool record can carry. Logged here (on the
    /// emitting thread) because it is a bug in the caller, not load: the first
    /// time, then every 1,000th.
    #[cold]
    fn refuse_too_large(&self, event: &Event) {
        let n = self.drops.too_large.fetch_add(1, Relaxed);
        if n.is_multiple_of(1000) {
            tracing::error!(
                kind = event.kind(),
                bytes = event.approx_bytes(),
                max = MAX_EVENT_BYTES,
                dropped_so_far = n + 1,
                "event too large for the spool: DROPPED (counted as too_large)"
            );
        }
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
        let (heap, largest) = events
            .iter()
            .map(heap_bytes)
            .fold((0usize, 0usize), |(sum, max), h| (sum + h, max.max(h)));
        let n = events.len();
        if n > self.queue.capacity() || heap > self.heap_budget || largest > self.max_event_heap {
            return Err(Refused::NeverFits);
        }
        let _one_at_a_time = self.offer_lock.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.queue.capacity() - self.queue.len();
        if self.closed.load(Relaxed) || n > room || self.heap.load(Relaxed) + heap > self.heap_budget {
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
            Full::TooLarge => &self.drops.too_large,
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
                Err((e, _)) => event = e,
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

    /// Counts every event still queued as dropped at shutdown (review L7: one
    /// pushed after the final drain is otherwise neither routed nor counted).
    pub(crate) fn discard_remaining(&self) -> u64 {
        let (mut heap, mut n) = (0, 0u64);
        while let Some(e) = self.queue.pop() {
            heap += heap_bytes(&e);
            n += 1;
        }
        if heap > 0 {
            self.heap.fetch_sub(heap, Relaxed);
        }
        if n > 0 {
            self.drops.shutdown.fetch_add(n, Relaxed);
        }
        n
    }

    /// Pops up to `max` events into `out`; returns how many.
    pub(crate) fn drain_into(&self, out: &mut Vec<Event>, max: usize, unfilled: Unfilled) -> usize {
        let mut heap = 0;
        let n = self.queue.drain_into(out, max, unfilled, |e| heap += heap_bytes(e));
        if heap > 0 {
            self.heap.fetch_sub(heap, Relaxed);
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

    /// Events queued now (slots claimed by emitting threads and not yet filled
    /// are not events).
    pub(crate) fn len(&self) -> usize {
        self.queue.queued()
    }

    /// Slots in use: events queued and slots claimed by emitting threads but not
    /// yet filled (a bound on [`Ingest::len`], without its walk).
    pub(crate) fn slots_in_use(&self) -> usize {
        self.queue.len()
    }

    /// A mark for [`Ingest::drained_to`]: where the next event pushed will go.
    pub(crate) fn mark(&self) -> u64 {
        self.queue.tail_position()
    }

    /// Whether every event pushed before [`Ingest::mark`] returned `mark` has been
    /// popped.
    pub(crate) fn drained_to(&self, mark: u64) -> bool {
        self.queue.popped_up_to(mark)
    }

    /// The byte bound (`pipeline.queue_max_bytes`).
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes the queued events take: their slots and what they hold on the heap.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes_of(self.len())
    }

    /// [`Ingest::bytes`] for `queued` events counted already (counting walks the
    /// queue).
    pub(crate) fn bytes_of(&self, queued: usize) -> usize {
        queued * SLOT_BYTES + self.heap.load(Relaxed)
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
