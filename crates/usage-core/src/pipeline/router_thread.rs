//! The router thread's loop: drain on wake-ups and ticks, keep the spool tidy, exit
//! on request.

use super::ring::Unfilled;
use super::shared::Inner;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router thread: drains on wake-ups and ticks, keeps the spool tidy, exits on request.
pub(super) fn run_router(inner: Arc<Inner>) {
    let mut last_housekeeping = Instant::now();
    while !inner.control.router_exit.load(Relaxed) {
        let parked = Instant::now();
        std::thread::park_timeout(inner.router_tick);
        // Woken by an emitting thread: leave the claims threads are filling now to
        // them. On a tick: revoke what a thread claimed and left.
        inner.drain(if parked.elapsed() >= inner.router_tick {
            Unfilled::Revoke
        } else {
            Unfilled::RevokeIfOlder
        });
        crate::event::clock::recalibrate();
        if last_housekeeping.elapsed() >= Duration::from_secs(1) {
            inner.housekeeping();
            last_housekeeping = Instant::now();
        } else if inner.spool.is_some() {
            let mut r = inner.lock_router();
            if let Some(spool) = r.spool.as_mut() {
                if let Err(e) = spool.sync_if_due() {
                    tracing::error!("spool fsync failed: {e}");
                }
            }
        }
    }
}
