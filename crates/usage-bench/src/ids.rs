//! The event ids in a message, read with as little work as each format allows:
//! `kafka-count` runs on the same 2 cores as the collector it measures, so its
//! parsing must not weigh on either collector's end-to-end figure.
//!
//! - A JSON line: only its `id` member is taken (borrowed, the rest skipped).
//! - An OTLP `ExportLogsServiceRequest`: only the records' attributes are
//!   decoded, keys and string values as slices of the message (no copies), and
//!   only `event.id` is kept.

use prost::Message as _;
use serde::Deserialize;
use std::borrow::Cow;

/// The `id` of one JSON object, or `None` when the line is not an object with a
/// string `id`.
pub fn json_line_id(line: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
    }
    serde_json::from_slice::<IdOnly<'_>>(line)
        .ok()
        .map(|v| v.id.into_owned())
}

/// The `event.id` attribute of each log record in an OTLP logs request, in order
/// (`None` for a record without a string `event.id`), or `Err` when the bytes are
/// not such a request.
pub fn otlp_record_ids(message: &[u8]) -> Result<Vec<Option<String>>, prost::DecodeError> {
    let request = Logs::decode(bytes::Bytes::copy_from_slice(message))?;
    Ok(request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| {
            let id = r.attributes.iter().find(|kv| kv.key == b"event.id".as_slice())?;
            let text = id.value.as_ref()?.string_value.as_ref()?;
            std::str::from_utf8(text).ok().map(str::to_owned)
        })
        .collect())
}

// The fields of the OTLP logs messages on the way to an attribute, by the tags of
// opentelemetry-proto's logs.proto and common.proto; everything else is skipped.
// Strings are declared as bytes (the same wire type) to borrow them from the message.

#[derive(Clone, PartialEq, prost::Message)]
struct Logs {
    #[prost(message, repeated, tag = "1")]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceLogs {
    #[prost(message, repeated, tag = "2")]
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeLogs {
    #[prost(message, repeated, tag = "2")]
    log_records: Vec<LogRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LogRecord {
    #[prost(message, repeated, tag = "6")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    key: bytes::Bytes,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    /// `string_value` of the `value` oneof; its other members are skipped.
    #[prost(bytes = "bytes", optional, tag = "1")]
    string_value: Option<bytes::Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_otlp::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use usage_otlp::opentelemetry_proto::tonic::common::v1::{
        any_value::Value as Av, AnyValue as FullAny, KeyValue as FullKv,
    };
    use usage_otlp::opentelemetry_proto::tonic::logs::v1::{
        LogRecord as FullRecord, ResourceLogs as FullResource, ScopeLogs as FullScope,
    };
    use usage_otlp::opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, value: Av) -> FullKv {
        FullKv {
            key: key.into(),
            value: Some(FullAny { value: Some(value) }),
            ..Default::default()
        }
    }

    /// The ids the full opentelemetry-proto types encode are the ids read back,
    /// with other attributes, value kinds, bodies and resources around them.
    #[test]
    fn otlp_ids_are_read_from_what_the_full_types_encode() {
        let record = |id: Option<Av>| FullRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            body: Some(FullAny {
                value: Some(Av::StringValue("relay_usage".into())),
            }),
            attributes: [
                kv("project", Av::StringValue("p".repeat(32))),
                kv("cu", Av::IntValue(10)),
            ]
            .into_iter()
            .chain(id.map(|v| kv("event.id", v)))
            .chain([kv("origin", Av::StringValue(String::new()))])
            .collect(),
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![FullResource {
                resource: Some(Resource {
                    attributes: vec![kv("event.id", Av::StringValue("not a record's".into()))],
                    ..Default::default()
                }),
                scope_logs: vec![FullScope {
                    log_records: vec![
                        record(Some(Av::StringValue("a-1".into()))),
                        record(None),
                        record(Some(Av::IntValue(7))),
                        record(Some(Av::StringValue("a-2".into()))),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let ids = otlp_record_ids(&request.encode_to_vec()).unwrap();
        assert_eq!(ids, vec![Some("a-1".to_string()), None, None, Some("a-2".to_string())]);
        assert!(otlp_record_ids(&[0x0a, 0xff]).is_err(), "a length past the end");
    }

    #[test]
    fn a_json_line_gives_its_id_and_nothing_else_does() {
        let line = br#"{"id":"0192f1e4-7c1a-7000-8000-000000000001","ts":"2026-12-03T00:00:00.000000Z","kind":"relay_usage","project":"p","cu":10}"#;
        assert_eq!(
            json_line_id(line).as_deref(),
            Some("0192f1e4-7c1a-7000-8000-000000000001")
        );
        assert_eq!(json_line_id(br#"{"kind":"x","id":"a\"b"}"#).as_deref(), Some("a\"b"));
        assert_eq!(json_line_id(br#"{"kind":"x"}"#), None);
        assert_eq!(json_line_id(br#"{"id":7}"#), None);
        assert_eq!(json_line_id(b"{\"id\":\"x\""), None, "cut short");
    }
}
