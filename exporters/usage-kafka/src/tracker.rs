//! Delivery reports of the batch being exported, counted without a future or a
//! channel per message. Every entry carries the export attempt it belongs to, so a
//! late report of an abandoned attempt can neither complete nor fail the next one
//! (review M8).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;

use crate::refusal::ConnectionRefusal;

/// The outcome of the batch being exported, filled in by delivery reports. Every
/// entry carries the export attempt it belongs to, so a late report of an abandoned
/// attempt can neither complete nor fail the next one.
#[derive(Default)]
pub(crate) struct Tracker {
    /// The current attempt.
    pub(crate) generation: AtomicU64,
    /// The attempt (high bits) and its reports so far (low `INDEX_BITS`), in one
    /// word: a report counts only if the attempt is still the one it belongs to.
    settled: AtomicU64,
    pub(crate) failure: Mutex<Option<(u64, KafkaError)>>,
    /// (attempt, message index) the broker refused as too large.
    pub(crate) too_large: Mutex<Vec<(u64, usize)>>,
    pub(crate) done: tokio::sync::Notify,
    /// Why the brokers refuse the connection, if they do.
    pub(crate) refusal: ConnectionRefusal,
}

const INDEX_BITS: u32 = 40;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

impl Tracker {
    pub(crate) fn opaque(generation: u64, index: usize) -> usize {
        (((generation & 0xff_ffff) as usize) << INDEX_BITS) | index
    }

    /// Starts attempt `generation`: no report of it yet.
    pub(crate) fn start(&self, generation: u64) {
        self.settled.store((generation & 0xff_ffff) << INDEX_BITS, SeqCst);
    }

    /// Whether attempt `generation` has `sent` reports.
    pub(crate) fn settled(&self, generation: u64, sent: usize) -> bool {
        let s = self.settled.load(SeqCst);
        s >> INDEX_BITS == generation & 0xff_ffff && s & INDEX_MASK >= sent as u64
    }

    /// A refusal of message `index` of attempt `generation`.
    pub(crate) fn refuse(&self, generation: u64, index: usize, e: KafkaError) {
        let generation = generation & 0xff_ffff;
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) {
            lock(&self.too_large).push((generation, index));
        } else {
            lock(&self.failure).get_or_insert((generation, e));
        }
    }

    pub(crate) fn record(&self, opaque: usize, outcome: Result<(), KafkaError>) {
        let generation = (opaque >> INDEX_BITS) as u64;
        match outcome {
            // Noted before it is counted: whoever sees the count sees the failure.
            Err(e) => self.refuse(generation, opaque & INDEX_MASK as usize, e),
            Ok(()) => self.refusal.clear(),
        }
        let counted = self
            .settled
            .fetch_update(SeqCst, SeqCst, |s| (s >> INDEX_BITS == generation).then_some(s + 1));
        if counted.is_ok() {
            self.done.notify_one();
        }
    }

    /// The failure and the too-large messages of attempt `generation`.
    pub(crate) fn outcome(&self, generation: u64) -> (Option<KafkaError>, Vec<usize>) {
        let generation = generation & 0xff_ffff;
        let failure = lock(&self.failure)
            .take()
            .filter(|(g, _)| *g == generation)
            .map(|(_, e)| e);
        let too_large = std::mem::take(&mut *lock(&self.too_large))
            .into_iter()
            .filter(|(g, _)| *g == generation)
            .map(|(_, i)| i)
            .collect();
        (failure, too_large)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[test]
    fn a_late_report_of_an_abandoned_attempt_neither_completes_nor_fails_the_next() {
        let t = Tracker::default();
        t.start(1);
        t.record(Tracker::opaque(1, 0), Ok(()));
        assert!(t.settled(1, 1));
        // Attempt 1 is abandoned with a message outstanding; attempt 2 sends two.
        t.start(2);
        t.record(Tracker::opaque(1, 1), Err(failed()));
        t.record(Tracker::opaque(2, 0), Ok(()));
        assert!(!t.settled(2, 2), "the late report did not count for attempt 2");
        t.record(Tracker::opaque(2, 1), Ok(()));
        assert!(t.settled(2, 2));
        let (failure, too_large) = t.outcome(2);
        assert!(failure.is_none(), "attempt 1's failure is not attempt 2's");
        assert!(too_large.is_empty());
    }

    #[test]
    fn a_failure_is_seen_by_whoever_sees_the_count() {
        let t = Tracker::default();
        t.start(7);
        t.record(Tracker::opaque(7, 0), Err(failed()));
        t.record(
            Tracker::opaque(7, 1),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)),
        );
        assert!(t.settled(7, 2));
        let (failure, too_large) = t.outcome(7);
        assert!(failure.is_some());
        assert_eq!(too_large, [1]);
    }
}
