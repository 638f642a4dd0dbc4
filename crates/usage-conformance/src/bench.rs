//! The loop every exporter throughput bench runs, and the events it sends, so the
//! benches' figures compare like for like.

use std::time::{Duration, Instant};
use usage_core::{Event, Pipeline, RelayUsage, Text};

/// Emits `n` events made by `make(i)` in groups of 1000, waiting whenever more than
/// `backlog` events are queued (ingest plus the first exporter's queue) so no queue
/// overflows, then waits until the first exporter has acknowledged all `n`. Returns
/// the wall time, which is what a throughput bench measures.
///
/// Panics if the pipeline stops making progress for `stall` (a bench must not hang).
pub fn pump<E: Into<Event>>(
    pipeline: &Pipeline,
    n: u64,
    backlog: u64,
    stall: Duration,
    mut make: impl FnMut(u64) -> E,
) -> Duration {
    let sink = pipeline.sink();
    let exported = || pipeline.stats().exporters.first().map_or(0, |e| e.exported);
    let base = exported();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        for _ in 0..1000.min(n - i) {
            sink.emit(make(i));
            i += 1;
        }
        wait(stall, exported, || {
            let s = pipeline.stats();
            s.queued_events + s.exporters.first().map_or(0, |e| e.queued_events) <= backlog
        });
    }
    wait(stall, exported, || exported() >= base + n);
    start.elapsed()
}

/// Polls `done`, panicking once `progress` has not moved for `stall`.
fn wait(stall: Duration, progress: impl Fn() -> u64, done: impl Fn() -> bool) {
    let (mut last, mut since) = (progress(), Instant::now());
    while !done() {
        let now = progress();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        assert!(
            since.elapsed() < stall,
            "the exporter acknowledged nothing for {stall:?} (at {now})"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The `relay_usage` every throughput bench sends (project `acme`, 15 fields, two
/// strings longer than the inline limit). usage-core's own benches keep a copy:
/// they cannot depend on this crate.
pub fn bench_relay(i: u64) -> RelayUsage {
    RelayUsage {
        project: Text::new_static("acme"),
        chain: Text::new_static("ETH1"),
        api_interface: Text::new_static("jsonrpc"),
        api_method: Text::new_static("eth_getBlockByNumber"),
        cu: 10 + (i & 7),
        latency_ms: 42,
        success: true,
        provider: Text::new_static("lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"),
        origin: Text::new_static("https://app.acme.io"),
        ..Default::default()
    }
}

/// [`bench_relay`] with values that vary as real traffic's do (three projects,
/// latencies, flags), for benches whose figure depends on compression.
pub fn varied_relay(i: u64) -> RelayUsage {
    RelayUsage {
        project: Text::new_static(["acme", "globex", "initech"][(i % 3) as usize]),
        latency_ms: 20 + (i % 200),
        success: !i.is_multiple_of(50),
        cache_hit: i.is_multiple_of(4),
        ..bench_relay(i)
    }
}
