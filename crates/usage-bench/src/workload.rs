//! The benchmark's events: `relay_usage` with Lava's real values (shared/interop.md):
//! 500 distinct 32-char project hashes, 64 provider addresses of 44 chars, origins of
//! of 29-33 chars (a quarter empty), a few chains and methods.

use std::sync::OnceLock;
use usage_core::testing::LavaStrings;
use usage_core::{Event, RelayUsage, Text};

fn values() -> &'static LavaStrings {
    static VALUES: OnceLock<LavaStrings> = OnceLock::new();
    VALUES.get_or_init(LavaStrings::new)
}

/// Event `i` of a run.
pub fn relay(i: u64) -> Event {
    const CHAINS: [&str; 3] = ["ETH1", "ARB1", "SOL1"];
    const METHODS: [&str; 4] = ["eth_call", "eth_getLogs", "eth_blockNumber", "eth_getBlockByNumber"];
    let (project, provider, origin) = values().pick(i);
    Event::new(RelayUsage {
        project: Text::new(project),
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
        provider: Text::new(provider),
        origin: Text::new(origin),
    })
}
