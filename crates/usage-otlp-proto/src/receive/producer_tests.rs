//! Records exactly as Lava's OTel sink sends them (shared/interop.md): no `event.id`,
//! Lava's attribute types, both kinds in one request.

use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;

fn kv(key: &str, v: Av) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Av {
    Av::StringValue(v.into())
}

pub(crate) fn lava_relay(n: i64, drop: &[&str]) -> LogRecord {
    let attrs = vec![
        kv("project", s("proj-1")),
        kv("chain", s("ETH1")),
        kv("api_interface", s("jsonrpc")),
        kv("api_method", s("eth_call")),
        kv("cu", Av::IntValue(10)),
        kv("latency_ms", Av::IntValue(n)),
        kv("success", Av::BoolValue(true)),
        kv("cache_hit", Av::BoolValue(false)),
        kv("is_write", Av::BoolValue(false)),
        kv("is_archive", Av::BoolValue(false)),
        kv("is_batch", Av::BoolValue(false)),
        kv("is_debug_trace", Av::BoolValue(false)),
        kv("hedge_count", Av::IntValue(0)),
        kv("provider", s("lava@prov")),
        kv("origin", s("")),
    ];
    LogRecord {
        time_unix_nano: 1_764_633_600_000_000_000 + n as u64,
        observed_time_unix_nano: 1_764_633_600_000_000_500 + n as u64,
        body: Some(AnyValue {
            value: Some(s("relay_usage")),
        }),
        attributes: attrs.into_iter().filter(|a| !drop.contains(&a.key.as_str())).collect(),
        ..Default::default()
    }
}

fn lava_qos() -> LogRecord {
    let mut attrs = vec![
        kv("provider", s("lava@prov")),
        kv("consumer_hostname", s("host-1")),
        kv("consumer_pub_address", s("lava@consumer")),
        kv("chain_id", s("ETH1")),
        kv("epoch", Av::IntValue(1234)),
        kv("entry_index", Av::IntValue(2)),
        kv("geo_location", Av::IntValue(1)),
        kv("provider_stake", Av::IntValue(5_000_000)),
    ];
    for k in [
        "selection_availability",
        "selection_latency",
        "selection_sync",
        "selection_stake",
        "selection_composite",
        "availability_contribution",
        "latency_contribution",
        "sync_contribution",
        "stake_contribution",
    ] {
        attrs.push(kv(k, Av::DoubleValue(0.5)));
    }
    LogRecord {
        time_unix_nano: 1_764_633_600_123_000_000,
        body: Some(AnyValue {
            value: Some(s("optimizer_qos")),
        }),
        attributes: attrs,
        ..Default::default()
    }
}

/// One request as Lava's BatchProcessor sends it: SDK resource, one scope, both kinds.
pub(crate) fn lava_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(OtlpResource {
                attributes: vec![
                    kv("service.name", s("lava-rpcconsumer")),
                    kv("service.instance.id", s("host-1-4242")),
                    kv("telemetry.sdk.language", s("go")),
                    kv("telemetry.sdk.name", s("opentelemetry")),
                    kv("telemetry.sdk.version", s("1.38.0")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "lava-usage".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn receive(req: &ExportLogsServiceRequest) -> Received {
    events_from_body(&req.encode_to_vec(), false, &ReceiveOptions::default()).unwrap()
}

#[test]
fn lava_types_in_a_mixed_batch_are_all_accepted() {
    let req = lava_request(vec![lava_relay(1, &[]), lava_qos(), lava_relay(2, &[])]);
    let got = receive(&req);
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    let kinds: Vec<&str> = got.events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, ["relay_usage", "optimizer_qos", "relay_usage"]);
    let qos = &got.events[1];
    let field = |name: &str| qos.values()[qos.schema().index_of(name).unwrap()];
    assert_eq!(field("geo_location"), usage_core::Value::I64(1));
    assert_eq!(field("provider_stake"), usage_core::Value::I64(5_000_000));
    let relay = &got.events[0];
    assert_eq!(relay.resource().unwrap().service_instance_id.as_str(), "host-1-4242");
    assert_eq!(relay.field("cu"), Some(usage_core::Value::U64(10)));
}

#[test]
fn a_resent_request_maps_to_the_same_ids_and_records_differ() {
    let req = lava_request(vec![lava_relay(1, &[]), lava_relay(2, &[]), lava_qos()]);
    let (a, b) = (receive(&req), receive(&req));
    let ids = |r: &Received| r.events.iter().map(|e| e.id()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    let distinct: std::collections::HashSet<_> = ids(&a).into_iter().collect();
    assert_eq!(distinct.len(), 3);
    // The same record from another process instance is another event.
    let mut other = req.clone();
    other.resource_logs[0].resource.as_mut().unwrap().attributes[1] = kv("service.instance.id", s("host-2-1"));
    assert_ne!(ids(&receive(&other))[0], ids(&a)[0]);
    // OTLP/JSON maps the same request to the same ids.
    let json = serde_json::to_vec(&req).unwrap();
    let from_json = events_from_body(&json, true, &ReceiveOptions::default()).unwrap();
    assert_eq!(ids(&from_json), ids(&a));
}

#[test]
fn one_bad_record_costs_only_itself_and_is_kept_replayable() {
    let mut wrong_type = lava_relay(3, &[]);
    wrong_type.attributes[4] = kv("cu", s("ten"));
    let req = lava_request(vec![
        lava_relay(1, &["origin", "api_interface"]),
        lava_relay(2, &["cu"]),
        wrong_type,
        lava_qos(),
    ]);
    let got = receive(&req);
    assert_eq!(got.events.len(), 2);
    let filled = &got.events[0];
    assert_eq!(filled.field("origin"), Some(usage_core::Value::Str("")));
    assert_eq!(filled.field("api_interface"), Some(usage_core::Value::Str("")));
    let reasons: Vec<_> = got.rejected.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(reasons, [(1, RejectReason::MissingField), (2, RejectReason::WrongType)]);
    assert_eq!(
        got.rejected[0].message,
        "resourceLogs[0].scopeLogs[0].logRecords[1]: attribute `cu` (u64) is missing"
    );
    assert!(got.rejected[1]
        .message
        .ends_with("attribute `cu` must be u64, got a string"));
    // The kept record is a one-record request with its resource and scope.
    let alone = ExportLogsServiceRequest::decode(&got.rejected[0].raw[..]).unwrap();
    let mut want = lava_request(vec![lava_relay(2, &["cu"])]);
    assert_eq!(alone, want);
    // Fixed and re-sent alone, it gets the id it would have had in the batch.
    want.resource_logs[0].scope_logs[0].log_records[0] = lava_relay(2, &[]);
    let in_batch = receive(&lava_request(vec![lava_relay(1, &[]), lava_relay(2, &[])])).events[1].id();
    assert_eq!(receive(&want).events[0].id(), in_batch);
}

#[test]
fn lossless_coercions_apply_and_lossy_ones_reject() {
    let mut r = lava_relay(1, &[]);
    r.attributes[4] = kv("cu", Av::DoubleValue(12.0));
    r.attributes[0] = kv("project", Av::IntValue(77));
    let got = receive(&lava_request(vec![r.clone()]));
    assert_eq!(got.events[0].field("cu"), Some(usage_core::Value::U64(12)));
    assert_eq!(got.events[0].field("project"), Some(usage_core::Value::Str("77")));
    r.attributes[4] = kv("cu", Av::DoubleValue(12.5));
    let got = receive(&lava_request(vec![r]));
    assert_eq!(got.rejected[0].reason, RejectReason::WrongType);
}
