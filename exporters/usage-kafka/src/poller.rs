//! The thread that polls the producer: delivery reports arrive through `poll`.
//!
//! rust-rdkafka's `ThreadedProducer` polls in calls of 100 ms, and each call spins
//! through its last millisecond: the time left rounds down to a 0 ms poll, which
//! returns at once, until the deadline passes. That was about 1% of a core, idle or
//! not (9 of 1,000 ticks in 10 idle seconds). Calls of a second spin a tenth of it.

use rdkafka::producer::{BaseProducer, ProducerContext};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How long one poll call waits for reports; also how long the thread may
/// outlive its producer's owner.
const POLL: Duration = Duration::from_secs(1);

/// A producer polled by a thread of its own while this is alive.
pub(crate) struct Polled<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
}

impl<C: ProducerContext + 'static> Polled<C> {
    /// Starts polling `producer`; `name` names the thread.
    pub(crate) fn start(producer: BaseProducer<C>, name: &str) -> std::io::Result<Self> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (producer.clone(), stop.clone());
        std::thread::Builder::new().name(name.into()).spawn(move || {
            while !stopped.load(Relaxed) {
                polled.poll(POLL);
            }
        })?;
        Ok(Polled { producer, stop })
    }

    /// The producer (shared with the polling thread).
    pub(crate) fn producer(&self) -> &Arc<BaseProducer<C>> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for Polled<C> {
    /// Not joined: the thread ends when its poll call returns (within [`POLL`]) and
    /// drops its reference to the producer then.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::ClientConfig;
    use std::time::Instant;

    #[test]
    fn the_thread_ends_and_lets_the_producer_go_once_dropped() {
        let producer: BaseProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .create()
            .unwrap();
        let polled = Polled::start(producer, "kafka-test").unwrap();
        let producer = Arc::downgrade(polled.producer());
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(producer.strong_count(), 2, "the thread polls it");
        drop(polled);
        let end = Instant::now() + 3 * POLL;
        while producer.upgrade().is_some() {
            assert!(Instant::now() < end, "the polling thread still holds the producer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
