use super::*;

fn failed() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
}

fn too_large() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
}

#[test]
fn a_late_report_of_an_abandoned_attempt_neither_completes_nor_fails_the_next() {
    let t = Tracker::default();
    let first = t.begin().expect("a free slot");
    let abandoned = first.id;
    t.record(abandoned.opaque(0), Ok(()));
    assert!(first.settled(1));
    // Attempt 1 is abandoned with a message outstanding; attempt 2 takes its slot.
    drop(first);
    let second = t.begin().expect("a free slot");
    assert_eq!(second.id.slot, abandoned.slot, "the freed slot is reused");
    t.record(abandoned.opaque(1), Err(failed()));
    t.record(second.id.opaque(0), Ok(()));
    assert!(!second.settled(2), "the late report did not count for attempt 2");
    t.record(second.id.opaque(1), Ok(()));
    assert!(second.settled(2));
    let (failure, too_large) = second.outcome();
    assert!(failure.is_none(), "attempt 1's failure is not attempt 2's");
    assert!(too_large.is_empty());
}

#[test]
fn a_late_failure_does_not_hide_the_next_attempts_own() {
    let t = Tracker::default();
    let abandoned = t.begin().expect("a free slot").id;
    let current = t.begin().expect("a free slot");
    assert_eq!(current.id.slot, abandoned.slot);
    t.record(abandoned.opaque(3), Err(failed()));
    t.record(current.id.opaque(0), Err(failed()));
    assert!(current.settled(1));
    assert!(current.outcome().0.is_some(), "its own failure is reported");
}

#[test]
fn a_failure_is_seen_by_whoever_sees_the_count() {
    let t = Tracker::default();
    let a = t.begin().expect("a free slot");
    t.record(a.id.opaque(0), Err(failed()));
    t.record(a.id.opaque(1), Err(too_large()));
    assert!(a.settled(2));
    let (failure, too_large) = a.outcome();
    assert!(failure.is_some());
    assert_eq!(too_large, [1]);
}

#[test]
fn attempts_in_flight_at_once_count_and_fail_apart() {
    let t = Tracker::default();
    let a = t.begin().expect("a free slot");
    let b = t.begin().expect("a free slot");
    assert_ne!(a.id.slot, b.id.slot);
    // Reports interleave: b's failure and a's too-large message stay their own.
    t.record(a.id.opaque(0), Ok(()));
    t.record(b.id.opaque(0), Err(failed()));
    t.record(a.id.opaque(1), Err(too_large()));
    t.record(b.id.opaque(1), Ok(()));
    t.record(b.id.opaque(2), Ok(()));
    assert!(a.settled(2) && !a.settled(3));
    assert!(b.settled(3));
    let (a_failure, a_too_large) = a.outcome();
    let (b_failure, b_too_large) = b.outcome();
    assert!(a_failure.is_none());
    assert_eq!(a_too_large, [1]);
    assert!(b_failure.is_some());
    assert!(b_too_large.is_empty());
}

#[test]
fn every_slot_taken_refuses_another_attempt_until_one_ends() {
    let t = Tracker::default();
    let mut running: Vec<_> = (0..SLOTS).map(|_| t.begin().expect("a free slot")).collect();
    assert!(t.begin().is_none());
    running.pop();
    assert!(t.begin().is_some());
}

#[test]
fn an_opaque_carries_the_slot_the_attempt_and_the_index() {
    let id = AttemptId {
        slot: 13,
        generation: GENERATION_MASK,
    };
    assert_eq!(AttemptId::of_opaque(id.opaque(123_456)), (id, 123_456));
}

#[tokio::test]
async fn waiting_ends_when_the_last_report_arrives_on_another_thread() {
    let t = std::sync::Arc::new(Tracker::default());
    let a = t.begin().expect("a free slot");
    let id = a.id;
    let reporter = {
        let t = t.clone();
        std::thread::spawn(move || (0..1000).for_each(|i| t.record(id.opaque(i), Ok(()))))
    };
    a.wait_settled(1000).await;
    assert!(a.settled(1000));
    reporter.join().expect("reporter thread");
}
