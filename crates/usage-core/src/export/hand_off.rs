//! The signal that lets the next batch start while this one's acknowledgements
//! are awaited (`batches_in_flight` above 1).
//!
//! An exporter calls [`Batch::handed_off`](super::batch::Batch::handed_off) once
//! the next batch may start: every event is in its client's ordered queue (e.g.
//! produced to librdkafka), or the batch is encoded for a destination without
//! order. The pipeline starts the next batch only then, or once this one is
//! finished, so batches start in order. An exporter that never calls it exports
//! one batch at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Set once: by the exporter when the batch is handed off, or by the pipeline
/// when the batch is finished.
#[derive(Default)]
pub(crate) struct HandOff {
    done: AtomicBool,
    notify: Notify,
}

impl HandOff {
    pub(crate) fn set(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// Returns once [`set`](HandOff::set) was called.
    pub(crate) async fn wait(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it from here on.
            let notified = self.notify.notified();
            if self.done.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_wait_ends_when_it_is_set_from_another_thread_and_after() {
        let h = Arc::new(HandOff::default());
        let setter = {
            let h = h.clone();
            std::thread::spawn(move || h.set())
        };
        h.wait().await;
        setter.join().expect("setter thread");
        // Set stays set; setting again changes nothing.
        h.set();
        h.wait().await;
    }
}
