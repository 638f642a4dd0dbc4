//! The benchmark's events: `relay_usage` with Lava's real values (shared/interop.md):
//! 500 distinct 32-char project hashes, 64 provider addresses of 44 chars, origins of
//! up to 30 chars (a quarter empty), a few chains and methods.

use std::sync::OnceLock;
use usage_core::{Event, RelayUsage, Text};

/// Lava's string values, made once and the same in every run.
struct Values {
    projects: Vec<String>,
    providers: Vec<String>,
    origins: Vec<String>,
}

fn values() -> &'static Values {
    static VALUES: OnceLock<Values> = OnceLock::new();
    VALUES.get_or_init(|| {
        // Deterministic pseudo-random hex (xorshift), so every run sends the same strings.
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
        Values {
            projects: (0..500).map(|_| hex(32)).collect(),
            providers: (0..64).map(|_| format!("lava@1{}", hex(38))).collect(),
            origins: (0..40)
                .map(|i| match i % 4 {
                    0 => String::new(),
                    _ => format!("https://app-{}.example.io", hex(6 + i % 5)),
                })
                .collect(),
        }
    })
}

/// Event `i` of a run.
pub fn relay(i: u64) -> Event {
    const CHAINS: [&str; 3] = ["ETH1", "ARB1", "SOL1"];
    const METHODS: [&str; 4] = ["eth_call", "eth_getLogs", "eth_blockNumber", "eth_getBlockByNumber"];
    let v = values();
    let n = i as usize;
    Event::new(RelayUsage {
        project: Text::new(&v.projects[n % v.projects.len()]),
        chain: Text::new(CHAINS[(i / 3 % 3) as usize]),
        api_interface: Text::new("jsonrpc"),
        api_method: Text::new(METHODS[(i % 4) as usize]),
        cu: 10 + i % 90,
        latency_ms: i % 300,
        success: !i.is_multiple_of(50),
        cache_hit: i.is_multiple_of(4),
        is_write: false,
        is_archive: i.is_multiple_of(9),
        is_batch: false,
        is_debug_trace: false,
        hedge_count: (i % 2) as u32,
        provider: Text::new(&v.providers[(n / 7) % v.providers.len()]),
        origin: Text::new(&v.origins[(n / 3) % v.origins.len()]),
    })
}
