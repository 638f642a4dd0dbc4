use super::*;
use crate::receive::values::read_key_value_walked;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use proptest::prelude::*;
use prost::Message;
use usage_core::testing::{damaged, fuzz_cases};

fn encoded(key: &str, value: Option<Av>) -> Vec<u8> {
    KeyValue {
        key: key.to_string(),
        value: value.map(|v| AnyValue { value: Some(v) }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// What the general walker makes of `buf`, as text (a NaN double equals itself).
fn walked(buf: &[u8]) -> Result<String, String> {
    let mut attr = Attr { key: "", value: None };
    read_key_value_walked(&mut attr, buf, 0, 0)
        .map(|()| format!("{attr:?}"))
        .map_err(|e| e.0)
}

/// Every input the plain reader takes, the walker reads the same.
fn agrees(buf: &[u8]) -> Result<(), TestCaseError> {
    if let Some(plain) = read(buf) {
        prop_assert_eq!(Ok(format!("{plain:?}")), walked(buf), "{:?}", buf);
    }
    Ok(())
}

#[test]
fn takes_the_attributes_sdks_write() {
    let project = "0123456789abcdef0123456789abcdef";
    let provider = "lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y";
    let cases = [
        encoded("project", Some(Av::StringValue(project.into()))),
        encoded("provider", Some(Av::StringValue(provider.into()))),
        encoded("origin", Some(Av::StringValue(String::new()))),
        encoded("success", Some(Av::BoolValue(true))),
        encoded("cache_hit", Some(Av::BoolValue(false))),
        encoded("cu", Some(Av::IntValue(12))),
        encoded("latency_ms", Some(Av::IntValue(299))),
        encoded("latency_ms", Some(Av::IntValue(16_383))),
        encoded("ratio", Some(Av::DoubleValue(0.25))),
    ];
    for buf in &cases {
        let plain = read(buf).unwrap_or_else(|| panic!("not taken: {buf:?}"));
        assert_eq!(Ok(format!("{plain:?}")), walked(buf));
    }
    assert_eq!(
        read(&cases[0]).map(|a| (a.key, a.value)),
        Some(("project", Some(Any::Str(project))))
    );
    assert_eq!(read(&cases[6]).and_then(|a| a.value), Some(Any::Int(299)));
}

#[test]
fn leaves_every_other_shape_to_the_walker() {
    let long = "x".repeat(128);
    let others = [
        // Lengths of two bytes, long varints, no value, values it does not hold.
        encoded(&long, Some(Av::StringValue("v".into()))),
        encoded("k", Some(Av::StringValue(long.clone()))),
        encoded("k", Some(Av::IntValue(16_384))),
        encoded("k", Some(Av::IntValue(-1))),
        encoded("k", None),
        // An empty key is not written at all.
        encoded("", Some(Av::StringValue("v".into()))),
        encoded("k", Some(Av::BytesValue(vec![1, 2]))),
        // Value before key, a repeated key, an unknown field after the value.
        [&encoded("", Some(Av::BoolValue(true)))[..], &[0x0a, 1, b'k']].concat(),
        [&encoded("a", Some(Av::BoolValue(true)))[..], &[0x0a, 1, b'b']].concat(),
        [&encoded("a", Some(Av::BoolValue(true)))[..], &[0x18, 1]].concat(),
        // Invalid UTF-8 in the key and in the value: the walker names the error.
        vec![0x0a, 1, 0xff, 0x12, 3, 0x0a, 1, b'v'],
        vec![0x0a, 1, b'k', 0x12, 3, 0x0a, 1, 0xff],
        // A value cut short, and one whose length runs past the attribute.
        vec![0x0a, 1, b'k', 0x12, 2, 0x21, 0],
        vec![0x0a, 1, b'k', 0x12, 9, 0x10, 1],
    ];
    for buf in &others {
        assert!(read(buf).is_none(), "taken: {buf:?}");
    }
    assert!(walked(&others[10]).unwrap_err().contains("invalid UTF-8"));
    assert!(walked(&others[13]).unwrap_err().contains("past the end"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases(512)))]

    #[test]
    fn fuzz_plain_attributes_read_as_the_walker_reads_them(
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        key in "[a-z._]{0,12}",
        text in ".{0,8}",
        int in any::<i64>(),
        pick in 0u8..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        keep in 0usize..64,
    ) {
        let value = match pick {
            0 => Some(Av::StringValue(text)),
            1 => Some(Av::BoolValue(int & 1 == 1)),
            2 => Some(Av::IntValue(int % 20_000)),
            3 => Some(Av::DoubleValue(f64::from_bits(int as u64))),
            _ => None,
        };
        let sample = encoded(&key, value);
        agrees(&sample)?;
        agrees(&damaged(&sample, &edits, keep))?;
        agrees(&noise)?;
    }
}
