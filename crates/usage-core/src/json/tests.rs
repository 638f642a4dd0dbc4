//! The JSON encoding: round trips, field errors, escapes.

use super::*;
use crate::receive::{RecordLimits, RejectReason};
use crate::{FieldType, NetworkEvent, OptimizerQos, RelayUsage};

fn res() -> Resource {
    Resource::new("svc").with_instance_id("i-1")
}

#[test]
fn escapes_control_and_quote_characters() {
    let mut out = Vec::new();
    write_str(&mut out, "a\"b\\c\nd\u{1}é");
    assert_eq!(String::from_utf8(out).unwrap(), "\"a\\\"b\\\\c\\nd\\u0001é\"");
}

/// The encoding's escaping rules, one character at a time.
fn escaped(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn every_ascii_byte_at_every_offset_of_every_length_is_escaped() {
    // Lengths 1-3, 4-7 and 8+ are checked by different word reads (the last
    // overlapping the one before), so every length and position is tried.
    for len in 1..=20 {
        for at in 0..len {
            for b in 0u8..0x80 {
                let mut s = "abcdefghijklmnopqrstu"[..len].to_string();
                s.replace_range(at..at + 1, std::str::from_utf8(&[b]).unwrap());
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    escaped(&s),
                    "byte {b:#x} at {at} of {len}"
                );
            }
        }
    }
}

#[test]
fn field_names_that_need_escaping_still_make_valid_json() {
    // A schema built by hand is never validated: its names may hold anything.
    static FIELDS: [crate::FieldDef; 2] = [
        crate::FieldDef::new("a\"b", crate::FieldType::U64, false),
        crate::FieldDef::new("tab\there", crate::FieldType::Str, false),
    ];
    static SCHEMA: crate::Schema = crate::Schema::new_static("odd", &FIELDS);
    let values = vec![crate::OwnedValue::U64(7), crate::OwnedValue::Str("x".into())];
    let record = crate::Record::new(std::sync::Arc::new(SCHEMA.clone()), values).unwrap();
    let text = to_string(&Event::from_record(record), &res());
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["a\"b"], 7);
    assert_eq!(parsed["tab\there"], "x");
}

proptest::proptest! {
    #[test]
    fn any_string_reads_back_as_itself(s in ".*") {
        let mut out = Vec::new();
        write_str(&mut out, &s);
        proptest::prop_assert_eq!(String::from_utf8(out.clone()).unwrap(), escaped(&s));
        proptest::prop_assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
    }
}

