//! The benchmark's events: `relay_usage`, varied the way real traffic is.

use usage_core::{Event, RelayUsage, Text};

/// Event `i` of a run: 3 projects, 3 chains, 5 providers, a few methods.
pub fn relay(i: u64) -> Event {
    const PROJECTS: [&str; 3] = ["acme", "globex", "initech"];
    const CHAINS: [&str; 3] = ["ETH1", "ARB1", "SOL1"];
    const METHODS: [&str; 4] = ["eth_call", "eth_getLogs", "eth_blockNumber", "eth_getBlockByNumber"];
    Event::new(RelayUsage {
        project: Text::new(PROJECTS[(i % 3) as usize]),
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
        provider: Text::new(["lava@p0", "lava@p1", "lava@p2", "lava@p3", "lava@p4"][(i % 5) as usize]),
        origin: Text::new("https://app.example.com"),
    })
}
