//! Events as OTLP protobuf messages directly (no SDK): what the `otlp` exporter
//! sends, and what load generators, tests and tools build requests with.

use crate::ID_ATTRIBUTE;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use usage_core::{Event, Resource, Value};

fn kv(key: impl Into<String>, v: Av) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// One log record: body = kind (and `event_name`, OpenTelemetry's events
/// convention, for collectors that route on it), `event.id`, one typed attribute
/// per field.
pub fn log_record(e: &Event) -> LogRecord {
    let nanos = (e.ts().as_micros().max(0) as u64).saturating_mul(1000);
    let mut attributes = vec![kv(ID_ATTRIBUTE, Av::StringValue(e.id().to_string()))];
    let schema = e.schema();
    let mut fields = schema.fields.iter();
    e.visit(|v| {
        let Some(def) = fields.next() else { return };
        let name = def.name.as_ref();
        match v {
            Value::Null => {}
            Value::Str(s) => attributes.push(kv(name, Av::StringValue(s.to_string()))),
            Value::I64(i) => attributes.push(kv(name, Av::IntValue(i))),
            Value::U64(u) => attributes.push(kv(
                name,
                i64::try_from(u).map_or_else(|_| Av::StringValue(u.to_string()), Av::IntValue),
            )),
            Value::F64(f) => attributes.push(kv(name, Av::DoubleValue(f))),
            Value::Bool(b) => attributes.push(kv(name, Av::BoolValue(b))),
            Value::StrMap(m) => {
                for (k, v) in m {
                    attributes.push(kv(format!("{name}.{k}"), Av::StringValue(v.to_string())));
                }
            }
        }
    });
    LogRecord {
        time_unix_nano: nanos,
        observed_time_unix_nano: nanos,
        body: Some(AnyValue {
            value: Some(Av::StringValue(e.kind().to_string())),
        }),
        attributes,
        event_name: e.kind().to_string(),
        ..Default::default()
    }
}

/// A request holding `events`, all under `resource`.
pub fn request<'a>(resource: &Resource, events: impl IntoIterator<Item = &'a Event>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(ProtoResource {
                attributes: vec![
                    kv("service.name", Av::StringValue(resource.service_name.to_string())),
                    kv(
                        "service.instance.id",
                        Av::StringValue(resource.service_instance_id.to_string()),
                    ),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "usage".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: events.into_iter().map(log_record).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use usage_core::{NetworkEvent, OptimizerQos, RelayUsage};

    /// One event of each built-in kind, with a non-ASCII string, an extreme integer,
    /// a float and an empty map value: what the receive tests send.
    pub(crate) fn one_of_each_kind() -> Vec<Event> {
        vec![
            Event::new(RelayUsage {
                project: "acme".into(),
                api_method: "eth_call ünïcödé".into(),
                cu: 7,
                success: true,
                ..Default::default()
            }),
            Event::new(OptimizerQos {
                epoch: i64::MAX,
                selection_latency: 0.25,
                ..Default::default()
            }),
            Event::new(NetworkEvent {
                attributes: vec![("a".into(), "1".into()), ("b".into(), "".into())],
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn a_record_names_its_kind_in_the_body_and_the_event_name() {
        use prost::Message;
        for e in one_of_each_kind() {
            let bytes = log_record(&e).encode_to_vec();
            let back = LogRecord::decode(bytes.as_slice()).unwrap();
            assert_eq!(back.event_name, e.kind());
            let body = back.body.and_then(|b| b.value);
            assert_eq!(body, Some(Av::StringValue(e.kind().to_string())));
        }
    }
}
