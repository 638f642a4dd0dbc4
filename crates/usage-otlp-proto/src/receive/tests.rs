//! The in-place protobuf reader against prost's decode of the same bytes.

use super::*;
use crate::proto::request;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};

fn kv(key: &str, v: Av) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// Two resources, three kinds, and every field a producer may set that we ignore.
pub(super) fn busy_request() -> ExportLogsServiceRequest {
    let sent = crate::proto::tests::one_of_each_kind();
    let mut req = request(&Resource::new("svc-a"), &sent);
    let mut other = request(&Resource::new("svc-b"), &sent[..1]).resource_logs.remove(0);
    other.schema_url = "https://opentelemetry.io/schemas/1.0".into();
    let scope = &mut req.resource_logs[0].scope_logs[0];
    scope.scope = Some(InstrumentationScope {
        name: "usage".into(),
        version: "1".into(),
        attributes: vec![kv("scope.attr", Av::BoolValue(true))],
        dropped_attributes_count: 2,
    });
    for lr in &mut scope.log_records {
        lr.severity_number = 9;
        lr.severity_text = "INFO".into();
        lr.flags = 1;
        lr.trace_id = vec![1; 16];
        lr.span_id = vec![2; 8];
        lr.event_name = "usage".into();
        lr.dropped_attributes_count = 3;
        lr.attributes.push(kv(
            "extra.array",
            Av::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Av::IntValue(1)),
                }],
            }),
        ));
        lr.attributes.push(kv(
            "extra.map",
            Av::KvlistValue(KeyValueList {
                values: vec![kv("k", Av::StringValue("v".into()))],
            }),
        ));
        lr.attributes.push(kv("extra.bytes", Av::BytesValue(vec![0, 1])));
    }
    req.resource_logs.push(other);
    req
}

fn both(body: &[u8], opts: &ReceiveOptions) -> (Result<Vec<Event>, ReceiveError>, Result<Vec<Event>, ReceiveError>) {
    let ours = events_from_body(body, false, opts).and_then(Received::all);
    let prost = decode_request(body, false)
        .and_then(|r| events_from_request(&r, opts))
        .and_then(Received::all);
    (ours, prost)
}

#[test]
fn reading_in_place_gives_the_same_events_as_decoding() {
    let body = busy_request().encode_to_vec();
    let (ours, prost) = both(&body, &ReceiveOptions::default());
    let ours = ours.unwrap();
    assert_eq!(ours.len(), 4);
    assert_eq!(ours, prost.unwrap());
    assert_eq!(ours[3].resource().unwrap().service_name.as_str(), "svc-b");
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    let mut body = busy_request().encode_to_vec();
    // field 99 varint 5; field 98 as a group holding field 1 varint 7
    body.extend_from_slice(&[0x98, 0x06, 5, 0x93, 0x06, 0x08, 7, 0x94, 0x06]);
    let (ours, prost) = both(&body, &ReceiveOptions::default());
    assert_eq!(ours.unwrap(), prost.unwrap());
}

