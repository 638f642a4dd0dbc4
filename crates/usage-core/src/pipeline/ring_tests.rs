//! Tests of the ingest ring.

use super::*;
use std::sync::Arc;

/// The VmFlags of the mapping holding `addr`, from /proc/self/smaps.
#[cfg(target_os = "linux")]
fn vm_flags_at(addr: usize) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        // A mapping starts with its range, `lo-hi` in hex; its fields follow.
        let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
        if let Some((Ok(lo), Ok(hi))) =
            range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
        {
            inside = (lo..hi).contains(&addr);
        } else if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
            return Some(flags.trim().to_string());
        }
    }
    None
}

/// Where the kernel has transparent huge pages, a ring of megabytes asks for
/// them (its mapping carries `hg`), before any slot is written.
#[cfg(target_os = "linux")]
#[test]
fn a_large_ring_is_backed_by_huge_pages() {
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        return; // a kernel built without them: the advice is refused, harmlessly
    }
    let ring: Ring<[u8; 352]> = Ring::new(50_000);
    let middle = ring.slots.as_ptr() as usize + std::mem::size_of_val(&*ring.slots) / 2;
    let flags = vm_flags_at(middle).expect("the ring's mapping is in /proc/self/smaps");
    assert!(
        flags.split_whitespace().any(|f| f == "hg"),
        "the ring's mapping lacks `hg` (MADV_HUGEPAGE): {flags}"
    );
    let small: Ring<u64> = Ring::new(100);
    assert!(ring.push([7; 352]).is_ok() && small.push(1).is_ok(), "both still work");
}

#[test]
fn holds_exactly_its_capacity_in_order_across_laps() {
    for (cap, claim) in [(1, 1), (2, 1), (3, 1), (5, 1), (8, 1), (5, 3), (8, 4), (7, 16)] {
        let ring = Ring::with_claim(cap, claim);
        let mut next_out = 0;
        for round in 0..4 {
            for i in 0..cap {
                assert!(ring.push(round * cap + i).is_ok(), "cap {cap} claim {claim}");
            }
            assert_eq!(ring.push(usize::MAX), Err(usize::MAX), "cap {cap} claim {claim}: full");
            assert_eq!(ring.len(), cap);
            for _ in 0..cap {
                assert_eq!(ring.pop(), Some(next_out));
                next_out += 1;
            }
            assert_eq!((ring.pop(), ring.len()), (None, 0));
        }
    }
}

#[test]
fn len_counts_a_ring_that_wrapped() {
    let ring = Ring::new(4);
    for i in 0..3 {
        ring.push(i).unwrap();
    }
    ring.pop();
    ring.pop();
    ring.push(3).unwrap();
    ring.push(4).unwrap();
    assert_eq!(ring.len(), 3);
    assert_eq!((ring.pop(), ring.pop(), ring.pop()), (Some(2), Some(3), Some(4)));
}

#[test]
fn values_left_in_the_ring_are_dropped_with_it() {
    let shared = Arc::new(());
    let ring = Ring::new(4);
    ring.push(shared.clone()).unwrap();
    ring.push(shared.clone()).unwrap();
    drop(ring);
    assert_eq!(Arc::strong_count(&shared), 1);
}

#[test]
fn many_pushers_and_poppers_lose_and_repeat_nothing() {
    for claim in [1, 8] {
        pushers_and_poppers(Ring::with_claim(64, claim));
    }
}

fn pushers_and_poppers(ring: Ring<usize>) {
    const PER: usize = 50_000;
    let ring = Arc::new(ring);
    let pushers: Vec<_> = (0..3)
        .map(|t| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let mut v = t * PER + i;
                    while let Err(back) = ring.push(v) {
                        v = back;
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // One popper pops one at a time, the other drains a few at a time: they take
    // turns at the head.
    let poppers: Vec<_> = (0..2)
        .map(|p| {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < PER * 3 / 2 {
                    let wanted = (PER * 3 / 2 - got.len()).min(7);
                    let moved = match p {
                        0 => ring.pop().map(|v| got.push(v)).is_some(),
                        _ => ring.drain_into(&mut got, wanted, Unfilled::Revoke, |_| ()) > 0,
                    };
                    if !moved {
                        std::thread::yield_now();
                    }
                }
                got
            })
        })
        .collect();
    for p in pushers {
        p.join().unwrap();
    }
    let popped: Vec<Vec<usize>> = poppers.into_iter().map(|p| p.join().unwrap()).collect();
    // Each popper sees each pusher's values in the order they were pushed.
    for got in &popped {
        for t in 0..3 {
            let mine: Vec<usize> = got.iter().copied().filter(|v| v / PER == t).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "pusher {t} out of order");
        }
    }
    let mut all: Vec<usize> = popped.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..3 * PER).collect::<Vec<_>>());
    // Claims the pushers left unfilled count until a pop passes them.
    assert_eq!((ring.pop(), ring.len()), (None, 0));
}

