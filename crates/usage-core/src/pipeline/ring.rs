//! The ingest ring: a bounded lock-free queue, many pushers and many poppers.
//!
//! Each slot carries a stamp saying whose turn it is: a pusher may fill it when the
//! stamp equals the tail it claims, a popper may empty it when the stamp is one
//! past the head it claims (D. Vyukov's bounded MPMC design). Positions carry a lap
//! count above the index bits, so a slot's stamp tells this lap from the last one
//! for any capacity, not only powers of two.
//!
//! Why not a crate's queue: `push` here is inlined into `emit`, so a 352-byte
//! event is copied into its slot once. Through an out-of-line push it was copied
//! through three stack temporaries first, a third of emit's time.

use crossbeam_utils::{Backoff, CachePadded};
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// How far ahead a push prefetches the slot a later push fills. Fetching a line
/// from another core takes about as long as a few pushes; paced emits (groups of 64)
/// measured 3 slots ahead against 6, eight runs each in turn: median 83.0 vs 79.1
/// ns, warm unchanged (53.6 vs 53.7).
const PREFETCH_AHEAD: usize = 6;

/// The stamp first: a push reads it and then writes the value's first bytes in
/// the same cache line.
#[repr(C)]
struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded queue of `T`; see the module docs.
pub(crate) struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// Adding this to a position moves it one lap on (a power of two above the
    /// largest index).
    one_lap: usize,
}

