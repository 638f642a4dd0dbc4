//! Many threads emitting into one pipeline of the default size, where each thread
//! claims several queue slots at once: every event arrives once, each thread's in
//! the order it emitted them, and a thread that stops with slots claimed and
//! unfilled holds nothing back.

mod common;

use common::{quick, relay, Recorder};
use std::sync::mpsc;
use std::time::Duration;
use usage_core::{ExporterOptions, Value};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 20_000;

/// `cu` carries (thread, sequence): thread `t`'s `i`-th event is `t * 1_000_000 + i`.
fn cu_of(event: &usage_core::Event) -> u64 {
    match event.field("cu") {
        Some(Value::U64(cu)) => cu,
        other => panic!("cu missing: {other:?}"),
    }
}

#[test]
fn threads_claiming_slots_lose_nothing_keep_their_order_and_an_idle_one_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    // Room for every event, so any loss is the queue's fault, not the bound's.
    let room = ExporterOptions {
        queue_max_events: Some(200_000),
        ..Default::default()
    };
    let p = quick(dir.path().to_path_buf())
        .configure(|c| c.queue_capacity = 100_000)
        .exporter_options("rec", room, rec.clone())
        .build()
        .unwrap();

    // One thread emits three events and then waits, holding the rest of its claim.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (emitted_tx, emitted_rx) = mpsc::channel::<()>();
    let idle_sink = p.sink();
    let idle = std::thread::spawn(move || {
        for i in 0..3 {
            idle_sink.emit(relay(9_000_000 + i));
        }
        emitted_tx.send(()).unwrap();
        let _ = stop_rx.recv();
    });
    emitted_rx.recv().unwrap();

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let sink = p.sink();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    sink.emit(relay(t * 1_000_000 + i));
                }
            });
        }
    });

    // The idle thread is still alive with its claim: the flush must not wait on it.
    let report = p.flush_blocking(Duration::from_secs(30)).expect("flush");
    assert_eq!(p.stats().queued_events, 0, "nothing left queued after the flush");
    let got: Vec<u64> = rec.events().iter().map(cu_of).collect();
    assert_eq!(got.len() as u64, THREADS * PER_THREAD + 3, "{report:?}");
    for t in (0..THREADS).chain([9]) {
        let mine: Vec<u64> = got.iter().copied().filter(|cu| cu / 1_000_000 == t).collect();
        let want = if t == 9 { 3 } else { PER_THREAD };
        assert_eq!(mine.len() as u64, want, "thread {t}: every event once");
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t} out of order");
    }
    assert_eq!(p.stats().dropped.total(), 0);
    stop_tx.send(()).unwrap();
    idle.join().unwrap();
    p.shutdown_blocking(Duration::from_secs(10)).expect("shutdown");
}

/// A thread that exits with slots claimed and unfilled holds the events queued
/// behind its claim for at most the router's next drains, without any flush: the
/// router, woken by emitting threads, leaves a claim alone once, and revokes it at
/// the next drain (or on its tick).
#[test]
fn an_exited_threads_claim_holds_nothing_back_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new();
    let p = quick(dir.path().to_path_buf())
        .configure(|c| c.queue_capacity = 100_000)
        .exporter("rec", rec.clone())
        .build()
        .unwrap();
    // Three emits: claims of one, two and four slots, the last one filled once.
    let gone = p.sink();
    std::thread::spawn(move || (0..3).for_each(|i| gone.emit(relay(9_000_000 + i))))
        .join()
        .unwrap();
    let sink = p.sink();
    std::thread::spawn(move || (0..1_000).for_each(|i| sink.emit(relay(i))))
        .join()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rec.count() < 1_003 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 1,003 delivered: the exited thread's claim held the rest back",
            rec.count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let got: Vec<u64> = rec.events().iter().map(cu_of).collect();
    assert_eq!(&got[..3], &[9_000_000, 9_000_001, 9_000_002]);
    assert_eq!(&got[3..], (0..1_000).collect::<Vec<_>>());
    p.shutdown_blocking(Duration::from_secs(10)).expect("shutdown");
}
