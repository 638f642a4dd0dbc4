//! The ingest ring: a bounded queue, lock-free for many pushers, popped by one
//! thread at a time.
//!
//! Each slot carries a stamp saying whose turn it is: a pusher may fill it when the
//! stamp equals its position, the popper may empty it when the stamp is one past
//! the head (after D. Vyukov's bounded MPMC design; pops take turns under a lock,
//! held once per drain, so the head moves by plain stores). Positions carry a lap count
//! above the index bits, so a slot's stamp tells this lap from the last one for any
//! capacity, not only powers of two.
//!
//! A pusher claims several consecutive slots at once ([`Ring::claim`], kept per
//! thread) and fills them with its next pushes. Two threads emitting at once then
//! move the shared tail once per claim, not once per push, and each writes its own
//! cache lines: with one slot per claim they took turns at the tail and at the lines
//! two neighbouring slots share, and each emit cost four times what it cost alone.
//! A thread's claim is filled in order and its next claim lies past every earlier
//! one, so each thread's values still leave in the order it pushed them.
//!
//! A thread may stop pushing with slots of its claim unfilled. A popper that
//! reaches one (its stamp still says "free" though the tail has passed it) revokes
//! it: it marks the slot skipped and moves on. A pusher takes each slot of its claim
//! with a compare-and-swap on the stamp, so exactly one of the two wins; a pusher
//! that loses claims afresh, after everything queued.
//!
//! Why not a crate's queue: `push` here is inlined into `emit`, so a 352-byte
//! event is copied into its slot once. Through an out-of-line push it was copied
//! through three stack temporaries first, a third of emit's time.

use crossbeam_utils::{Backoff, CachePadded};
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// How far ahead a push prefetches the slot a later push fills. Fetching a line
/// from another core takes about as long as a few pushes; paced emits (groups of 64)
/// measured 3 slots ahead against 6, eight runs each in turn: median 83.0 vs 79.1
/// ns, warm unchanged (53.6 vs 53.7).
const PREFETCH_AHEAD: usize = 6;

/// The most slots one claim takes. Two threads emitting flat out, warm (emit
/// bench, 2 threads against 1, two runs each): one slot per claim 3.6x, 16 slots
/// 1.09-1.42x, 64 slots 1.04-1.13x, 256 slots 1.03-1.22x.
const MAX_CLAIM: u64 = 64;

/// What [`Ring::drain_into`] grows a full buffer by at a time.
const DRAIN_RESERVE: usize = 1024;

/// A claim takes one slot per this many in the ring (up to [`MAX_CLAIM`]): what
/// threads hold claimed and unfilled stays a small part of the capacity, and a
/// ring under 2,048 slots claims one at a time (and holds exactly its capacity).
const SLOTS_PER_CLAIMED: usize = 1024;

/// Stamp flag: a pusher is copying its value into the slot.
const WRITING: u64 = 1 << 63;
/// Stamp flag: a popper revoked the slot unfilled; the next popper passes it.
const SKIPPED: u64 = 1 << 62;

/// The stamp first: a push reads it and then writes the value's first bytes in
/// the same cache line.
#[repr(C)]
struct Slot<T> {
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A thread's claim in one ring: positions `next..end` are its to fill.
#[derive(Clone, Copy)]
struct Claim {
    ring: u64,
    next: u64,
    end: u64,
    /// Slots this claim took: the thread's next claim in the ring takes twice as
    /// many (up to the ring's [`Ring::claim`]), so a thread that pushes once holds
    /// one slot and only a busy one holds many.
    size: u64,
}

impl Claim {
    const NONE: Claim = Claim {
        ring: 0,
        next: 0,
        end: 0,
        size: 0,
    };
}

/// Claims a thread holds, one per ring, in a few entries chosen by ring id (a
/// thread pushing into two pipelines keeps a claim in each). A claim pushed out by
/// another ring's is left to its ring's poppers to revoke.
const CLAIM_ENTRIES: usize = 4;

thread_local! {
    static CLAIMS: [Cell<Claim>; CLAIM_ENTRIES] = const {
        [const { Cell::new(Claim::NONE) }; CLAIM_ENTRIES]
    };
}

/// Ring ids: a claim names its ring by id, never by address, since a dropped
/// ring's address can be reused by a new one.
static NEXT_RING_ID: AtomicU64 = AtomicU64::new(1);

/// What a drain does at a slot claimed and not yet filled, at the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unfilled {
    /// Revoke it and go on: ticks, flushes, shutdown, a caller waiting for what
    /// it queued.
    Revoke,
    /// Stop there, unless the slot was claimed before the last drain that
    /// stopped at an unfilled claim (then revoke it): a thread emitting right now
    /// is filling its claim, and a router that revoked it would make it claim
    /// again and chase it through the lines it is writing. The router's drains
    /// when an emitting thread wakes it.
    RevokeIfOlder,
}

