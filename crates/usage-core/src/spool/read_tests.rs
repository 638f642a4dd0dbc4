//! Reads that go on where the last one stopped (`ReadResume`) return exactly
//! what reads from the index do: across segments, kind filters, end seqs that
//! stop mid-window, and commits after the last read.

use super::*;
use crate::event::Event;
use crate::{NetworkEvent, RelayUsage};

fn spool(dir: &std::path::Path) -> Spool {
    let cfg = SpoolConfig {
        segment_bytes: 32 << 10,
        ..SpoolConfig::new(dir)
    };
    Spool::open(cfg, Arc::new(Resource::new("svc"))).unwrap().0
}

/// Every third event a network event, the rest relays.
fn mixed(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| match i % 3 {
            0 => Event::new(NetworkEvent::default()),
            _ => Event::new(RelayUsage {
                project: "p".into(),
                cu: i,
                ..Default::default()
            }),
        })
        .collect()
}

/// Reads `from..to` in batches of `batch`, resuming each from the last, and
/// returns the ids read and the position reached.
fn read_resuming(
    s: &Shared,
    resume: &mut Option<ReadResume>,
    (from, to): (u64, u64),
    batch: usize,
    wants: &dyn Fn(&str) -> bool,
) -> (Vec<EventId>, u64) {
    let (mut pos, mut ids) = (from, Vec::new());
    while pos < to {
        let (events, next) = s.read_resuming(pos, to, batch, usize::MAX, wants, resume).unwrap();
        assert!(next > pos || !events.is_empty(), "no progress at {pos}");
        ids.extend(events.iter().map(Event::id));
        pos = next;
    }
    (ids, pos)
}

use crate::event::id::EventId;

#[test]
fn resumed_reads_return_what_reads_from_the_index_return() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spool(d.path());
    for _ in 0..20 {
        s.append(&mixed(500));
        s.commit().unwrap();
    }
    assert!(s.shared.stats().segments > 5, "several segments");
    let relays = |k: &str| k == "relay_usage";
    let (everything, _) = s.shared.read(0, u64::MAX, usize::MAX, usize::MAX, &|_| true).unwrap();
    for (batch, wants) in [
        (7, &relays as &dyn Fn(&str) -> bool),
        (100, &|_: &str| true),
        (1000, &relays),
    ] {
        let want: Vec<EventId> = everything.iter().filter(|e| wants(e.kind())).map(Event::id).collect();
        let mut resume = None;
        // Ranges that stop mid-window, one after another as a lagging worker reads gaps.
        let mut got = Vec::new();
        let mut pos = 0;
        for to in [333, 1200, 1201, 4999, 10_000] {
            let (ids, next) = read_resuming(&s.shared, &mut resume, (pos, to), batch, wants);
            assert_eq!(next, to);
            got.extend(ids);
            pos = to;
        }
        assert!(
            got == want,
            "batches of {batch}: {} read, {} wanted",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn a_resume_from_another_position_is_not_used() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spool(d.path());
    s.append(&mixed(3000));
    s.commit().unwrap();
    let mut resume = None;
    let (first, next) = s
        .shared
        .read_resuming(0, 3000, 10, usize::MAX, &|_| true, &mut resume)
        .unwrap();
    assert_eq!((first.len(), next), (10, 10));
    assert!(resume.is_some());
    // Skipping ahead (the events between were taken from memory): read from 2000.
    let (events, _) = s
        .shared
        .read_resuming(2000, 2005, 10, usize::MAX, &|_| true, &mut resume)
        .unwrap();
    let (direct, _) = s.shared.read(2000, 2005, 10, usize::MAX, &|_| true).unwrap();
    let ids = |e: &[Event]| e.iter().map(Event::id).collect::<Vec<_>>();
    assert_eq!(ids(&events), ids(&direct));
    assert_eq!(events.len(), 5);
}

#[test]
fn a_read_resumed_at_the_end_of_the_committed_bytes_sees_later_commits() {
    let d = tempfile::tempdir().unwrap();
    let mut s = spool(d.path());
    let first = mixed(20);
    s.append(&first);
    s.commit().unwrap();
    let mut resume = None;
    let (events, next) = s
        .shared
        .read_resuming(0, 20, 20, usize::MAX, &|_| true, &mut resume)
        .unwrap();
    assert_eq!((events.len(), next), (20, 20));
    let later = mixed(30);
    s.append(&later);
    s.commit().unwrap();
    let (events, next) = s
        .shared
        .read_resuming(20, 50, 100, usize::MAX, &|_| true, &mut resume)
        .unwrap();
    assert_eq!(next, 50);
    let ids: Vec<EventId> = events.iter().map(Event::id).collect();
    let want: Vec<EventId> = later.iter().map(Event::id).collect();
    assert_eq!(ids, want);
}
