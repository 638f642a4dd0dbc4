//! Emit at a steady rate, as a service does, rather than flat out: groups of
//! [`GROUP`] events per thread at [`RATE`] events/s per thread, timing only the emit
//! calls. Between groups the pipeline drains and its threads sleep, so each group
//! meets cold queue slots and wake-ups: the cost a real host pays. Run outside
//! criterion (whose time budget counts only timed work, and would pace for hours);
//! the figures go to stderr and `target/bench/emit_paced.json` for `cargo xtask bench`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Events per thread per second.
pub const RATE: u64 = 200_000;
/// Events per group.
pub const GROUP: u64 = 64;

/// One paced run's result.
pub struct Paced {
    /// Mean time of one emit call, per thread (ns).
    pub ns_per_emit: f64,
    /// Events emitted in all.
    pub emitted: u64,
}

/// Emits for `seconds` on `threads` threads at [`RATE`] each; `emit(thread, i)`.
pub fn run(threads: usize, seconds: f64, emit: Arc<dyn Fn(u64) + Send + Sync>) -> Paced {
    let per_thread = (RATE as f64 * seconds) as u64 / GROUP * GROUP;
    let interval = Duration::from_nanos(GROUP * 1_000_000_000 / RATE);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (barrier, emit) = (barrier.clone(), emit.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut timed = Duration::ZERO;
                let base = t as u64 * per_thread;
                for group in 0..per_thread / GROUP {
                    let due = start + interval * group as u32;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let t0 = Instant::now();
                    for i in 0..GROUP {
                        emit(base + group * GROUP + i);
                    }
                    timed += t0.elapsed();
                }
                timed
            })
        })
        .collect();
    let timed: Vec<Duration> = handles.into_iter().map(|h| h.join().unwrap_or_default()).collect();
    let emitted = per_thread * threads as u64;
    let mean = timed.iter().map(Duration::as_nanos).sum::<u128>() as f64 / emitted as f64;
    Paced {
        ns_per_emit: mean,
        emitted,
    }
}
