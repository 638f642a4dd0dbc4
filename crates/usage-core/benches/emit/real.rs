//! Lava's values (shared/interop.md) for the emit bench: 500 distinct 32-char project
//! hashes, 44-char provider addresses, origins up to 30 chars (a quarter empty), held
//! by the host as `String`s and copied into each event as a service would.

use opentelemetry::logs::{AnyValue, LogRecord, Logger};
use usage_core::{RelayUsage, Text};

/// Lava's values as a host holds them: owned strings, copied into each event.
pub struct RealValues {
    projects: Vec<String>,
    providers: Vec<String>,
    origins: Vec<String>,
}

impl RealValues {
    pub fn new() -> Self {
        // Deterministic pseudo-random hex, so every run sends the same strings.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut hex = |n: usize| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_digit((x % 16) as u32, 16).unwrap_or('0')
                })
                .collect::<String>()
        };
        RealValues {
            projects: (0..500).map(|_| hex(32)).collect(),
            providers: (0..64).map(|_| format!("lava@1{}", hex(38))).collect(),
            origins: (0..40)
                .map(|i| {
                    if i % 4 == 0 {
                        String::new()
                    } else {
                        format!("https://app-{}.example.io", hex(6 + i % 5))
                    }
                })
                .collect(),
        }
    }

    #[inline]
    fn pick(&self, i: u64) -> (&str, &str, &str) {
        let i = i as usize;
        (
            &self.projects[i % self.projects.len()],
            &self.providers[(i / 7) % self.providers.len()],
            &self.origins[(i / 3) % self.origins.len()],
        )
    }

    #[inline]
    pub fn relay(&self, i: u64) -> RelayUsage {
        let (project, provider, origin) = self.pick(i);
        RelayUsage {
            project: Text::new(project),
            chain: Text::new("ETH1"),
            api_interface: Text::new("jsonrpc"),
            api_method: Text::new("eth_getBlockByNumber"),
            cu: 10 + (i & 7),
            latency_ms: 42,
            success: true,
            cache_hit: i & 1 == 0,
            is_write: false,
            is_archive: false,
            is_batch: false,
            is_debug_trace: false,
            hedge_count: 0,
            provider: Text::new(provider),
            origin: Text::new(origin),
        }
    }

    #[inline]
    pub fn otel_emit<L: Logger>(&self, logger: &L, i: u64) {
        let (project, provider, origin) = self.pick(i);
        let mut r = logger.create_log_record();
        r.set_timestamp(std::time::SystemTime::now());
        r.set_body(AnyValue::from("relay_usage"));
        r.add_attribute("project", String::from(project));
        r.add_attribute("chain", String::from("ETH1"));
        r.add_attribute("api_interface", String::from("jsonrpc"));
        r.add_attribute("api_method", String::from("eth_getBlockByNumber"));
        r.add_attribute("cu", (10 + (i & 7)) as i64);
        r.add_attribute("latency_ms", 42i64);
        r.add_attribute("success", true);
        r.add_attribute("cache_hit", i & 1 == 0);
        r.add_attribute("is_write", false);
        r.add_attribute("is_archive", false);
        r.add_attribute("is_batch", false);
        r.add_attribute("is_debug_trace", false);
        r.add_attribute("hedge_count", 0i64);
        r.add_attribute("provider", String::from(provider));
        r.add_attribute("origin", String::from(origin));
        logger.emit(r);
    }
}