#[test]
fn damaged_bodies_never_panic_and_agree_with_prost_when_both_accept() {
    let body = busy_request().encode_to_vec();
    let opts = ReceiveOptions {
        allow_unknown_kinds: true,
        ..Default::default()
    };
    let (mut accepted, mut rejected) = (0, 0);
    let mut check = |b: &[u8]| {
        let (ours, prost) = both(b, &opts);
        match (ours, prost) {
            (Ok(o), Ok(p)) => {
                accepted += 1;
                // A damaged `event.id` gives fresh random ids on both sides.
                let strip = |v: Vec<Event>| -> Vec<(String, Vec<String>)> {
                    v.iter()
                        .map(|e| {
                            (
                                e.kind().to_string(),
                                e.values().iter().map(|v| format!("{v:?}")).collect(),
                            )
                        })
                        .collect()
                };
                assert_eq!(strip(o), strip(p), "{b:?}");
            }
            (Err(_), Err(_)) => rejected += 1,
            (Ok(_), Err(e)) => panic!("accepted what prost rejects ({e}): {b:?}"),
            (Err(e), Ok(_)) => panic!("rejected what prost accepts ({e}): {b:?}"),
        }
    };
    for len in 0..body.len() {
        check(&body[..len]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..body.len() {
        let mut damaged = body.clone();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        damaged[i] ^= (x as u8) | 1;
        check(&damaged);
    }
    assert!(accepted > 0 && rejected > 0, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn a_malformed_field_is_named_with_its_offset() {
    // LogRecord { time_unix_nano as a varint } inside ScopeLogs inside ResourceLogs.
    let record = [0x08, 0x01];
    let scope = [&[0x12, record.len() as u8][..], &record].concat();
    let rl = [&[0x12, scope.len() as u8][..], &scope].concat();
    let body = [&[0x0a, rl.len() as u8][..], &rl].concat();
    let got = events_from_body(&body, false, &ReceiveOptions::default()).unwrap();
    assert!(got.events.is_empty());
    assert_eq!(got.rejected.len(), 1);
    assert_eq!(got.rejected[0].reason, RejectReason::Malformed);
    assert_eq!(
        got.rejected[0].message,
        "resourceLogs[0].scopeLogs[0].logRecords[0]: invalid OTLP protobuf: \
         LogRecord.time_unix_nano: expected a fixed64, got a varint at byte 7"
    );
}

#[test]
fn too_many_records_stop_the_read() {
    let body = busy_request().encode_to_vec();
    let opts = ReceiveOptions {
        max_events: 2,
        ..Default::default()
    };
    assert_eq!(
        events_from_body(&body, false, &opts).unwrap_err(),
        ReceiveError::TooMany(2)
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut v = AnyValue {
        value: Some(Av::IntValue(1)),
    };
    for _ in 0..500 {
        v = AnyValue {
            value: Some(Av::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    let mut req = busy_request();
    req.resource_logs[0].scope_logs[0].log_records[0]
        .attributes
        .push(KeyValue {
            key: "deep".into(),
            value: Some(v),
            ..Default::default()
        });
    let body = req.encode_to_vec();
    let (ours, prost) = both(&body, &ReceiveOptions::default());
    assert!(ours.unwrap_err().to_string().contains("nested too deep"));
    // Only that record is refused; its neighbours arrive.
    let got = events_from_body(&body, false, &ReceiveOptions::default()).unwrap();
    assert_eq!((got.events.len(), got.rejected.len()), (3, 1));
    assert_eq!(got.rejected[0].index, 0);
    assert!(prost.is_err());
}

#[test]
fn json_goes_through_the_same_mapping() {
    let req = busy_request();
    let json = serde_json::to_vec(&req).unwrap();
    let from_json = events_from_body(&json, true, &ReceiveOptions::default()).unwrap();
    assert_eq!(
        from_json.events,
        events_from_request(&req, &ReceiveOptions::default()).unwrap().events
    );
}

#[test]
fn the_first_resource_key_decides_even_when_it_is_not_a_string() {
    let mut req = busy_request();
    let attrs = &mut req.resource_logs[0].resource.as_mut().unwrap().attributes;
    attrs.insert(0, kv("service.name", Av::IntValue(7)));
    attrs.push(kv("service.instance.id", Av::StringValue("later".into())));
    let body = req.encode_to_vec();
    let (ours, prost) = both(&body, &ReceiveOptions::default());
    let ours = ours.unwrap();
    assert_eq!(ours, prost.unwrap());
    let res = ours[0].resource().unwrap();
    assert_eq!(
        res.service_name.as_str(),
        "unknown_service",
        "an int service.name is no name"
    );
    assert_ne!(res.service_instance_id.as_str(), "later", "the first instance id wins");
}

#[test]
fn the_receiver_gives_back_the_events() {
    let res = Resource::new("svc");
    let sent = crate::proto::tests::one_of_each_kind();
    let got = events_from_request(&request(&res, &sent), &ReceiveOptions::default())
        .and_then(|r| r.all())
        .unwrap();
    let with_res: Vec<Event> = sent
        .into_iter()
        .map(|e| e.with_resource(std::sync::Arc::new(res.clone())))
        .collect();
    assert_eq!(got, with_res);
}

/// OpenTelemetry's events convention: `event_name` (field 12) names the kind and the
/// body is free (absent, or a message). Both readers, protobuf and JSON.
#[test]
fn event_name_names_the_kind_when_the_body_does_not() {
    let sent = crate::proto::tests::one_of_each_kind();
    let mut req = request(&Resource::new("svc"), &sent);
    for (i, lr) in req.resource_logs[0].scope_logs[0].log_records.iter_mut().enumerate() {
        let kind = match &lr.body {
            Some(AnyValue {
                value: Some(Av::StringValue(k)),
            }) => k.clone(),
            other => panic!("{other:?}"),
        };
        lr.event_name = kind;
        // Half without a body, half with a message that names no kind.
        lr.body = (i % 2 == 1).then(|| AnyValue {
            value: Some(Av::StringValue("relay served".into())),
        });
    }
    let (ours, prost) = both(&req.encode_to_vec(), &ReceiveOptions::default());
    let ours = ours.unwrap();
    assert_eq!(ours, prost.unwrap());
    let kinds: Vec<&str> = ours.iter().map(|e| e.kind()).collect();
    let want: Vec<&str> = sent.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, want);
    let json = serde_json::to_vec(&req).unwrap();
    let from_json = events_from_body(&json, true, &ReceiveOptions::default())
        .and_then(Received::all)
        .unwrap();
    assert_eq!(from_json.iter().map(|e| e.kind()).collect::<Vec<_>>(), want);
    // Neither: refused, saying both ways to name it.
    let mut none = request(&Resource::new("svc"), &sent[..1]);
    let record = &mut none.resource_logs[0].scope_logs[0].log_records[0];
    record.body = None;
    record.event_name.clear();
    let err = events_from_body(&none.encode_to_vec(), false, &ReceiveOptions::default())
        .and_then(Received::all)
        .unwrap_err();
    assert!(err.to_string().contains("event_name"), "{err}");
}