/// A thread that stops pushing with part of its claim unfilled: the next pop
/// revokes the rest, and the thread's next push lands after everything queued.
/// (Claims grow 1, 2, 4, ... slots as a thread keeps pushing.)
#[test]
fn an_unfilled_claim_is_revoked_and_its_thread_claims_afresh() {
    let ring = Ring::with_claim(8, 4);
    ring.push(0).unwrap();
    ring.push(1).unwrap();
    // The first claim took one slot, the second two.
    assert_eq!((ring.len(), ring.queued()), (3, 2), "two queued, one claimed");
    let mark = ring.tail_position();
    assert!(!ring.popped_up_to(mark));
    assert_eq!((ring.pop(), ring.pop(), ring.pop()), (Some(0), Some(1), None));
    assert_eq!((ring.len(), ring.queued()), (0, 0), "the unfilled two are revoked");
    assert!(ring.popped_up_to(mark));
    for i in 2..10 {
        ring.push(i).unwrap();
    }
    assert_eq!(ring.push(99), Err(99), "all 8 slots usable again");
    let out: Vec<usize> = std::iter::from_fn(|| ring.pop()).collect();
    assert_eq!(out, (2..10).collect::<Vec<_>>());
}

/// `drain_into` moves each value once, in order, into a buffer it grows, up to
/// `max` at a time, passing another thread's unfilled claim, and shows each once.
#[test]
fn drain_into_moves_each_value_once_in_order() {
    let ring = Arc::new(Ring::with_claim(4096, 4));
    let owner = Arc::new(());
    let idle = ring.clone();
    let idle_owner = owner.clone();
    // Its second claim takes two slots and fills one.
    std::thread::spawn(move || {
        for i in [5000, 5001] {
            assert!(idle.push((i, idle_owner.clone())).is_ok());
        }
    })
    .join()
    .unwrap();
    for i in 0..3000 {
        assert!(ring.push((i, owner.clone())).is_ok());
    }
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    let mut drain = |out: &mut Vec<_>, max| ring.drain_into(out, max, Unfilled::Revoke, |(i, _)| seen.push(*i));
    assert_eq!(drain(&mut out, 1000), 1000);
    assert_eq!(drain(&mut out, usize::MAX), 2002);
    assert_eq!(drain(&mut out, usize::MAX), 0);
    let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
    assert_eq!(seen, order, "each value shown once, where it landed");
    assert_eq!(&order[..2], &[5000, 5001]);
    assert_eq!(&order[2..], (0..3000).collect::<Vec<_>>());
    assert_eq!((ring.len(), Arc::strong_count(&owner)), (0, 1 + 3002));
    drop(out);
    assert_eq!(
        Arc::strong_count(&owner),
        1,
        "each value moved once, none dropped twice"
    );
}

