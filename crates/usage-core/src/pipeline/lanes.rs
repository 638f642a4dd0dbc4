//! The ingest queue as a few rings ("lanes"), so emitting threads do not contend
//! on one tail.
//!
//! Each thread has a home lane (threads are numbered in the order they first emit,
//! and lanes taken round-robin), so two threads emitting at once usually
//! compare-and-swap different cache lines. A thread whose home lane is full tries
//! the others before the queue counts as full: the queue holds its whole capacity
//! whatever the number of threads. Events of one thread stay in order unless its
//! lane was full and one spilled; the pipeline promises no order across events.

use super::ring::Ring;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// At most this many lanes, however many cores (each is a tail and a head).
const MAX_LANES: usize = 8;

static THREADS_SEEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number, in the order threads first pushed (`usize::MAX`: not yet).
    static THREAD_NUMBER: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline(always)]
fn thread_number() -> usize {
    THREAD_NUMBER.with(|n| {
        let v = n.get();
        if v != usize::MAX {
            return v;
        }
        let v = THREADS_SEEN.fetch_add(1, Relaxed);
        n.set(v);
        v
    })
}

/// A bounded queue of `T` in a power-of-two number of [`Ring`]s; see the module docs.
pub(crate) struct Lanes<T> {
    lanes: Box<[Ring<T>]>,
    /// The lane the next drain starts at, so no lane waits behind a busy one.
    next_drain: AtomicUsize,
}

impl<T> Lanes<T> {
    /// `capacity` slots (at least 1) in one lane per core, up to [`MAX_LANES`],
    /// and no lane without a slot.
    pub(crate) fn new(capacity: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_lanes(capacity, cores)
    }

    /// As [`Lanes::new`] with `lanes` wanted (rounded down to a power of two).
    pub(crate) fn with_lanes(capacity: usize, lanes: usize) -> Self {
        let capacity = capacity.max(1);
        let wanted = lanes.clamp(1, MAX_LANES).min(capacity);
        let n = 1usize << wanted.ilog2();
        let lanes = (0..n)
            .map(|i| Ring::new(capacity / n + usize::from(i < capacity % n)))
            .collect();
        Lanes {
            lanes,
            next_drain: AtomicUsize::new(0),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lanes.iter().map(Ring::capacity).sum()
    }

    /// Copies `*value` into this thread's lane, or another one if that is full;
    /// `false` when every lane is full.
    ///
    /// # Safety
    /// As [`Ring::push_copy`]: after `true` the caller must forget the original.
    #[inline(always)]
    pub(crate) unsafe fn push_copy(&self, value: &T) -> bool {
        let mask = self.lanes.len() - 1;
        let home = thread_number() & mask;
        for step in 0..=mask {
            // SAFETY: passed on from our caller.
            if unsafe { self.lanes[(home + step) & mask].push_copy(value) } {
                return true;
            }
        }
        false
    }

    /// Takes up to `max` values, lane by lane, starting at a different lane each
    /// call; returns how many were given to `take`.
    pub(crate) fn drain(&self, max: usize, mut take: impl FnMut(T)) -> usize {
        let mask = self.lanes.len() - 1;
        let start = self.next_drain.fetch_add(1, Relaxed);
        let mut n = 0;
        for step in 0..=mask {
            let lane = &self.lanes[(start + step) & mask];
            while n < max {
                match lane.pop() {
                    Some(v) => {
                        take(v);
                        n += 1;
                    }
                    None => break,
                }
            }
        }
        n
    }

    /// Values queued now, over all lanes (a snapshot).
    pub(crate) fn len(&self) -> usize {
        self.lanes.iter().map(Ring::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(lanes: &Lanes<u32>, v: u32) -> bool {
        // SAFETY: `v` is a Copy value: nothing to forget.
        unsafe { lanes.push_copy(&v) }
    }

    #[test]
    fn capacity_is_split_over_lanes_and_held_whole_by_one_thread() {
        let lanes = Lanes::with_lanes(10, 4);
        assert_eq!((lanes.lanes.len(), lanes.capacity()), (4, 10));
        // One thread fills its lane, then spills into the others: 10 in all.
        for i in 0..10 {
            assert!(push(&lanes, i), "push {i}");
        }
        assert!(!push(&lanes, 99), "every lane full");
        assert_eq!(lanes.len(), 10);
        let mut got = Vec::new();
        assert_eq!(lanes.drain(usize::MAX, |v| got.push(v)), 10);
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn lanes_are_a_power_of_two_and_never_empty_of_slots() {
        assert_eq!(Lanes::<u32>::with_lanes(100, 6).lanes.len(), 4);
        assert_eq!(Lanes::<u32>::with_lanes(100, 64).lanes.len(), MAX_LANES);
        assert_eq!(Lanes::<u32>::with_lanes(3, 8).lanes.len(), 2);
        assert_eq!(Lanes::<u32>::with_lanes(1, 8).capacity(), 1);
    }

    #[test]
    fn one_thread_keeps_its_order_and_drain_respects_max() {
        let lanes = Lanes::with_lanes(64, 2);
        for i in 0..20 {
            assert!(push(&lanes, i));
        }
        let mut got = Vec::new();
        assert_eq!(lanes.drain(5, |v| got.push(v)), 5);
        assert_eq!(lanes.drain(100, |v| got.push(v)), 15);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }
}
