//! Review H6 and L3: kinds this binary infers must have valid names, as must their
//! attributes, since exporters make paths, topics, tables and JSON keys of them; a
//! later record of the same kind with other attributes gets its own schema.

use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

fn record(kind: &str, attrs: &[(&str, i64)]) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_764_633_600_000_000_000,
        body: Some(AnyValue {
            value: Some(Av::StringValue(kind.into())),
        }),
        attributes: attrs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).into(),
                value: Some(AnyValue {
                    value: Some(Av::IntValue(*v)),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn receive(records: Vec<LogRecord>) -> Received {
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let opts = ReceiveOptions {
        allow_unknown_kinds: true,
        ..Default::default()
    };
    events_from_body(&req.encode_to_vec(), false, &opts).unwrap()
}

#[test]
fn kinds_and_attributes_that_cannot_name_a_path_topic_or_column_are_refused() {
    let bad = [
        record("../x", &[("a", 1)]),
        record("/var/www", &[("a", 1)]),
        record("a b", &[("a", 1)]),
        record("x\\`", &[("a", 1)]),
        record("Upper", &[("a", 1)]),
        record("ok_kind", &[("id", 1)]),
        record("ok_kind", &[("kind", 1)]),
        record("ok_kind", &[("", 1)]),
        record("ok_kind", &[("a.b", 1)]),
        record("ok_kind", &[("a", 1), ("a", 2)]),
    ];
    let n = bad.len();
    let mut records = bad.to_vec();
    records.push(record("ok_kind", &[("a", 1)]));
    let got = receive(records);
    assert_eq!(got.events.len(), 1, "the valid record is taken");
    assert_eq!(got.rejected.len(), n);
    for r in &got.rejected {
        assert_eq!(r.reason, RejectReason::BadName, "{}", r.message);
    }
}

#[test]
fn a_later_record_with_other_attributes_keeps_them() {
    let got = receive(vec![
        record("custom_kind", &[("a", 1)]),
        record("custom_kind", &[("a", 2), ("b", 3)]),
    ]);
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let second = &got.events[1];
    assert_eq!(
        second.field("b"),
        Some(usage_core::Value::I64(3)),
        "no attribute dropped"
    );
    assert!(
        second.schema().fields.iter().all(|f| f.nullable),
        "inferred fields are nullable"
    );
}

#[test]
fn a_record_without_any_time_is_refused_not_dated_1970() {
    let mut timeless = record("custom_kind", &[("a", 1)]);
    timeless.time_unix_nano = 0;
    timeless.observed_time_unix_nano = 0;
    let mut observed = record("custom_kind", &[("a", 1)]);
    observed.time_unix_nano = 0;
    observed.observed_time_unix_nano = 1_764_633_600_000_000_000;
    let got = receive(vec![timeless, observed]);
    assert_eq!(got.events.len(), 1, "the observed time stands in for the event time");
    assert_eq!(got.rejected[0].reason, RejectReason::BadTime);
}