#[test]
fn every_builtin_round_trips_exactly() {
    let events = vec![
        Event::new(RelayUsage {
            project: "p\"1".into(),
            chain: "ETH1".into(),
            cu: u64::MAX,
            latency_ms: 12,
            success: true,
            hedge_count: 3,
            ..Default::default()
        }),
        Event::new(OptimizerQos {
            provider: "prov".into(),
            selection_latency: 0.123456789,
            selection_sync: f64::NAN,
            epoch: 42,
            ..Default::default()
        }),
        Event::new(NetworkEvent {
            event_type: "stream_started".into(),
            stream_id: "s1".into(),
            pipeline: "p".into(),
            attributes: vec![("codec".into(), "h264".into()), ("k\n".into(), "v".into())],
            data: Some(r#"{"type":"stream_started","a":[1,{"b":null}]}"#.into()),
        }),
    ];
    for ev in &events {
        let text = to_string(ev, &res());
        let back = decode_event(text.as_bytes()).unwrap();
        assert_eq!(back.id(), ev.id());
        assert_eq!(back.ts(), ev.ts());
        assert_eq!(back.kind(), ev.kind());
        assert_eq!(back.values(), ev.values(), "{text}");
        assert_eq!(back.resource().unwrap().as_ref(), &res());
        // and re-encoding is byte-identical
        assert_eq!(to_string(&back, &Resource::default()), text);
    }
}

#[test]
fn decode_errors_name_the_field() {
    let ev = Event::new(RelayUsage::default());
    let mut v: serde_json::Value = serde_json::from_str(&to_string(&ev, &res())).unwrap();
    v["cu"] = serde_json::json!("ten");
    let e = Decoder::default().decode_value(v.clone()).unwrap_err().to_string();
    assert_eq!(e, "field `cu` of kind `relay_usage` must be u64, got a string");
    v["cu"] = serde_json::json!(-1);
    let e = Decoder::default().decode_value(v.clone()).unwrap_err().to_string();
    assert!(e.contains("must be u64, got -1"), "{e}");
    v["cu"] = serde_json::json!(1);
    v["bogus"] = serde_json::json!(1);
    let e = Decoder::default().decode_value(v.clone()).unwrap_err().to_string();
    assert_eq!(e, "kind `relay_usage` has no field `bogus`");
    v["kind"] = serde_json::json!("nope");
    assert_eq!(
        Decoder::default().decode_value(v.clone()).unwrap_err(),
        DecodeError::UnknownKind("nope".into())
    );
    let e = Decoder::default()
        .decode(b"{\"kind\":\"relay_usage\",\"ts\":\"yesterday\"}")
        .unwrap_err();
    assert!(e.to_string().starts_with("field `ts`: invalid RFC 3339"), "{e}");
}

#[test]
fn unknown_kinds_are_inferred_when_allowed() {
    let line = br#"{"id":"0190f0b0-0000-7000-8000-000000000001","ts":"2026-01-01T00:00:00Z","kind":"gpu_seconds","gpu":"a100","seconds":3.5,"n":7,"tags":{"a":"b"}}"#;
    let ev = Decoder::default().allow_unknown_kinds(true).decode(line).unwrap();
    assert_eq!(ev.kind(), "gpu_seconds");
    assert_eq!(ev.schema().field("n").unwrap().ty, FieldType::I64);
    let seconds = ev.schema().index_of("seconds").unwrap();
    assert_eq!(ev.values()[seconds], Value::F64(3.5));
    assert!(decode_event(line).is_err());
}

#[test]
fn missing_id_gets_a_fresh_one_unless_required() {
    let line = br#"{"ts":"2026-01-01T00:00:00Z","kind":"network_event","event_type":"x","stream_id":"s","pipeline":"p","attributes":{}}"#;
    let ev = decode_event(line).unwrap();
    assert_eq!(ev.id().uuid().get_version_num(), 7);
    assert!(Decoder::default().require_id(true).decode(line).is_err());
}

#[test]
fn events_over_the_record_limits_are_refused_by_name_before_they_cost_memory() {
    let limits = RecordLimits {
        max_attributes: 20,
        max_string_bytes: 16,
        max_decode_bytes: 64 << 10,
    };
    let d = Decoder::default().allow_unknown_kinds(true).limits(limits);
    let ok = br#"{"ts":"2026-01-01T00:00:00Z","kind":"k","a":"short","m":{"x":"y"}}"#;
    assert!(d.decode(ok).is_ok());
    let cases: [(Vec<u8>, &str); 5] = [
        (
            br#"{"ts":"2026-01-01T00:00:00Z","kind":"k","a":"seventeen bytes!!"}"#.to_vec(),
            "field `a` is 17 bytes",
        ),
        (
            br#"{"ts":"2026-01-01T00:00:00Z","kind":"k","m":{"x":"seventeen bytes!!"}}"#.to_vec(),
            "field `m`.`x` is 17 bytes",
        ),
        (
            format!(
                r#"{{"ts":"2026-01-01T00:00:00Z","kind":"k",{}}}"#,
                (0..21).map(|i| format!("\"f{i}\":1")).collect::<Vec<_>>().join(",")
            )
            .into_bytes(),
            "more than 20 attributes",
        ),
        (
            format!(r#"{{"ts":"2026-01-01T00:00:00Z","kind":"k","{}":1}}"#, "k".repeat(17)).into_bytes(),
            "a key is 17 bytes",
        ),
        (
            format!(
                r#"{{"ts":"2026-01-01T00:00:00Z","kind":"k","junk":[{}0]}}"#,
                "0,".repeat(1000)
            )
            .into_bytes(),
            "more than 65536 bytes decoded",
        ),
    ];
    for (body, names) in cases {
        let e = d.decode(&body).unwrap_err();
        assert_eq!(e.reason(), RejectReason::TooLarge, "{e}");
        assert!(e.to_string().contains(names), "{e} names {names}");
    }
}

#[test]
fn unknown_kinds_and_fields_must_have_valid_names() {
    let d = Decoder::default().allow_unknown_kinds(true);
    for (line, names) in [
        (r#"{"ts":"2026-01-01T00:00:00Z","kind":"../x","a":1}"#, "\"../x\""),
        (r#"{"ts":"2026-01-01T00:00:00Z","kind":"/abs","a":1}"#, "\"/abs\""),
        (r#"{"ts":"2026-01-01T00:00:00Z","kind":"ok","a.b":1}"#, "\"a.b\""),
        (r#"{"ts":"2026-01-01T00:00:00Z","kind":"ok","":1}"#, "\"\""),
    ] {
        let e = d.decode(line.as_bytes()).unwrap_err();
        assert_eq!(e.reason(), RejectReason::BadName, "{e}");
        assert!(e.to_string().contains(names), "{e} names {names}");
    }
    let ok = d.decode(br#"{"ts":"2026-01-01T00:00:00Z","kind":"ok","a":1}"#).unwrap();
    assert!(ok.schema().fields.iter().all(|f| f.nullable));
}

/// `,"name":value` for every field, each key quoted from its name on the spot.
fn fields_by_name(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    let mut fields = event.schema().fields.iter();
    event.visit(|v| {
        if let Some(def) = fields.next() {
            write_key(&mut out, &def.name);
            write_value(&mut out, v);
        }
    });
    out
}

#[test]
fn static_kinds_take_their_own_keys_when_kinds_alternate_on_a_thread() {
    let events = [
        Event::new(RelayUsage {
            project: "p".into(),
            cu: 3,
            ..Default::default()
        }),
        Event::new(OptimizerQos {
            provider: "prov".into(),
            epoch: 7,
            ..Default::default()
        }),
        Event::new(NetworkEvent {
            event_type: "stream_started".into(),
            ..Default::default()
        }),
        Event::new(RelayUsage {
            project: "q".into(),
            cu: 4,
            ..Default::default()
        }),
    ];
    for e in events.iter().chain(&events) {
        assert!(
            matches!(e.schema().fields, Cow::Borrowed(_)),
            "{} has a static schema",
            e.kind()
        );
        let mut got = Vec::new();
        write_fields(&mut got, e);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(fields_by_name(e)).unwrap()
        );
    }
}

#[test]
fn keys_in_use_on_the_thread_fall_back_to_quoting_each_name() {
    let e = Event::new(RelayUsage {
        project: "p".into(),
        cu: 3,
        ..Default::default()
    });
    let Cow::Borrowed(fields) = &e.schema().fields else {
        panic!("relay_usage has a static schema");
    };
    // Written while the thread's keys are held: the nested write quotes names itself.
    let nested = keys::with(fields, |_| {
        let mut out = Vec::new();
        write_fields(&mut out, &e);
        out
    });
    assert_eq!(nested, Some(fields_by_name(&e)));
}
