//! A worker's loop: takes batches from its queue (or the spool) and delivers up to
//! `batches_in_flight` of them at once, acknowledging them in order.

use super::worker::Worker;
use crate::export::batch::Batch;
use crate::export::hand_off::HandOff;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// What the drain loop got: a batch taken (`None`: stopping, nothing left) or
/// one delivered.
enum Next {
    Taken(Option<Batch>),
    Delivered(Option<(u64, u64)>),
}

impl Worker {
    /// Takes batches and delivers up to `batches_in_flight` of them at once, each
    /// started once the one before was handed off (see [`HandOff`]) or finished.
    /// The acked position moves in batch order: a batch finished before an earlier
    /// one waits for it, so a crash or a stop never skips an undelivered event.
    pub(super) async fn drain_queue(&self) {
        let mut seen_flush = 0u64;
        let mut pos = self.slot.acked.load(Relaxed);
        let mut flying = FuturesOrdered::new();
        let mut flying_events = 0u64;
        let mut previous: Option<Arc<HandOff>> = None;
        loop {
            let next = if flying.len() >= self.settings.batches_in_flight {
                Next::Delivered(flying.next().await)
            } else if flying.is_empty() {
                Next::Taken(self.next_batch(&mut pos, &mut seen_flush, true).await)
            } else {
                // Whichever comes first; a batch being waited for is taken on the
                // next turn (taking is cancel-safe: nothing moves before it returns,
                // and a spool read it started is picked up again, see SpoolReader).
                tokio::select! {
                    biased;
                    done = flying.next() => Next::Delivered(done),
                    batch = self.next_batch(&mut pos, &mut seen_flush, false) => Next::Taken(batch),
                }
            };
            match next {
                Next::Taken(Some(batch)) => {
                    let (events, end) = (batch.len() as u64, batch.end_seq());
                    // Later spool reads start after it, as when it was delivered.
                    pos = pos.max(end);
                    flying_events += events;
                    self.slot.counters.in_flight.store(flying_events, Relaxed);
                    let hand_off = Arc::new(HandOff::default());
                    let after = previous.replace(hand_off.clone());
                    let batch = batch.with_hand_off(hand_off.clone());
                    flying.push_back(async move {
                        if let Some(before) = after {
                            before.wait().await;
                        }
                        self.deliver(batch).await;
                        hand_off.set();
                        (events, end)
                    });
                }
                Next::Delivered(Some(done)) => {
                    self.delivered(&mut flying_events, done, flying.is_empty().then_some(pos));
                }
                Next::Delivered(None) => {}
                // Stopping with nothing left to take: the batches in flight finish first.
                Next::Taken(None) => {
                    while let Some(done) = flying.next().await {
                        self.delivered(&mut flying_events, done, flying.is_empty().then_some(pos));
                    }
                    return;
                }
            }
        }
    }

    /// Counts a delivered batch out and acknowledges through its end, or through
    /// `all_done_to` when it was the last in flight (what lies between the
    /// batches taken was not this exporter's).
    fn delivered(&self, flying_events: &mut u64, (events, end): (u64, u64), all_done_to: Option<u64>) {
        *flying_events -= events;
        self.slot.counters.in_flight.store(*flying_events, Relaxed);
        self.slot
            .acked
            .fetch_max(all_done_to.map_or(end, |p| p.max(end)), Relaxed);
        self.control.progress.bump();
    }
}
