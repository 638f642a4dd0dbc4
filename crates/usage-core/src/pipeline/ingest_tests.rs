//! The ingest queue's bounds, drops and wake-ups.

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
    assert_eq!(q.drain_into(&mut out, 10, Unfilled::Revoke), 2);
    assert_eq!(q.bytes(), 0);
}

#[test]
fn an_event_holding_heap_bytes_wakes_the_router_at_once() {
    // Pushes wake every ~2,978 events (1 MiB of slots); this one event holds
    // 2 MiB on the heap and must wake the router now, not on its tick.
    let q = Ingest::new(10_000, 64 << 20, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
    let (parked_tx, parked_rx) = std::sync::mpsc::channel();
    let router = std::thread::spawn(move || {
        let start = Instant::now();
        let _ = parked_tx.send(());
        std::thread::park_timeout(Duration::from_secs(30));
        start.elapsed()
    });
    q.set_router(router.thread().clone());
    let _ = parked_rx.recv();
    q.push(Event::new(RelayUsage {
        origin: "x".repeat(2 << 20).into(),
        ..Default::default()
    }));
    let waited = router.join().unwrap();
    assert!(waited < Duration::from_secs(10), "the router slept {waited:?}");
    assert_eq!(q.len(), 1);
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
            q.drain_into(&mut out, 10, Unfilled::Revoke)
        })
    };
    q.push(Event::new(RelayUsage::default()));
    assert_eq!(drainer.join().unwrap(), 1);
    assert_eq!(q.len(), 1);
    assert_eq!(q.drops.snapshot().block_timeout, 1, "no new drop");
}

#[test]
fn one_threads_events_leave_in_the_order_it_emitted_them() {
    // Filled past the brim and drained a little at a time, as by a router
    // that falls behind: what is kept must come out in emit order.
    let q = Ingest::new(64, 1 << 20, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
    let mut out = Vec::new();
    for cu in 0..1_000u64 {
        q.push(Event::new(RelayUsage {
            cu,
            ..Default::default()
        }));
        if cu % 100 == 99 {
            q.drain_into(&mut out, 40, Unfilled::Revoke);
        }
    }
    q.drain_into(&mut out, usize::MAX, Unfilled::Revoke);
    let cus: Vec<u64> = out
        .iter()
        .filter_map(|e| e.downcast_ref::<RelayUsage>())
        .map(|r| r.cu)
        .collect();
    assert!(cus.len() > 64, "only {} kept", cus.len());
    assert!(cus.windows(2).all(|w| w[0] < w[1]), "out of emit order: {cus:?}");
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

/// A `relay_usage` holding `bytes` on the heap in its project.
fn holding(bytes: usize) -> Event {
    Event::new(RelayUsage {
        project: "p".repeat(bytes).into(),
        ..Default::default()
    })
}

#[test]
fn with_a_spool_an_event_larger_than_a_record_is_refused_and_counted() {
    for policy in [FullPolicy::DropNewest, FullPolicy::BlockWithTimeout] {
        let q = Ingest::new(10, 64 << 20, 1 << 20, policy, Duration::from_secs(3600)).spooled();
        q.push(holding(MAX_EVENT_BYTES));
        q.push(holding(MAX_EVENT_BYTES - 1024));
        let d = q.drops.snapshot();
        // Refused at once, not waited on: a larger queue would never take it.
        assert_eq!((q.len(), d.too_large, d.total()), (1, 1, 1), "{policy:?}");
        let mut out = Vec::new();
        q.drain_into(&mut out, 10, Unfilled::Revoke);
        assert_eq!(
            q.offer_all(vec![holding(1), holding(MAX_EVENT_BYTES)]),
            Err(Refused::NeverFits)
        );
        assert_eq!(q.offer_all(vec![holding(1), holding(2)]), Ok(()));
    }
}

#[test]
fn without_a_spool_an_event_is_not_limited_by_record_size() {
    let q = Ingest::new(10, 64 << 20, 1 << 20, FullPolicy::DropNewest, Duration::ZERO);
    q.push(holding(MAX_EVENT_BYTES + 1));
    assert_eq!((q.len(), q.drops.snapshot().total()), (1, 0));
}
