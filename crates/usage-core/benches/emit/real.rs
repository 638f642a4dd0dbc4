//! Lava's values (shared/interop.md) for the emit bench: 500 distinct 32-char project
//! hashes, 44-char provider addresses, origins of 29-33 chars (a quarter empty;
//! Lava's are up to 30), held by the host as `String`s and copied into each event as
//! a service would.

use opentelemetry::logs::{AnyValue, LogRecord, Logger};
use usage_core::testing::LavaStrings;
use usage_core::{RelayUsage, Text};

/// Lava's values as a host holds them: owned strings, copied into each event.
pub struct RealValues(LavaStrings);

impl RealValues {
    pub fn new() -> Self {
        RealValues(LavaStrings::new())
    }

    #[inline]
    fn pick(&self, i: u64) -> (&str, &str, &str) {
        self.0.pick(i)
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
