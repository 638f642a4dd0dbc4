//! Delivery reports of the batches being exported, counted without a future or a
//! channel per message.
//!
//! Up to [`MAX_BATCHES_IN_FLIGHT`] export attempts run at once (`batches_in_flight`), each in a
//! slot of its own taken for as long as it runs. A message's opaque names its slot,
//! its attempt and its index, so a late report of an abandoned attempt can neither
//! complete nor fail the attempt that reuses the slot (review M8).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use usage_core::MAX_BATCHES_IN_FLIGHT;

use crate::refusal::ConnectionRefusal;

/// Bits of a message's index in its opaque; above them the slot, then the attempt.
const INDEX_BITS: u32 = 40;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const SLOT_BITS: u32 = 4;
const SLOTS: usize = 1 << SLOT_BITS;
/// Attempt numbers wrap at this many bits (a late report would have to outlive
/// a million attempts to be miscounted).
const GENERATION_MASK: u64 = (1 << (64 - INDEX_BITS - SLOT_BITS)) - 1;

const _: () = assert!(SLOTS >= MAX_BATCHES_IN_FLIGHT, "a slot for every attempt in flight");

/// The attempts in flight and the brokers' standing refusal, shared with the
/// producer's delivery-report callback.
#[derive(Default)]
pub(crate) struct Tracker {
    generation: AtomicU64,
    slots: [Slot; SLOTS],
    /// Why the brokers refuse the connection, if they do.
    pub(crate) refusal: ConnectionRefusal,
}

/// One attempt's reports.
#[derive(Default)]
struct Slot {
    busy: AtomicBool,
    /// The attempt (high bits) and its reports so far (low `INDEX_BITS`), in one
    /// word: a report counts only if the attempt is still the one it belongs to.
    settled: AtomicU64,
    failure: Mutex<Option<(u64, KafkaError)>>,
    /// (attempt, message index) the broker refused as too large.
    too_large: Mutex<Vec<(u64, usize)>>,
    done: tokio::sync::Notify,
}

/// Which attempt a message belongs to: its slot and attempt number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptId {
    slot: usize,
    generation: u64,
}

impl AttemptId {
    /// The opaque for message `index` of this attempt.
    pub(crate) fn opaque(self, index: usize) -> usize {
        ((self.generation << (INDEX_BITS + SLOT_BITS)) as usize)
            | (self.slot << INDEX_BITS)
            | (index & INDEX_MASK as usize)
    }

    fn of_opaque(opaque: usize) -> (AttemptId, usize) {
        let o = opaque as u64;
        let id = AttemptId {
            slot: ((o >> INDEX_BITS) as usize) & (SLOTS - 1),
            generation: o >> (INDEX_BITS + SLOT_BITS),
        };
        (id, (o & INDEX_MASK) as usize)
    }
}

/// A running attempt; dropping it (the export returned or was abandoned) frees its slot.
pub(crate) struct Attempt<'t> {
    tracker: &'t Tracker,
    pub(crate) id: AttemptId,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.tracker.slots[self.id.slot].busy.store(false, SeqCst);
    }
}

impl Attempt<'_> {
    fn slot(&self) -> &Slot {
        &self.tracker.slots[self.id.slot]
    }

    /// Whether this attempt has `sent` reports.
    pub(crate) fn settled(&self, sent: usize) -> bool {
        let s = self.slot().settled.load(SeqCst);
        s >> INDEX_BITS == self.id.generation && s & INDEX_MASK >= sent as u64
    }

    /// Waits until this attempt has `sent` reports.
    pub(crate) async fn wait_settled(&self, sent: usize) {
        loop {
            let notified = self.slot().done.notified();
            if self.settled(sent) {
                return;
            }
            notified.await;
        }
    }

    /// This attempt's failure and the messages the broker refused as too large.
    pub(crate) fn outcome(&self) -> (Option<KafkaError>, Vec<usize>) {
        let g = self.id.generation;
        let slot = self.slot();
        let failure = lock(&slot.failure).take().filter(|(a, _)| *a == g).map(|(_, e)| e);
        let mut too_large = lock(&slot.too_large);
        let mine = too_large.iter().filter(|(a, _)| *a == g).map(|&(_, i)| i).collect();
        too_large.clear();
        (failure, mine)
    }
}

impl Tracker {
    /// Starts an attempt in a free slot; `None` when all are taken (more attempts
    /// running than `batches_in_flight` allows: an abandoned one not yet gone).
    pub(crate) fn begin(&self) -> Option<Attempt<'_>> {
        let slot = self
            .slots
            .iter()
            .position(|s| s.busy.compare_exchange(false, true, SeqCst, SeqCst).is_ok())?;
        let generation = (self.generation.fetch_add(1, SeqCst) + 1) & GENERATION_MASK;
        let s = &self.slots[slot];
        // Under the failure lock, so a late failure of the slot's last attempt is
        // either cleared here or sees the new attempt and is ignored.
        let mut failure = lock(&s.failure);
        s.settled.store(generation << INDEX_BITS, SeqCst);
        *failure = None;
        drop(failure);
        lock(&s.too_large).clear();
        Some(Attempt {
            tracker: self,
            id: AttemptId { slot, generation },
        })
    }

    /// A refusal of message `index` of attempt `id` (ignored once the attempt is over).
    pub(crate) fn refuse(&self, id: AttemptId, index: usize, e: KafkaError) {
        let slot = &self.slots[id.slot];
        let current = || slot.settled.load(SeqCst) >> INDEX_BITS == id.generation;
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
            if current() {
                lock(&slot.too_large).push((id.generation, index));
            }
        } else {
            let mut failure = lock(&slot.failure);
            if current() {
                failure.get_or_insert((id.generation, e));
            }
        }
    }

    /// A delivery report.
    pub(crate) fn record(&self, opaque: usize, outcome: Result<(), KafkaError>) {
        let (id, index) = AttemptId::of_opaque(opaque);
        match outcome {
            // Noted before it is counted: whoever sees the count sees the failure.
            Err(e) => self.refuse(id, index, e),
            Ok(()) => self.refusal.clear(),
        }
        let slot = &self.slots[id.slot];
        let counted = slot
            .settled
            .fetch_update(SeqCst, SeqCst, |s| (s >> INDEX_BITS == id.generation).then_some(s + 1));
        if counted.is_ok() {
            slot.done.notify_one();
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