// SAFETY: a value is written by exactly one pusher and read by exactly one popper,
// each after winning the slot's position by compare-and-swap; the stamp's
// release/acquire pair orders the value's bytes between them.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring of `capacity` slots (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let mut slots = Vec::with_capacity(capacity);
        // Before the slots are first written, so the kernel backs them with huge
        // pages from the start: pushes cycle through megabytes of slots, and with
        // 4 KiB pages nearly every page they reach missed the TLB.
        super::huge_pages::advise(slots.as_ptr(), capacity);
        slots.extend((0..capacity).map(|i| Slot {
            stamp: AtomicUsize::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        let slots = slots.into_boxed_slice();
        Ring {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            one_lap: (capacity + 1).next_power_of_two(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline(always)]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Queues `value`, or hands it back when the ring is full.
    #[cfg(test)]
    fn push(&self, value: T) -> Result<(), T> {
        // SAFETY: on `true` the ring owns the value's bits; the original is forgotten.
        if unsafe { self.push_copy(&value) } {
            std::mem::forget(value);
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Copies `*value`'s bytes into a free slot and returns `true`, or returns
    /// `false` when the ring is full. By reference, so a large `T` is copied once,
    /// from where the caller built it into its slot.
    ///
    /// # Safety
    /// After `true` the ring owns the value: the caller must forget the original
    /// (`mem::forget`), neither use nor drop it.
    #[inline(always)]
    pub(crate) unsafe fn push_copy(&self, value: &T) -> bool {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[tail & (self.one_lap - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                let next = self.next(tail);
                match self
                    .tail
                    .compare_exchange_weak(tail, next, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: winning `tail` makes this slot ours until the stamp
                        // says it is filled (no popper reads it before then); the
                        // caller gives up `*value`.
                        unsafe { std::ptr::copy_nonoverlapping(value, (*slot.value.get()).as_mut_ptr(), 1) };
                        slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
                        self.prefetch_for_write(tail & (self.one_lap - 1));
                        return true;
                    }
                    Err(now) => {
                        tail = now;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                // The slot still holds last lap's value: full, unless a popper
                // has moved the head since.
                fence(Ordering::SeqCst);
                if self.head.load(Ordering::Relaxed).wrapping_add(self.one_lap) == tail {
                    return false;
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another pusher has claimed this position and not yet filled it.
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Asks for the slot [`PREFETCH_AHEAD`] after the one at `index`, ahead of the
    /// push that will fill it: its cache lines were last written by the popping
    /// thread's core. (A write prefetch where the target has PREFETCHW, else a read
    /// prefetch: either brings the lines over before the copy needs them.)
    #[inline(always)]
    fn prefetch_for_write(&self, index: usize) {
        // Near the end it wraps to the start (a subtraction, not a division: this is
        // on every push). A ring of fewer than PREFETCH_AHEAD slots can still be past
        // its end here; `get` then skips the prefetch.
        let mut ahead = index + PREFETCH_AHEAD;
        if ahead >= self.slots.len() {
            ahead -= self.slots.len();
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ahead;
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self.slots.get(ahead) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            let start = (slot as *const Slot<T>).cast::<i8>();
            for offset in (0..std::mem::size_of::<Slot<T>>()).step_by(64) {
                // SAFETY: a prefetch is a hint; the address is inside the slot.
                #[allow(unused_unsafe)]
                unsafe {
                    _mm_prefetch::<_MM_HINT_ET0>(start.wrapping_add(offset))
                };
            }
        }
    }

    /// Takes the oldest value, if any.
    pub(crate) fn pop(&self) -> Option<T> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[head & (self.one_lap - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                let next = self.next(head);
                match self
                    .head
                    .compare_exchange_weak(head, next, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: the stamp says a pusher filled this slot, and winning
                        // `head` makes us its only reader.
                        let value = unsafe { (*slot.value.get()).assume_init_read() };
                        slot.stamp.store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(value);
                    }
                    Err(now) => {
                        head = now;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // Not filled this lap: empty, unless a pusher has moved the tail.
                fence(Ordering::SeqCst);
                if self.tail.load(Ordering::Relaxed) == head {
                    return None;
                }
                backoff.spin();
                head = self.head.load(Ordering::Relaxed);
            } else {
                // Another popper has claimed this position and not yet emptied it.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops up to `max` values into `take`, oldest first; returns how many.
    pub(crate) fn drain(&self, max: usize, mut take: impl FnMut(T)) -> usize {
        let mut n = 0;
        while n < max {
            match self.pop() {
                Some(v) => {
                    take(v);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Values queued now (a snapshot: pushes and pops may race it).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) != tail {
                continue;
            }
            let (h, t) = (head & (self.one_lap - 1), tail & (self.one_lap - 1));
            return match h.cmp(&t) {
                std::cmp::Ordering::Less => t - h,
                std::cmp::Ordering::Greater => self.slots.len() - h + t,
                std::cmp::Ordering::Equal if tail == head => 0,
                std::cmp::Ordering::Equal => self.slots.len(),
            };
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The VmFlags of the mapping holding `addr`, from /proc/self/smaps.
    #[cfg(target_os = "linux")]
    fn vm_flags_at(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            // A mapping starts with its range, `lo-hi` in hex; its fields follow.
            let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
            if let Some((Ok(lo), Ok(hi))) =
                range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
            {
                inside = (lo..hi).contains(&addr);
            } else if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
                return Some(flags.trim().to_string());
            }
        }
        None
    }

    /// Where the kernel has transparent huge pages, a ring of megabytes asks for
    /// them (its mapping carries `hg`), before any slot is written.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_ring_is_backed_by_huge_pages() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            return; // a kernel built without them: the advice is refused, harmlessly
        }
        let ring: Ring<[u8; 352]> = Ring::new(50_000);
        let middle = ring.slots.as_ptr() as usize + std::mem::size_of_val(&*ring.slots) / 2;
        let flags = vm_flags_at(middle).expect("the ring's mapping is in /proc/self/smaps");
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "the ring's mapping lacks `hg` (MADV_HUGEPAGE): {flags}"
        );
        let small: Ring<u64> = Ring::new(100);
        assert!(ring.push([7; 352]).is_ok() && small.push(1).is_ok(), "both still work");
    }

    #[test]
    fn holds_exactly_its_capacity_in_order_across_laps() {
        for cap in [1, 2, 3, 5, 8] {
            let ring = Ring::new(cap);
            let mut next_out = 0;
            for round in 0..4 {
                for i in 0..cap {
                    assert!(ring.push(round * cap + i).is_ok(), "cap {cap}");
                }
                assert_eq!(ring.push(usize::MAX), Err(usize::MAX), "cap {cap}: full");
                assert_eq!(ring.len(), cap);
                for _ in 0..cap {
                    assert_eq!(ring.pop(), Some(next_out));
                    next_out += 1;
                }
                assert_eq!((ring.pop(), ring.len()), (None, 0));
            }
        }
    }

    #[test]
    fn len_counts_a_ring_that_wrapped() {
        let ring = Ring::new(4);
        for i in 0..3 {
            ring.push(i).unwrap();
        }
        ring.pop();
        ring.pop();
        ring.push(3).unwrap();
        ring.push(4).unwrap();
        assert_eq!(ring.len(), 3);
        assert_eq!((ring.pop(), ring.pop(), ring.pop()), (Some(2), Some(3), Some(4)));
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_with_it() {
        let shared = Arc::new(());
        let ring = Ring::new(4);
        ring.push(shared.clone()).unwrap();
        ring.push(shared.clone()).unwrap();
        drop(ring);
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn many_pushers_and_poppers_lose_and_repeat_nothing() {
        const PER: usize = 50_000;
        let ring = Arc::new(Ring::new(64));
        let pushers: Vec<_> = (0..3)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut v = t * PER + i;
                        while let Err(back) = ring.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let poppers: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < PER * 3 / 2 {
                        match ring.pop() {
                            Some(v) => got.push(v),
                            None => std::thread::yield_now(),
                        }
                    }
                    got
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        let popped: Vec<Vec<usize>> = poppers.into_iter().map(|p| p.join().unwrap()).collect();
        // Each popper sees each pusher's values in the order they were pushed.
        for got in &popped {
            for t in 0..3 {
                let mine: Vec<usize> = got.iter().copied().filter(|v| v / PER == t).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "pusher {t} out of order");
            }
        }
        let mut all: Vec<usize> = popped.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..3 * PER).collect::<Vec<_>>());
        assert_eq!(ring.len(), 0);
    }
}
