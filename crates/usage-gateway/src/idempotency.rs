//! Remembers Idempotency-Keys for a window, so a repeated batch is acknowledged
//! without being forwarded twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What is known about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time (now marked in progress).
    New,
    /// A request with this key is being handled.
    InProgress,
    /// Already accepted: this many events.
    Done(usize),
}

/// Key -> (first seen, events accepted once done), plus keys in arrival order for expiry.
type Entries = (HashMap<String, (Instant, Option<usize>)>, VecDeque<(Instant, String)>);

/// A bounded, time-limited set of keys (scoped per API key).
pub struct Window {
    ttl: Duration,
    max: usize,
    inner: Mutex<Entries>,
}

impl Window {
    /// A window of `ttl`, remembering at most `max` keys.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Window {
            ttl,
            max: max.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Looks the key up, marking it in progress if new.
    pub fn begin(&self, key: &str) -> Seen {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        let now = Instant::now();
        while let Some((t, k)) = order.front() {
            if now.duration_since(*t) < self.ttl && map.len() <= self.max {
                break;
            }
            map.remove(k);
            order.pop_front();
        }
        match map.get(key) {
            Some((_, Some(n))) => Seen::Done(*n),
            Some((_, None)) => Seen::InProgress,
            None => {
                map.insert(key.to_string(), (now, None));
                order.push_back((now, key.to_string()));
                Seen::New
            }
        }
    }

    /// Records the outcome: accepted (remembered) or failed (forgotten, so a retry is handled afresh).
    pub fn finish(&self, key: &str, accepted: Option<usize>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match accepted {
            Some(n) => {
                if let Some(e) = g.0.get_mut(key) {
                    e.1 = Some(n);
                }
            }
            None => {
                g.0.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_answered_and_failures_forgotten() {
        let w = Window::new(Duration::from_secs(60), 10);
        assert_eq!(w.begin("a"), Seen::New);
        assert_eq!(w.begin("a"), Seen::InProgress);
        w.finish("a", Some(3));
        assert_eq!(w.begin("a"), Seen::Done(3));
        assert_eq!(w.begin("b"), Seen::New);
        w.finish("b", None);
        assert_eq!(w.begin("b"), Seen::New);
    }

    #[test]
    fn old_keys_expire() {
        let w = Window::new(Duration::from_millis(1), 10);
        assert_eq!(w.begin("a"), Seen::New);
        w.finish("a", Some(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(w.begin("a"), Seen::New);
    }
}
