//! Property tests over arbitrary and damaged bytes for the decoders usage-core owns
//! (a JSON event, a config file): never a panic, always an answer that names what
//! is wrong. `cargo xtask fuzz --seconds N` runs them (and the other crates'
//! `fuzz_` tests) for as long as asked.

use proptest::prelude::*;
use usage_core::json::Decoder;
use usage_core::receive::RecordLimits;
use usage_core::testing::{damaged, fuzz_cases};
use usage_core::{Event, RelayUsage, Resource, UsageConfig};

fn sample_event() -> Vec<u8> {
    let e = Event::new(RelayUsage {
        project: "acme".into(),
        chain: "ETH1".into(),
        cu: 7,
        ..Default::default()
    });
    usage_core::json::to_string(&e, &Resource::new("svc")).into_bytes()
}

const SAMPLE_CONFIG: &str = r#"
[pipeline]
service_name = "svc"
queue_capacity = 1000
flush_interval = "1s"
[spool]
path = "/tmp/spool"
max_bytes = "1GiB"
[exporters.local]
type = "file"
path = "out"
events = ["relay_usage"]
batch_max_events = 100
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]

    #[test]
    fn fuzz_json_event_decoder(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        keep in 0usize..600,
    ) {
        let limits = RecordLimits { max_attributes: 32, max_string_bytes: 256, max_decode_bytes: 1 << 20 };
        for lenient in [false, true] {
            let d = Decoder::default().allow_unknown_kinds(lenient).fill_absent(lenient).limits(limits);
            for input in [noise.clone(), damaged(&sample_event(), &edits, keep)] {
                match d.decode(&input) {
                    Ok(e) => {
                        // What decodes re-encodes to something that decodes the same.
                        let again = usage_core::json::to_string(&e, &Resource::new("svc"));
                        let back = d.decode(again.as_bytes()).expect("a re-encoded event decodes");
                        prop_assert_eq!(back.id(), e.id());
                        prop_assert_eq!(back.values(), e.values());
                    }
                    Err(err) => prop_assert!(!err.to_string().is_empty()),
                }
            }
        }
    }

    #[test]
    fn fuzz_config_parser(
        noise in "\\PC{0,200}",
        edits in proptest::collection::vec((any::<usize>(), 0x20u8..0x7f), 0..6),
        keep in 0usize..400,
    ) {
        let sample = damaged(SAMPLE_CONFIG.as_bytes(), &edits, keep);
        for text in [noise, String::from_utf8_lossy(&sample).into_owned()] {
            // Either a config, or an error that says something.
            if let Err(e) = UsageConfig::from_toml(&text) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
