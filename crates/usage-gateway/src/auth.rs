//! Bearer keys: constant-time comparison, optional project binding, rate limits.

use crate::config::{GatewayConfig, KeyConfig};
use std::sync::Mutex;
use std::time::Instant;
use usage_core::ConfigError;

/// A configured key, resolved.
pub struct Key {
    /// Its position in `[[gateway.keys]]`: what its idempotency window is kept by.
    pub index: usize,
    secret: Vec<u8>,
    /// For logs and metrics.
    pub name: String,
    /// The project it is bound to.
    pub project: Option<String>,
    /// Kinds without a project this bound key may send.
    pub unbound_kinds: Vec<String>,
    bucket: Option<Mutex<Bucket>>,
}

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// Equal without revealing where two byte strings differ (time depends on lengths only).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

impl Key {
    fn new(i: usize, k: &KeyConfig, default_rate: Option<f64>) -> Result<Key, ConfigError> {
        let secret = k
            .key
            .expose()
            .map_err(|e| ConfigError::key(format!("gateway.keys[{i}].key"), e))?
            .into_bytes();
        let bucket = match k.rate_limit.or(default_rate) {
            Some(rate) if rate <= 0.0 => {
                return Err(ConfigError::key(
                    format!("gateway.keys[{i}].rate_limit"),
                    "must be greater than 0",
                ))
            }
            Some(rate) => {
                let burst = k.burst.unwrap_or(rate * 2.0).max(1.0);
                Some(Mutex::new(Bucket {
                    rate,
                    burst,
                    tokens: burst,
                    at: Instant::now(),
                }))
            }
            None => None,
        };
        Ok(Key {
            index: i,
            secret,
            name: k.name.clone().unwrap_or_else(|| format!("key{i}")),
            project: k.project.clone(),
            unbound_kinds: k.unbound_kinds.clone(),
            bucket,
        })
    }

    /// Takes `n` tokens, or says when enough will be there, or that they never will.
    pub fn take(&self, n: usize) -> Result<(), Limited> {
        let Some(b) = &self.bucket else { return Ok(()) };
        let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.rate).min(b.burst);
        b.at = now;
        let need = n as f64;
        if need > b.burst {
            return Err(Limited::Never(b.burst as u64));
        }
        if need <= b.tokens {
            b.tokens -= need;
            return Ok(());
        }
        let missing = need - b.tokens;
        Err(Limited::For((missing / b.rate).ceil().max(1.0) as u64))
    }
}

/// Why a key's request is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Enough tokens in this many seconds.
    For(u64),
    /// More events than the bucket holds (its burst): never, whatever the wait.
    Never(u64),
}

/// All configured keys.
pub struct Keys(Vec<Key>);

impl Keys {
    /// Resolves the configured keys; at least one is required.
    pub fn new(cfg: &GatewayConfig) -> Result<Keys, ConfigError> {
        if cfg.keys.is_empty() {
            return Err(ConfigError::key(
                "gateway.keys",
                "at least one [[gateway.keys]] entry is required",
            ));
        }
        let keys: Vec<Key> = cfg
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| Key::new(i, k, cfg.rate_limit))
            .collect::<Result<_, _>>()?;
        // Names label metrics and kept records, secrets pick the tenant: neither may repeat.
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = keys[..i].iter().position(|o| o.name == k.name) {
                return Err(ConfigError::key(
                    format!("gateway.keys[{i}].name"),
                    format!("`{}` is also the name of gateway.keys[{j}]", k.name),
                ));
            }
            if let Some(j) = keys[..i].iter().position(|o| constant_time_eq(&o.secret, &k.secret)) {
                return Err(ConfigError::key(
                    format!("gateway.keys[{i}].key"),
                    format!("the same secret as gateway.keys[{j}]"),
                ));
            }
        }
        Ok(Keys(keys))
    }

    /// The key matching an `Authorization` header value. Every configured key is
    /// compared, in constant time, whatever matches.
    pub fn find(&self, authorization: Option<&str>) -> Option<&Key> {
        let presented = authorization?
            .strip_prefix("Bearer ")
            .or_else(|| authorization?.strip_prefix("bearer "))?
            .trim()
            .as_bytes();
        let mut found = None;
        for k in &self.0 {
            if constant_time_eq(&k.secret, presented) && found.is_none() {
                found = Some(k);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn buckets_refuse_then_say_when() {
        let cfg = GatewayConfig {
            keys: vec![KeyConfig {
                key: usage_core::Secret::new("k"),
                name: None,
                project: None,
                rate_limit: Some(10.0),
                burst: Some(20.0),
                unbound_kinds: Vec::new(),
            }],
            ..Default::default()
        };
        let keys = Keys::new(&cfg).unwrap();
        let k = keys.find(Some("Bearer k")).unwrap();
        assert!(k.take(20).is_ok());
        assert_eq!(k.take(10), Err(Limited::For(1)), "10 events at 10/s: retry after 1 s");
        assert_eq!(k.take(21), Err(Limited::Never(20)), "more than the burst never fits");
        assert!(keys.find(Some("Bearer nope")).is_none());
        assert!(keys.find(None).is_none());
    }

    #[test]
    fn names_and_secrets_do_not_repeat() {
        let key = |secret: &str, name: Option<&str>| KeyConfig {
            key: usage_core::Secret::new(secret),
            name: name.map(String::from),
            project: None,
            rate_limit: None,
            burst: None,
            unbound_kinds: Vec::new(),
        };
        let cfg = |keys| GatewayConfig {
            keys,
            ..Default::default()
        };
        let e = Keys::new(&cfg(vec![key("a", None), key("b", Some("key0"))]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("gateway.keys[1].name"), "{e}");
        let e = Keys::new(&cfg(vec![key("a", Some("x")), key("a", Some("y"))]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("gateway.keys[1].key: the same secret"), "{e}");
        assert!(!e.to_string().contains("\"a\""), "the secret is not in the error");
    }
}
