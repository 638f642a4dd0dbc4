//! Wall-clock microseconds for the emit path.
//!
//! On x86_64 with an invariant TSC, `now_micros` reads the TSC and scales it with
//! a calibration the pipeline's router refreshes against the system clock every
//! second (so NTP adjustments are followed within a second). Elsewhere, before
//! the first calibration, or with `USAGE_CLOCK=system`, it reads the system clock.

use std::sync::atomic::{fence, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The system clock in microseconds since the epoch (0 before 1970).
pub(crate) fn system_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Seqlock-published calibration: `micros = base_us + (tsc - base_tsc) * mult >> 32`.
/// `SEQ` is 0 until the first calibration and odd while one is being written.
static SEQ: AtomicU64 = AtomicU64::new(0);
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_US: AtomicI64 = AtomicI64::new(0);
static MULT: AtomicU64 = AtomicU64::new(0);

struct Calibration {
    /// First (tsc, micros) of the current baseline.
    origin: Option<(u64, i64)>,
    last: Option<Instant>,
}

static CALIBRATION: Mutex<Calibration> = Mutex::new(Calibration {
    origin: None,
    last: None,
});

/// Current wall-clock time in microseconds.
#[inline]
pub(crate) fn now_micros() -> i64 {
    tsc_micros().unwrap_or_else(system_micros)
}

#[inline]
fn tsc_micros() -> Option<i64> {
    let seq = SEQ.load(Ordering::Acquire);
    if seq == 0 || seq & 1 == 1 {
        return None;
    }
    let base_tsc = BASE_TSC.load(Ordering::Relaxed);
    let base_us = BASE_US.load(Ordering::Relaxed);
    let mult = MULT.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    if SEQ.load(Ordering::Relaxed) != seq {
        return None;
    }
    let delta = read_tsc()?.wrapping_sub(base_tsc) as i64;
    Some(base_us + ((i128::from(delta) * i128::from(mult)) >> 32) as i64)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_tsc() -> Option<u64> {
    // SAFETY: rdtsc has no preconditions; it is only used after `tsc_usable()`.
    Some(unsafe { core::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn read_tsc() -> Option<u64> {
    None
}

/// Invariant TSC (CPUID 0x8000_0007 EDX bit 8) and not disabled by `USAGE_CLOCK=system`.
fn tsc_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        if std::env::var("USAGE_CLOCK").is_ok_and(|v| v == "system") {
            return false;
        }
        invariant_tsc()
    })
}

#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // `__cpuid` became safe in newer Rust; older releases need `unsafe`.
fn invariant_tsc() -> bool {
    // SAFETY: cpuid is available on every x86_64 CPU.
    let max_ext = unsafe { core::arch::x86_64::__cpuid(0x8000_0000) }.eax;
    max_ext >= 0x8000_0007 && (unsafe { core::arch::x86_64::__cpuid(0x8000_0007) }.edx & (1 << 8)) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

/// A (tsc, micros) pair read as close together as possible.
fn sample() -> Option<(u64, i64)> {
    let t0 = read_tsc()?;
    let us = system_micros();
    let t1 = read_tsc()?;
    Some((t0 + (t1.wrapping_sub(t0) / 2), us))
}

/// Refreshes the calibration if a second has passed (cheap otherwise). Called by
/// pipeline routers on every tick; safe to call from anywhere.
pub(crate) fn recalibrate() {
    if !tsc_usable() {
        return;
    }
    let Ok(mut cal) = CALIBRATION.try_lock() else {
        return;
    };
    let due = cal
        .last
        .is_none_or(|l| l.elapsed().as_millis() >= 1000 || SEQ.load(Ordering::Relaxed) == 0);
    if !due {
        return;
    }
    let Some((tsc, us)) = sample() else {
        return;
    };
    cal.last = Some(Instant::now());
    let Some((t0, u0)) = cal.origin else {
        cal.origin = Some((tsc, us));
        return;
    };
    let (dt, du) = (tsc.wrapping_sub(t0), us - u0);
    if du < 50_000 || dt == 0 {
        return; // baseline too short to be accurate yet
    }
    let mult = ((u128::from(du as u64) << 32) / u128::from(dt)) as u64;
    let old = MULT.load(Ordering::Relaxed);
    if old != 0 && mult.abs_diff(old) > old / 100 {
        // The wall clock stepped (or the TSC misbehaved): start a new baseline.
        cal.origin = Some((tsc, us));
        return;
    }
    let seq = SEQ.load(Ordering::Relaxed);
    SEQ.store(seq | 1, Ordering::Relaxed);
    fence(Ordering::Release);
    BASE_TSC.store(tsc, Ordering::Relaxed);
    BASE_US.store(us, Ordering::Relaxed);
    MULT.store(mult, Ordering::Relaxed);
    SEQ.store((seq | 1) + 1, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_clock_tracks_the_system_clock() {
        recalibrate();
        // A 60 ms baseline is the minimum the calibration accepts.
        std::thread::sleep(std::time::Duration::from_millis(60));
        CALIBRATION.lock().unwrap().last = None;
        recalibrate();
        if !tsc_usable() {
            return; // nothing to compare on this CPU
        }
        let ours = tsc_micros().expect("calibrated");
        let sys = system_micros();
        assert!((ours - sys).abs() < 2_000, "tsc clock {ours} vs system {sys}");
        let later = now_micros();
        assert!(later >= ours);
    }
}