/// A router woken by emitting threads (`RevokeIfOlder`) stops at a claim being
/// filled and leaves it to its thread; a claim still unfilled at the next such
/// drain was claimed before it stopped, and is revoked.
#[test]
fn a_patient_drain_leaves_a_claim_being_filled_to_its_thread() {
    let ring = Arc::new(Ring::with_claim(64, 4));
    let other = |values: std::ops::Range<usize>| {
        let ring = ring.clone();
        std::thread::spawn(move || values.for_each(|v| assert!(ring.push(v).is_ok())))
            .join()
            .unwrap()
    };
    let drain = |out: &mut Vec<usize>| ring.drain_into(out, usize::MAX, Unfilled::RevokeIfOlder, |_| ());
    let mut out = Vec::new();
    // This thread: a claim of one slot, then of two, one of them filled.
    ring.push(0).unwrap();
    ring.push(1).unwrap();
    other(10..16);
    assert_eq!(drain(&mut out), 2, "stops at this thread's unfilled slot");
    ring.push(2).unwrap();
    assert_eq!(drain(&mut out), 7, "the slot was filled, and the other thread's follow");
    assert_eq!(out, [0, 1, 2, 10, 11, 12, 13, 14, 15]);
    // A claim of four, one filled, then left.
    ring.push(3).unwrap();
    other(20..21);
    out.clear();
    assert_eq!(drain(&mut out), 1);
    assert_eq!(
        drain(&mut out),
        1,
        "the three left unfilled are revoked at the next drain"
    );
    ring.push(4).unwrap();
    assert_eq!(drain(&mut out), 1);
    assert_eq!(
        out,
        [3, 20, 4],
        "this thread's next value lands after everything queued"
    );
    assert_eq!(ring.len(), 3, "its new claim, three unfilled");
    assert_eq!(ring.drain_into(&mut out, usize::MAX, Unfilled::Revoke, |_| ()), 0);
    assert_eq!(ring.len(), 0, "a drain that revokes passes them at once");
}

/// Another thread's claim, left unfilled, does not hold back what is queued after it.
#[test]
fn an_idle_threads_claim_does_not_block_the_others() {
    let ring = Arc::new(Ring::with_claim(64, 8));
    let idle = ring.clone();
    std::thread::spawn(move || idle.push(100).unwrap()).join().unwrap();
    for i in 0..20 {
        ring.push(i).unwrap();
    }
    let out: Vec<usize> = std::iter::from_fn(|| ring.pop()).collect();
    assert_eq!(out[0], 100);
    assert_eq!(&out[1..], (0..20).collect::<Vec<_>>());
    assert_eq!(ring.len(), 0);
}

/// A thread pushing into two rings in turn keeps a claim in each.
#[test]
fn one_thread_pushes_into_two_rings_in_turn() {
    let (a, b) = (Ring::with_claim(32, 8), Ring::with_claim(32, 8));
    for i in 0..24 {
        a.push(i).unwrap();
        b.push(i + 1000).unwrap();
    }
    let from_a: Vec<usize> = std::iter::from_fn(|| a.pop()).collect();
    let from_b: Vec<usize> = std::iter::from_fn(|| b.pop()).collect();
    assert_eq!(from_a, (0..24).collect::<Vec<_>>());
    assert_eq!(from_b, (1000..1024).collect::<Vec<_>>());
}

/// Dropping a ring with a claim unfilled drops what was queued and returns.
#[test]
fn a_ring_with_an_unfilled_claim_drops_cleanly() {
    let shared = Arc::new(());
    let ring = Ring::with_claim(16, 8);
    ring.push(shared.clone()).unwrap();
    drop(ring);
    assert_eq!(Arc::strong_count(&shared), 1);
}

/// Rings of the default size claim several slots at once; small ones one at a time.
#[test]
fn claim_size_follows_the_ring_size() {
    assert_eq!(Ring::<u8>::new(50_000).claim, 48);
    assert_eq!(Ring::<u8>::new(1 << 20).claim, MAX_CLAIM);
    assert_eq!(Ring::<u8>::new(2 * SLOTS_PER_CLAIMED - 1).claim, 1);
}

/// A thread that pushes once holds one slot; one that keeps pushing claims more
/// each time, up to the ring's claim size.
#[test]
fn claims_grow_with_a_threads_pushes() {
    let ring = Ring::with_claim(1000, 16);
    let in_use_after = |pushes: usize| {
        let ring = &ring;
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..pushes {
                    ring.push(i).unwrap();
                }
            });
        });
        let in_use = ring.len();
        while ring.pop().is_some() {}
        in_use
    };
    assert_eq!(in_use_after(1), 1);
    assert_eq!(in_use_after(2), 3);
    assert_eq!(in_use_after(4), 7);
    assert_eq!(in_use_after(100), 1 + 2 + 4 + 8 + 16 * 6);
}
