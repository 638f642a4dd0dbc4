//! Arbitrary and damaged `/v1/metrics` bodies through the whole decode (the body's
//! shape, every event, usage JSON or a Daydream stream event) with small limits:
//! never a panic, and every event either taken or refused by position.

use crate::{metrics_api, Gateway};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};
use usage_core::testing::{damaged, fuzz_cases};
use usage_core::UsageConfig;

fn gateway() -> &'static Arc<Gateway> {
    static GATEWAY: OnceLock<(tempfile::TempDir, Arc<Gateway>)> = OnceLock::new();
    &GATEWAY
        .get_or_init(|| {
            usage_core::link_exporters!(usage_file);
            let dir = tempfile::tempdir().unwrap();
            let toml = format!(
                "[pipeline]\ndata_dir = {:?}\n[gateway]\nmax_events = 500\nmax_attributes = 16\nmax_string_bytes = 128\n\
                 max_decode_bytes = \"1MiB\"\nallow_unknown_kinds = true\n[[gateway.keys]]\nkey = \"k\"\n\
                 [exporters.out]\ntype = \"file\"\n",
                dir.path().display().to_string()
            );
            let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
            (dir, gw)
        })
        .1
}

const SAMPLE: &str = r#"{"app":"scope","host":"h1","events":[
{"kind":"relay_usage","ts":"2026-12-01T00:00:00Z","project":"acme","chain":"ETH1","cu":5},
{"type":"stream_started","timestamp":1764633600000,"stream_id":"s1","data":{"a":[1,{"b":null}]}},
{"kind":"custom_kind","ts":"2026-12-01T00:00:00Z","n":1,"m":{"x":"y"}}]}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]

    #[test]
    fn fuzz_metrics_bodies(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        keep in 0usize..600,
    ) {
        let g = gateway();
        for body in [noise, damaged(SAMPLE.as_bytes(), &edits, keep)] {
            if let Ok(d) = metrics_api::decode(g, &body) {
                prop_assert_eq!(d.events.len(), d.indices.len());
                let mut seen: Vec<usize> = d.indices.iter().copied().chain(d.rejected.iter().map(|r| r.index)).collect();
                seen.sort_unstable();
                seen.dedup();
                prop_assert_eq!(seen.len(), d.events.len() + d.rejected.len(), "each position once");
            }
        }
    }
}
