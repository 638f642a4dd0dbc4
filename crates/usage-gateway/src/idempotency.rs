//! Remembers Idempotency-Keys for a window, per API key, so a repeated batch is
//! acknowledged without being forwarded twice. Keys and bodies are kept as 128-bit
//! hashes (bounded memory whatever a client sends), a key is bound to its body, and
//! a request that ends any way but accepted forgets its key.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twox_hash::XxHash3_128;

/// The longest Idempotency-Key taken (docs/openapi.yaml).
pub const MAX_KEY_BYTES: usize = 200;

/// Bytes one remembered key may take: its entry, its place in the expiry order and
/// the map's overhead.
pub const ENTRY_BYTES: usize = 128;

/// What is known about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time (now marked in progress).
    New,
    /// A request with this key is being handled.
    InProgress,
    /// Already accepted: this many events.
    Done(usize),
    /// The key was used with another body.
    OtherBody,
}

/// Checks an `Idempotency-Key` header value: 1-200 visible ASCII characters.
pub fn valid_key(value: &[u8]) -> bool {
    (1..=MAX_KEY_BYTES).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

struct Entry {
    at: Instant,
    body: u128,
    accepted: Option<usize>,
}

#[derive(Default)]
struct Tenant {
    entries: HashMap<u128, Entry>,
    /// Keys in arrival order, for expiry; an entry is expired only by its own arrival.
    order: VecDeque<(Instant, u128)>,
}

/// A bounded, time-limited set of keys for each API key.
pub struct Window {
    ttl: Duration,
    max_per_tenant: usize,
    tenants: Mutex<HashMap<usize, Tenant>>,
}

impl Window {
    /// A window of `ttl`, remembering at most `max_per_tenant` keys for each API key.
    pub fn new(ttl: Duration, max_per_tenant: usize) -> Self {
        Window {
            ttl,
            max_per_tenant: max_per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Looks the key up for API key `tenant`, marking it in progress if new.
    pub fn begin(&self, tenant: usize, key: &[u8], body: &[u8]) -> Seen {
        let (key, body) = (XxHash3_128::oneshot(key), XxHash3_128::oneshot(body));
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let t = tenants.entry(tenant).or_default();
        let now = Instant::now();
        // Expired keys go; then, over the bound, the oldest (this tenant's only). The
        // order also holds forgotten attempts' places: it is bounded at twice the keys.
        while let Some(&(at, k)) = t.order.front() {
            let over = t.entries.len() >= self.max_per_tenant || t.order.len() >= 2 * self.max_per_tenant;
            if now.duration_since(at) < self.ttl && !over {
                break;
            }
            t.order.pop_front();
            if t.entries.get(&k).is_some_and(|e| e.at == at) {
                t.entries.remove(&k);
            }
        }
        match t.entries.get(&key) {
            Some(e) if e.body != body => Seen::OtherBody,
            Some(Entry { accepted: Some(n), .. }) => Seen::Done(*n),
            Some(_) => Seen::InProgress,
            None => {
                t.entries.insert(
                    key,
                    Entry {
                        at: now,
                        body,
                        accepted: None,
                    },
                );
                t.order.push_back((now, key));
                Seen::New
            }
        }
    }

    /// Records the outcome: accepted (remembered) or not (forgotten, so a retry is
    /// handled afresh).
    pub fn finish(&self, tenant: usize, key: &[u8], accepted: Option<usize>) {
        let key = XxHash3_128::oneshot(key);
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = tenants.get_mut(&tenant) else { return };
        match accepted {
            Some(n) => {
                if let Some(e) = t.entries.get_mut(&key) {
                    e.accepted = Some(n);
                }
            }
            None => {
                t.entries.remove(&key);
            }
        }
    }
}

/// A key in progress: forgotten when dropped unless [`Pending::accepted`] was
/// called, so a request whose client went away never leaves it stuck.
pub struct Pending<'a> {
    window: &'a Window,
    tenant: usize,
    key: Vec<u8>,
    done: bool,
}

impl<'a> Pending<'a> {
    /// Takes charge of a key [`Window::begin`] answered `New` for.
    pub fn new(window: &'a Window, tenant: usize, key: &[u8]) -> Self {
        Pending {
            window,
            tenant,
            key: key.to_vec(),
            done: false,
        }
    }

    /// The request was accepted with `n` events: repeats are answered from memory.
    pub fn accepted(mut self, n: usize) {
        self.window.finish(self.tenant, &self.key, Some(n));
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.window.finish(self.tenant, &self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_answered_and_failures_forgotten() {
        let w = Window::new(Duration::from_secs(60), 10);
        assert_eq!(w.begin(0, b"a", b"body"), Seen::New);
        assert_eq!(w.begin(0, b"a", b"body"), Seen::InProgress);
        w.finish(0, b"a", Some(3));
        assert_eq!(w.begin(0, b"a", b"body"), Seen::Done(3));
        assert_eq!(w.begin(0, b"a", b"other body"), Seen::OtherBody);
        assert_eq!(w.begin(1, b"a", b"other body"), Seen::New, "another API key's window");
        assert_eq!(w.begin(0, b"b", b""), Seen::New);
        drop(Pending::new(&w, 0, b"b"));
        assert_eq!(w.begin(0, b"b", b""), Seen::New, "dropped unaccepted: forgotten");
    }

    #[test]
    fn a_retried_key_outlives_its_first_attempt() {
        let w = Window::new(Duration::from_millis(50), 10);
        assert_eq!(w.begin(0, b"k", b"x"), Seen::New);
        w.finish(0, b"k", None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(w.begin(0, b"k", b"x"), Seen::New);
        w.finish(0, b"k", Some(1));
        // Past the first attempt's window, within the second's.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(w.begin(0, b"k", b"x"), Seen::Done(1));
    }

    #[test]
    fn one_api_key_flooding_evicts_only_its_own_keys() {
        let w = Window::new(Duration::from_secs(60), 100);
        assert_eq!(w.begin(1, b"b-key", b"x"), Seen::New);
        w.finish(1, b"b-key", Some(5));
        for i in 0..10_000u32 {
            w.begin(0, &i.to_le_bytes(), b"x");
        }
        assert_eq!(w.begin(1, b"b-key", b"x"), Seen::Done(5));
        let tenants = w.tenants.lock().unwrap();
        assert!(tenants[&0].entries.len() <= 100 && tenants[&0].order.len() <= 200);
    }

    #[test]
    fn a_key_failing_again_and_again_keeps_the_window_bounded() {
        let w = Window::new(Duration::from_secs(60), 10);
        for _ in 0..1000 {
            assert_eq!(w.begin(0, b"k", b"x"), Seen::New);
            w.finish(0, b"k", None);
        }
        assert!(w.tenants.lock().unwrap()[&0].order.len() <= 20);
    }

    #[test]
    fn keys_are_bounded_visible_ascii() {
        assert!(valid_key(b"batch-42"));
        assert!(!valid_key(b""));
        assert!(!valid_key(&[b'k'; 201]));
        assert!(!valid_key(b"has space"));
        assert!(!valid_key("ünï".as_bytes()));
    }
}
