//! A record over a limit is refused alone; a body whose structure would outgrow the
//! decode budget, or with more resource entries than records allowed, is refused
//! before it costs memory. Both encodings.

use super::producer_tests::lava_relay;
use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

fn request_of(records: Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn opts(max_attributes: usize, max_string_bytes: usize) -> ReceiveOptions {
    ReceiveOptions {
        max_events: 100,
        allow_unknown_kinds: true,
        limits: RecordLimits {
            max_attributes,
            max_string_bytes,
            max_decode_bytes: 64 << 20,
        },
    }
}

/// The same request read from protobuf and from JSON.
fn both(req: &ExportLogsServiceRequest, o: &ReceiveOptions) -> [Received; 2] {
    [
        events_from_body(&req.encode_to_vec(), false, o).unwrap(),
        events_from_body(&serde_json::to_vec(req).unwrap(), true, o).unwrap(),
    ]
}

#[test]
fn a_record_with_too_many_attributes_or_too_long_a_string_is_refused_alone() {
    let mut wide = lava_relay(1, &[]);
    for i in 0..40 {
        wide.attributes.push(KeyValue {
            key: format!("extra_{i}"),
            value: Some(AnyValue {
                value: Some(Av::IntValue(i)),
            }),
            ..Default::default()
        });
    }
    let mut long = lava_relay(2, &[]);
    long.attributes[0].value = Some(AnyValue {
        value: Some(Av::StringValue("p".repeat(300))),
    });
    let req = request_of(vec![lava_relay(0, &[]), wide, long, lava_relay(3, &[])]);
    for got in both(&req, &opts(32, 256)) {
        assert_eq!(got.events.len(), 2, "the neighbours are taken");
        let reasons: Vec<_> = got.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(reasons, [(1, RejectReason::TooLarge), (2, RejectReason::TooLarge)]);
        assert!(
            got.rejected[0].message.contains("more than 32 attributes"),
            "{}",
            got.rejected[0].message
        );
        assert!(
            got.rejected[1].message.contains("attribute `project` is 300 bytes"),
            "{}",
            got.rejected[1].message
        );
    }
    // Within the limits, all four are taken.
    for got in both(&req, &opts(64, 512)) {
        assert_eq!((got.events.len(), got.rejected.len()), (4, 0));
    }
}

#[test]
fn empty_resource_entries_count_against_the_record_limit() {
    let mut req = request_of(vec![lava_relay(0, &[])]);
    req.resource_logs.extend((0..200).map(|_| ResourceLogs::default()));
    let o = opts(64, 512);
    for json in [false, true] {
        let body = if json {
            serde_json::to_vec(&req).unwrap()
        } else {
            req.encode_to_vec()
        };
        let err = events_from_body(&body, json, &o).unwrap_err();
        assert!(
            matches!(&err, ReceiveError::TooLarge(m) if m.contains("more than 100 resourceLogs")),
            "{err}"
        );
    }
}

#[test]
fn a_json_body_whose_objects_would_outgrow_the_budget_is_refused_unparsed() {
    // 200k empty records: 600 KB of JSON that prost would make ~100 MB of.
    let records = vec!["{}"; 200_000].join(",");
    let body = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#);
    let o = ReceiveOptions {
        max_events: usize::MAX,
        allow_unknown_kinds: false,
        limits: RecordLimits {
            max_decode_bytes: 16 << 20,
            ..RecordLimits::default()
        },
    };
    let err = events_from_body(body.as_bytes(), true, &o).unwrap_err();
    assert!(
        matches!(&err, ReceiveError::TooLarge(m) if m.contains("gateway.max_decode_bytes")),
        "{err}"
    );
    // A real request of the same records decodes within the same budget.
    let req = request_of((0..50).map(|n| lava_relay(n, &[])).collect());
    assert!(events_from_body(&serde_json::to_vec(&req).unwrap(), true, &o).is_ok());
}

#[test]
fn refused_records_kept_with_a_large_resource_count_against_the_budget() {
    let mut req = request_of((0..100).map(|n| lava_relay(n, &["project"])).collect());
    req.resource_logs[0].resource = Some(opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: vec![KeyValue {
            key: "padding".into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue("r".repeat(100_000))),
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    for json in [false, true] {
        let body = if json {
            serde_json::to_vec(&req).unwrap()
        } else {
            req.encode_to_vec()
        };
        let mut o = opts(64, 1 << 20);
        o.limits.max_decode_bytes = 4 << 20;
        let err = events_from_body(&body, json, &o).unwrap_err();
        assert!(
            matches!(&err, ReceiveError::TooLarge(m) if m.contains("refused records")),
            "{err}"
        );
        o.limits.max_decode_bytes = 64 << 20;
        let got = events_from_body(&body, json, &o).unwrap();
        assert_eq!(got.rejected.len(), 100, "each kept whole once the budget allows");
    }
}
