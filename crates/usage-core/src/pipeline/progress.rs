//! Waiting for progress: what flush, accept and shutdown block on, and the
//! shutdown deadline the workers read.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Wakes anyone waiting for progress (flush/shutdown), from sync or async code.
pub(crate) struct Progress {
    pub(super) generation: Mutex<u64>,
    pub(super) cv: Condvar,
    pub(super) notify: Notify,
}

impl Progress {
    pub(super) fn new() -> Self {
        Progress {
            generation: Mutex::new(0),
            cv: Condvar::new(),
            notify: Notify::new(),
        }
    }

    pub(crate) fn bump(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    /// Blocks until `done()` or the deadline; returns `done()`.
    pub(super) fn wait_blocking(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Bounded waits also cover progress that bumps no one (e.g. a router pass).
            let step = (deadline - now).min(Duration::from_millis(50));
            g = self.cv.wait_timeout(g, step).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    pub(super) async fn wait_async(&self, deadline: Instant, done: impl Fn() -> bool) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(step, notified).await;
        }
    }
}

/// Signals shared by the pipeline handle and its tasks.
pub(crate) struct Control {
    pub(crate) stopping: AtomicBool,
    /// Tells the router thread to exit.
    pub(super) router_exit: AtomicBool,
    pub(crate) flush_gen: AtomicU64,
    pub(crate) abort: watch::Sender<bool>,
    pub(crate) progress: Progress,
    pub(super) deadline: Mutex<Option<Instant>>,
}

impl Control {
    /// Time left before the shutdown deadline, if one is set.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}
