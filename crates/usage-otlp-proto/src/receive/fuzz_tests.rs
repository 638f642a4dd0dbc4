//! Arbitrary and damaged OTLP bodies, protobuf and JSON, through the receiver with
//! the gateway's kind of limits: never a panic, and every record read is either an
//! event or a refusal naming it.

use super::tests::busy_request;
use super::*;
use proptest::prelude::*;
use usage_core::testing::{damaged, fuzz_cases};

fn opts() -> ReceiveOptions {
    ReceiveOptions {
        max_events: 64,
        allow_unknown_kinds: true,
        limits: RecordLimits {
            max_attributes: 16,
            max_string_bytes: 128,
            max_decode_bytes: 1 << 20,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(256)))]

    #[test]
    fn fuzz_otlp_protobuf_and_json(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        keep in 0usize..4096,
    ) {
        let req = busy_request();
        for (json, sample) in [(false, req.encode_to_vec()), (true, serde_json::to_vec(&req).unwrap())] {
            for body in [noise.clone(), damaged(&sample, &edits, keep)] {
                match events_from_body(&body, json, &opts()) {
                    Ok(got) => {
                        prop_assert!(got.events.len() + got.rejected.len() <= 64);
                        for r in &got.rejected {
                            prop_assert!(r.message.contains("resourceLogs["), "{}", r.message);
                        }
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
    }
}
