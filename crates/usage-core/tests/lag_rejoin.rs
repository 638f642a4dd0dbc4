//! An exporter that fell behind reads back from the spool only what it missed: once
//! its queue has drained to half its bounds the router queues for it again, and
//! the worker reads each gap from the spool before the queued events after it.

mod common;

use common::{wait_until, Recorder};
use std::time::Duration;
use usage_core::{
    Event, EventId, ExporterDefaults, ExporterOptions, ExporterSection, OptimizerQos, RelayUsage, SpoolConfig,
};

const N: u64 = 12_000;

/// Whether an event was read back from the spool (those carry their fields
/// encoded, not as the typed kind that was emitted).
fn read_back(e: &Event) -> bool {
    e.downcast_ref::<RelayUsage>().is_none() && e.downcast_ref::<OptimizerQos>().is_none()
}

/// Every event of `kind` once, in emit order (the router keeps order within a
/// kind); else where the first difference is.
fn same_order(name: &str, rec: &Recorder, kind: &str, want: &[EventId]) {
    let events: Vec<Event> = rec.events().into_iter().filter(|e| e.kind() == kind).collect();
    let got: Vec<EventId> = events.iter().map(Event::id).collect();
    if got != want {
        let at = got.iter().zip(want).position(|(g, w)| g != w);
        let from = |s: &[EventId], i: Option<usize>| i.map(|i| s[i..].iter().take(3).copied().collect::<Vec<_>>());
        panic!(
            "{name} {kind}: {} delivered, {} emitted; first difference at {at:?}: got {:?} (read back: {:?}), want {:?}",
            got.len(),
            want.len(),
            from(&got, at),
            at.map(|i| events[i..].iter().take(3).map(read_back).collect::<Vec<_>>()),
            from(want, at),
        );
    }
}

fn slow() -> Recorder {
    Recorder::scripted(|_, _| {
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    })
}

/// Like [`lagging`], with up to 4 batches in flight.
fn flying_section() -> ExporterSection {
    let mut section = ExporterSection::new("flying", "custom");
    section.options = lagging(None);
    section.options.batches_in_flight = Some(4);
    section
}

fn lagging(kinds: Option<&[&str]>) -> ExporterOptions {
    ExporterOptions {
        events: kinds.map(|k| k.iter().map(|s| s.to_string()).collect()),
        queue_max_events: Some(200),
        batch_max_events: Some(50),
        ..Default::default()
    }
}

#[test]
fn a_lagging_exporter_reads_back_only_its_gaps_and_returns_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (all, relays, flying) = (slow(), slow(), slow());
    let p = common::quick(dir.path().join("data"))
        .spool(SpoolConfig {
            segment_bytes: 64 << 10,
            ..SpoolConfig::new(dir.path().join("spool"))
        })
        .exporter_options("all", lagging(None), all.clone())
        .exporter_options("relays", lagging(Some(&["relay_usage"])), relays.clone())
        .exporter_with_defaults(
            flying_section(),
            flying.clone(),
            ExporterDefaults {
                batches_in_flight: Some(4),
                ..ExporterDefaults::NONE
            },
        )
        .build()
        .unwrap();
    // Two kinds interleaved, faster than either exporter takes them (50 events per
    // millisecond at most), in bursts so the queues overflow and drain again.
    let sink = p.sink();
    let mut emitted = Vec::new();
    for i in 0..N {
        let e = if i % 3 == 0 {
            Event::new(OptimizerQos {
                chain_id: "c".into(),
                ..Default::default()
            })
        } else {
            Event::new(RelayUsage {
                cu: i,
                ..Default::default()
            })
        };
        emitted.push((e.id(), e.kind().to_string()));
        sink.emit(e);
        if i % 400 == 399 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let r = p.flush_blocking(Duration::from_secs(60)).unwrap();
    let emitted_of =
        |kind: &str| -> Vec<EventId> { emitted.iter().filter(|(_, k)| k == kind).map(|(id, _)| *id).collect() };
    assert_eq!(r.exporter("all").unwrap().delivered, N, "{r}");
    assert_eq!(all.events().len() as u64, N);
    for kind in ["relay_usage", "optimizer_qos"] {
        same_order("all", &all, kind, &emitted_of(kind));
    }
    let relays_wanted = emitted_of("relay_usage");
    assert_eq!(relays.events().len(), relays_wanted.len());
    same_order("relays", &relays, "relay_usage", &relays_wanted);
    // Batches in flight at once finish in any order; each event still comes once.
    let mut got: Vec<EventId> = flying.ids();
    let mut want: Vec<EventId> = emitted.iter().map(|(id, _)| *id).collect();
    got.sort();
    want.sort();
    assert!(
        got == want,
        "flying: {} delivered of {}, each once",
        got.len(),
        want.len()
    );
    for (name, rec) in [("all", &all), ("relays", &relays), ("flying", &flying)] {
        let events = rec.events();
        let first_read_back = events.iter().position(read_back);
        let first_read_back = first_read_back.unwrap_or_else(|| panic!("{name} never lagged"));
        let from_memory_after = events[first_read_back..].iter().filter(|e| !read_back(e)).count();
        assert!(
            from_memory_after > 0,
            "{name}: after falling behind it took events from memory again"
        );
    }
    let s = p.stats();
    assert_eq!(s.exporters.iter().map(|e| e.dropped_queue_full).sum::<u64>(), 0);
    let replayed = s.spool.as_ref().unwrap().replayed_events;
    let delivered: Vec<Event> = [&all, &relays, &flying].iter().flat_map(|r| r.events()).collect();
    let from_memory = delivered.iter().filter(|e| !read_back(e)).count();
    assert_eq!(
        replayed as usize + from_memory,
        delivered.len(),
        "each delivered event was read back once or taken from memory"
    );
    let metrics = s.to_prometheus();
    assert!(
        metrics.contains(&format!("usage_spool_replayed_events_total {replayed}\n")),
        "{metrics}"
    );
    assert!(wait_until(Duration::from_secs(5), || p
        .stats()
        .exporters
        .iter()
        .all(|e| e.lag == 0)));
    p.shutdown_blocking(Duration::from_secs(5)).unwrap();
}
