//! Synthetic but realistic events: an RPC gateway's projects, chains, methods and providers.

use usage_core::{Event, NetworkEvent, OptimizerQos, RelayUsage, Text};

/// (method, compute units, is_write, is_archive, is_debug_trace)
const METHODS: [(&str, u64, bool, bool, bool); 7] = [
    ("eth_blockNumber", 1, false, false, false),
    ("eth_call", 10, false, false, false),
    ("eth_getBalance", 10, false, false, false),
    ("eth_getBlockByNumber", 20, false, false, false),
    ("eth_getLogs", 40, false, true, false),
    ("eth_sendRawTransaction", 10, true, false, false),
    ("debug_traceTransaction", 200, false, true, true),
];
pub(crate) const PROJECTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
pub(crate) const CHAINS: [&str; 4] = ["ETH1", "ARB1", "NEAR", "LAV1"];
const PROVIDERS_PER_CHAIN: usize = 3;

/// A small deterministic generator (xorshift), so a seed reproduces a run.
pub(crate) struct Synth {
    state: u64,
    providers: Vec<Vec<Text>>,
    origins: Vec<Text>,
    host: Text,
}

impl Synth {
    pub(crate) fn new(seed: u64) -> Self {
        let providers = CHAINS
            .iter()
            .enumerate()
            .map(|(c, _)| {
                (0..PROVIDERS_PER_CHAIN)
                    .map(|p| Text::intern(&format!("lava@1provider{c}{p}qu0jm3ts8g5sc7kmc9wruyqk7gk2")))
                    .collect()
            })
            .collect();
        let origins = PROJECTS
            .iter()
            .map(|p| Text::intern(&format!("https://app.{p}.io")))
            .collect();
        Synth {
            state: seed.max(1),
            providers,
            origins,
            host: Text::new(usage_core::default_instance_id()),
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One relay: 98% succeed, 25% are cache hits; failures before a provider cost 0 CU.
    pub(crate) fn relay(&mut self) -> RelayUsage {
        let project = self.below(PROJECTS.len() as u64) as usize;
        let chain = self.below(CHAINS.len() as u64) as usize;
        let (method, cu, is_write, is_archive, is_debug) = METHODS[self.below(METHODS.len() as u64) as usize];
        let success = !self.chance(2);
        let pick = self.below(PROVIDERS_PER_CHAIN as u64) as usize;
        let provider = self.providers[chain][pick].clone();
        RelayUsage {
            project: Text::new_static(PROJECTS[project]),
            chain: Text::new_static(CHAINS[chain]),
            api_interface: Text::new_static("jsonrpc"),
            api_method: Text::new_static(method),
            cu: if success { cu } else { 0 },
            latency_ms: 5 + self.below(300),
            success,
            cache_hit: success && self.chance(25),
            is_write,
            is_archive,
            is_batch: self.chance(5),
            is_debug_trace: is_debug,
            hedge_count: u32::from(self.chance(10)),
            provider: if success { provider } else { Text::default() },
            origin: self.origins[project].clone(),
        }
    }

    /// QoS samples for one tick: one per (chain, provider) that has a score.
    pub(crate) fn qos_tick(&mut self, epoch: i64) -> Vec<OptimizerQos> {
        let mut out = Vec::new();
        for (c, chain) in CHAINS.iter().enumerate() {
            for (i, provider) in self.providers[c].clone().into_iter().enumerate() {
                if self.chance(10) {
                    continue; // no score yet for this provider: skipped, as the optimizer does
                }
                let score = |s: &mut Self| (s.below(1000) as f64) / 1000.0;
                let (a, l, y, st) = (score(self), score(self), score(self), score(self));
                out.push(OptimizerQos {
                    provider,
                    consumer_hostname: self.host.clone(),
                    consumer_pub_address: Text::new_static("lava@1consumerqu0jm3ts8g5sc7kmc9wruyqk7"),
                    chain_id: Text::new_static(chain),
                    geo_location: 1,
                    epoch,
                    entry_index: i as i64,
                    provider_stake: 1_000_000 + self.below(9_000_000) as i64,
                    selection_availability: a,
                    selection_latency: l,
                    selection_sync: y,
                    selection_stake: st,
                    selection_composite: (a + l + y + st) / 4.0,
                    availability_contribution: a / 4.0,
                    latency_contribution: l / 4.0,
                    sync_contribution: y / 4.0,
                    stake_contribution: st / 4.0,
                });
            }
        }
        out
    }

    /// One stream lifecycle event.
    pub(crate) fn network(&mut self) -> NetworkEvent {
        let kinds = ["stream_started", "stream_stopped", "error"];
        let n = self.below(1000);
        NetworkEvent {
            event_type: Text::new_static(kinds[self.below(3) as usize]),
            stream_id: Text::new(format!("stream-{n}")),
            pipeline: Text::new_static("ingest"),
            attributes: vec![
                ("codec".into(), "h264".into()),
                ("bitrate_kbps".into(), Text::new(format!("{}", 500 + n))),
            ],
            data: None,
        }
    }

    /// One event of a named kind.
    pub(crate) fn event(&mut self, kind: &str) -> Option<Event> {
        Some(match kind {
            "relay_usage" => Event::new(self.relay()),
            "optimizer_qos" => {
                let epoch = self.below(1000) as i64;
                let mut tick = self.qos_tick(epoch);
                Event::new(tick.pop().unwrap_or_default())
            }
            "network_event" => Event::new(self.network()),
            _ => return None,
        })
    }
}