/// The popper's state, under its lock.
#[derive(Default)]
struct Popper {
    /// The tail when a drain last stopped at an unfilled claim: every slot before
    /// it was claimed before that drain.
    claimed_before: u64,
}

/// A bounded queue of `T`; see the module docs.
pub(crate) struct Ring<T> {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    slots: Box<[Slot<T>]>,
    /// Adding this to a position moves it one lap on (a power of two above the
    /// largest index). Positions stay below the stamp flags: 2^62 pushes.
    one_lap: u64,
    /// Slots a pusher claims at once (in one lap).
    claim: u64,
    id: u64,
    /// Held by the one thread popping (see [`Ring::lock_popper`]). On a line of
    /// its own: beside `slots` and `id`, which every push reads, each drain's lock
    /// would take that line from the pushing cores.
    popper: CachePadded<std::sync::Mutex<Popper>>,
}

// SAFETY: a value is written by exactly one pusher, after winning the slot by
// compare-and-swap on its stamp, and read by the one popper (poppers take turns
// under `popper`); the stamp's release/acquire pair orders the value's bytes
// between them.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// A ring of `capacity` slots (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let claim = (capacity / SLOTS_PER_CLAIMED).clamp(1, MAX_CLAIM as usize) as u64;
        Self::with_claim(capacity, claim)
    }

    /// A ring of `capacity` slots whose pushers claim `claim` slots at a time.
    pub(crate) fn with_claim(capacity: usize, claim: u64) -> Self {
        let capacity = capacity.max(1);
        let mut slots = Vec::with_capacity(capacity);
        // Before the slots are first written, so the kernel backs them with huge
        // pages from the start: pushes cycle through megabytes of slots, and with
        // 4 KiB pages nearly every page they reach missed the TLB.
        super::huge_pages::advise(slots.as_ptr(), capacity);
        slots.extend((0..capacity as u64).map(|i| Slot {
            stamp: AtomicU64::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        let slots = slots.into_boxed_slice();
        Ring {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            slots,
            one_lap: (capacity as u64 + 1).next_power_of_two(),
            claim: claim.max(1),
            id: NEXT_RING_ID.fetch_add(1, Ordering::Relaxed),
            popper: CachePadded::new(std::sync::Mutex::new(Popper::default())),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot index of a position.
    #[inline(always)]
    fn index(&self, pos: u64) -> usize {
        (pos & (self.one_lap - 1)) as usize
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline(always)]
    fn next(&self, pos: u64) -> u64 {
        if self.index(pos) + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)) + self.one_lap
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
        // Only the entry's address is taken inside `with`: the push itself stays
        // inlined into `emit` (inside the closure it went out of line).
        let entry: *const Cell<Claim> = CLAIMS.with(|entries| &entries[self.id as usize % CLAIM_ENTRIES] as *const _);
        // SAFETY: this thread's own entry, alive as long as the thread (a `const`
        // thread-local without a destructor), and used only here, on this thread.
        let entry = unsafe { &*entry };
        let claim = entry.get();
        if claim.ring == self.id && claim.next != claim.end {
            // SAFETY: passed on from the caller.
            if unsafe { self.fill(claim.next, value) } {
                entry.set(Claim {
                    next: claim.next + 1,
                    ..claim
                });
                return true;
            }
        }
        // SAFETY: passed on from the caller.
        unsafe { self.claim_and_fill(entry, value) }
    }

    /// Fills the slot at `pos` with `*value` if it is still free for this lap
    /// (a popper may have revoked it); `false` and nothing written if not.
    ///
    /// # Safety
    /// As [`Ring::push_copy`]; `pos` must be in a claim of this thread.
    #[inline(always)]
    unsafe fn fill(&self, pos: u64, value: &T) -> bool {
        let index = self.index(pos);
        let slot = &self.slots[index];
        if slot
            .stamp
            .compare_exchange(pos, pos | WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: the stamp now says this pusher is writing: no popper reads or
        // revokes the slot until it says filled; the caller gives up `*value`.
        unsafe { std::ptr::copy_nonoverlapping(value, (*slot.value.get()).as_mut_ptr(), 1) };
        slot.stamp.store(pos + 1, Ordering::Release);
        self.prefetch_for_write(index);
        true
    }

    /// Claims free slots at the tail (within one lap; see [`Claim::size`]), fills
    /// the first and keeps the rest in `entry`; `false` when the ring is full.
    ///
    /// # Safety
    /// As [`Ring::push_copy`].
    #[inline(never)]
    unsafe fn claim_and_fill(&self, entry: &Cell<Claim>, value: &T) -> bool {
        let last_claim = entry.get();
        let want = if last_claim.ring == self.id {
            (last_claim.size * 2).min(self.claim)
        } else {
            1
        };
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let index = self.index(tail);
            let stamp = self.slots[index].stamp.load(Ordering::Acquire);
            if stamp == tail {
                // Free. Take the following slots too if the head has passed what
                // they held last lap (read from the head, not the last slot's stamp:
                // that line is cold, last written by the popper). A slot the popper
                // has passed but not yet marked free fails its fill, and the thread
                // claims again.
                let mut n = want.min((self.slots.len() - index) as u64);
                if n > 1 && self.head.load(Ordering::Acquire) + self.one_lap < tail + n {
                    n = 1;
                }
                let end = tail + n;
                let next_tail = if index + (n as usize) < self.slots.len() {
                    end
                } else {
                    (tail & !(self.one_lap - 1)) + self.one_lap
                };
                match self
                    .tail
                    .compare_exchange_weak(tail, next_tail, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => {
                        // SAFETY: `tail` is ours; passed on from the caller.
                        if unsafe { self.fill(tail, value) } {
                            entry.set(Claim {
                                ring: self.id,
                                next: tail + 1,
                                end,
                                size: n,
                            });
                            return true;
                        }
                        // Revoked already (a popper caught up): claim again.
                        tail = self.tail.load(Ordering::Relaxed);
                    }
                    Err(now) => {
                        tail = now;
                        backoff.spin();
                    }
                }
            } else if (stamp & !(WRITING | SKIPPED)) < tail {
                // The slot is still last lap's: full, unless a popper has moved the
                // head since.
                fence(Ordering::SeqCst);
                if self.head.load(Ordering::Relaxed) + self.one_lap == tail {
                    return false;
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another pusher has claimed this position.
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

    /// Takes the oldest value, if any, passing (and revoking) slots claimed but
    /// not filled.
    pub(crate) fn pop(&self) -> Option<T> {
        let mut popper = self.lock_popper();
        let mut value = MaybeUninit::<T>::uninit();
        // SAFETY: `value` has room for one `T`; it is initialised when `take` is true.
        unsafe {
            self.take(&mut popper, Unfilled::Revoke, value.as_mut_ptr())
                .then(|| value.assume_init())
        }
    }

    /// Moves up to `max` values into `out`, oldest first, showing each to `seen`
    /// where it lands; returns how many. Each is copied once, from its slot into
    /// `out`'s buffer (through `pop` it went by the stack: a second copy of every
    /// event).
    pub(crate) fn drain_into(
        &self,
        out: &mut Vec<T>,
        max: usize,
        unfilled: Unfilled,
        mut seen: impl FnMut(&T),
    ) -> usize {
        let mut popper = self.lock_popper();
        let mut n = 0;
        while n < max {
            if out.len() == out.capacity() {
                out.reserve((max - n).min(DRAIN_RESERVE));
            }
            // SAFETY: the spare capacity has room for one more `T`; `len` grows only
            // once it is written.
            unsafe {
                if !self.take(&mut popper, unfilled, out.as_mut_ptr().add(out.len())) {
                    break;
                }
                out.set_len(out.len() + 1);
            }
            if let Some(value) = out.last() {
                seen(value);
            }
            n += 1;
        }
        n
    }

    /// Pops serialised: one popper at a time moves the head, with plain stores
    /// where compare-and-swap would race other poppers.
    fn lock_popper(&self) -> std::sync::MutexGuard<'_, Popper> {
        self.popper.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies the oldest value into `*to` and frees its slot; `false` (nothing
    /// written) when the ring holds no value, or at an unfilled claim as
    /// `unfilled` says. Passes slots revoked before.
    ///
    /// # Safety
    /// `popper` is the popper lock's guard and `to` is valid for writing one `T`.
    #[inline(always)]
    unsafe fn take(&self, popper: &mut Popper, unfilled: Unfilled, to: *mut T) -> bool {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[self.index(head)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            let filled = stamp == head + 1;
            if filled || stamp == (head + 1) | SKIPPED {
                let next = self.next(head);
                // The only popper: a store, not a compare-and-swap.
                self.head.store(next, Ordering::Release);
                if filled {
                    // SAFETY: the stamp says a pusher filled this slot and the popper
                    // lock makes us its only reader; the caller gives `to`.
                    unsafe { std::ptr::copy_nonoverlapping((*slot.value.get()).as_ptr(), to, 1) };
                }
                slot.stamp.store(head + self.one_lap, Ordering::Release);
                if filled {
                    return true;
                }
                head = next;
            } else if stamp == head {
                // Not filled this lap: empty, unless a pusher has moved the tail.
                fence(Ordering::SeqCst);
                if self.tail.load(Ordering::Relaxed) == head {
                    return false;
                }
                // Claimed and not filled. A patient drain leaves a claim taken
                // since it last stopped at one to its thread.
                if unfilled == Unfilled::RevokeIfOlder && head >= popper.claimed_before {
                    popper.claimed_before = self.tail.load(Ordering::Relaxed);
                    return false;
                }
                // Revoke it, unless its pusher starts writing first (then wait
                // for it, as for any pusher mid-copy).
                let _ = slot
                    .stamp
                    .compare_exchange(head, (head + 1) | SKIPPED, Ordering::AcqRel, Ordering::Relaxed);
            } else {
                // A pusher is writing this slot.
                backoff.snooze();
            }
        }
    }

    /// Values queued now, not counting slots claimed and not yet filled: a walk
    /// over the slots in use, for stats rather than hot paths. A snapshot: pushes
    /// and pops may race it.
    pub(crate) fn queued(&self) -> usize {
        if self.claim == 1 {
            // Every slot in use is filled, or about to be by the pusher that took it.
            return self.len();
        }
        let tail = self.tail.load(Ordering::SeqCst);
        let mut pos = self.head.load(Ordering::SeqCst);
        let mut n = 0;
        while pos < tail {
            if self.slots[self.index(pos)].stamp.load(Ordering::Relaxed) == pos + 1 {
                n += 1;
            }
            pos = self.next(pos);
        }
        n
    }

    /// The position the next claim starts at: once the head reaches it, every
    /// value pushed before this call has been popped.
    pub(crate) fn tail_position(&self) -> u64 {
        self.tail.load(Ordering::SeqCst)
    }

    /// Whether pops have reached `position` (from [`Ring::tail_position`]).
    pub(crate) fn popped_up_to(&self, position: u64) -> bool {
        self.head.load(Ordering::SeqCst) >= position
    }

    /// Slots in use now: values queued and slots claimed by pushing threads but not
    /// yet filled (at most [`Ring::claim`] less one per thread). A snapshot: pushes
    /// and pops may race it.
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) != tail {
                continue;
            }
            let (h, t) = (self.index(head), self.index(tail));
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
#[path = "ring_tests.rs"]
mod tests;
