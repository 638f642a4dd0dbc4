//! `POST /v1/logs`: an OTLP/HTTP logs receiver (protobuf or JSON) that turns log
//! records back into events (kind from the body, fields from the attributes, id
//! from `event.id`) and feeds the same pipeline, so the gateway can stand where a
//! per-host collector stands.

use crate::server::{accept_events, body_bytes, error, Gateway};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use usage_core::{
    kind_schema, Event, EventId, FieldDef, FieldType, OwnedValue, Record, Resource, Schema, Text, Timestamp,
};

/// The attribute carrying the event id (as the `otlp` exporter writes it).
const ID_ATTRIBUTE: &str = "event.id";

pub(crate) fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/logs", post(logs))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
}

async fn logs(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let json = is_json(&headers);
    let r = accept_events(&g, &headers, |g| decode(g, &headers, body, json)).await;
    if r.status() != StatusCode::ACCEPTED {
        return r;
    }
    // OTLP clients expect 200 with an ExportLogsServiceResponse.
    let resp = ExportLogsServiceResponse { partial_success: None };
    if json {
        let body = serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into());
        (StatusCode::OK, [("content-type", "application/json")], body).into_response()
    } else {
        (StatusCode::OK, [("content-type", "application/x-protobuf")], resp.encode_to_vec()).into_response()
    }
}

fn decode(g: &Gateway, headers: &HeaderMap, body: Bytes, json: bool) -> Result<Vec<Event>, Response> {
    let raw = body_bytes(headers, body, g.cfg.max_body)?;
    let bad = |m: String| {
        g.counters.reject("invalid");
        error(StatusCode::BAD_REQUEST, m)
    };
    let req: ExportLogsServiceRequest = if json {
        serde_json::from_slice(&raw).map_err(|e| bad(format!("body: invalid OTLP/JSON: {e}")))?
    } else {
        ExportLogsServiceRequest::decode(&raw[..]).map_err(|e| bad(format!("body: invalid OTLP protobuf: {e}")))?
    };
    let mut out = Vec::new();
    for (ri, rl) in req.resource_logs.iter().enumerate() {
        let attrs = rl.resource.as_ref().map(|r| &r.attributes[..]).unwrap_or(&[]);
        let res = Arc::new(Resource {
            service_name: Text::new(string_attr(attrs, "service.name").unwrap_or("unknown_service")),
            service_instance_id: Text::new(string_attr(attrs, "service.instance.id").unwrap_or_default()),
        });
        for (si, sl) in rl.scope_logs.iter().enumerate() {
            for (li, lr) in sl.log_records.iter().enumerate() {
                let at = |m: String| bad(format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]: {m}"));
                if out.len() >= g.cfg.max_events {
                    g.counters.reject("too_large");
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("more than {} log records in one request", g.cfg.max_events),
                    ));
                }
                let kind = match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(Av::StringValue(k)) => k.clone(),
                    _ => return Err(at("body must be the event kind as a string".into())),
                };
                let nanos = if lr.time_unix_nano > 0 { lr.time_unix_nano } else { lr.observed_time_unix_nano };
                let ts = Timestamp::from_micros((nanos / 1000) as i64);
                let map: HashMap<&str, &Av> =
                    lr.attributes.iter().filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?.value.as_ref()?))).collect();
                let schema = match kind_schema(&kind) {
                    Some(s) => Arc::new(s.clone()),
                    None if g.cfg.allow_unknown_kinds => Arc::new(infer(&kind, &lr.attributes)),
                    None => return Err(at(format!("unknown event kind `{kind}`"))),
                };
                let values = values(&schema, &map).map_err(at)?;
                let record = Record::new(schema, values).map_err(|e| at(e.to_string()))?;
                let mut event = Event::from_record(record).with_ts(ts).with_resource(res.clone());
                match map.get(ID_ATTRIBUTE) {
                    Some(Av::StringValue(id)) => {
                        let id: EventId = id.parse().map_err(|_| at(format!("attribute `{ID_ATTRIBUTE}`: not a UUID")))?;
                        event = event.with_id(id);
                    }
                    Some(_) => return Err(at(format!("attribute `{ID_ATTRIBUTE}` must be a string"))),
                    // Producers other than the `otlp` exporter: a fresh id (no dedup across their retries).
                    None => {}
                }
                out.push(event);
            }
        }
    }
    Ok(out)
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        Av::StringValue(s) => Some(s.as_str()),
        _ => None,
    })
}

/// The schema's fields from the attributes; errors name the attribute.
fn values(schema: &Schema, map: &HashMap<&str, &Av>) -> Result<Vec<OwnedValue>, String> {
    let mut out = Vec::with_capacity(schema.fields.len());
    for f in schema.fields.iter() {
        let name = f.name.as_ref();
        if f.ty == FieldType::StrMap {
            let prefix = format!("{name}.");
            let mut m: Vec<(Text, Text)> = map
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.strip_prefix(&prefix)?;
                    match v {
                        Av::StringValue(s) => Some((Text::new(key), Text::new(s))),
                        _ => None,
                    }
                })
                .collect();
            m.sort();
            out.push(OwnedValue::StrMap(m));
            continue;
        }
        let v = match (f.ty, map.get(name)) {
            (_, None) if f.nullable => OwnedValue::Null,
            (_, None) => return Err(format!("attribute `{name}` ({}) is missing", f.ty)),
            (FieldType::Str, Some(Av::StringValue(s))) => OwnedValue::Str(Text::new(s)),
            (FieldType::U64, Some(Av::IntValue(i))) if *i >= 0 => OwnedValue::U64(*i as u64),
            (FieldType::U64, Some(Av::DoubleValue(d))) if *d >= 0.0 && d.fract() == 0.0 => OwnedValue::U64(*d as u64),
            (FieldType::I64, Some(Av::IntValue(i))) => OwnedValue::I64(*i),
            (FieldType::F64, Some(Av::DoubleValue(d))) => OwnedValue::F64(*d),
            (FieldType::F64, Some(Av::IntValue(i))) => OwnedValue::F64(*i as f64),
            (FieldType::Bool, Some(Av::BoolValue(b))) => OwnedValue::Bool(*b),
            (ty, Some(other)) => return Err(format!("attribute `{name}` must be {ty}, got {}", av_type(other))),
        };
        out.push(v);
    }
    Ok(out)
}

fn av_type(v: &Av) -> &'static str {
    match v {
        Av::StringValue(_) => "a string",
        Av::BoolValue(_) => "a bool",
        Av::IntValue(_) => "an int",
        Av::DoubleValue(_) => "a double",
        Av::ArrayValue(_) => "an array",
        Av::KvlistValue(_) => "a map",
        Av::BytesValue(_) => "bytes",
        _ => "an unsupported value",
    }
}

/// A schema from the attributes of a kind this binary does not know.
fn infer(kind: &str, attrs: &[KeyValue]) -> Schema {
    let fields = attrs
        .iter()
        .filter(|kv| kv.key != ID_ATTRIBUTE)
        .filter_map(|kv| {
            let ty = match kv.value.as_ref()?.value.as_ref()? {
                Av::StringValue(_) => FieldType::Str,
                Av::BoolValue(_) => FieldType::Bool,
                Av::IntValue(_) => FieldType::I64,
                Av::DoubleValue(_) => FieldType::F64,
                _ => return None,
            };
            let name: String = kv.key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
            Some(FieldDef {
                name: Cow::Owned(name),
                ty,
                nullable: false,
            })
        })
        .collect();
    Schema {
        kind: Cow::Owned(kind.to_string()),
        fields: Cow::Owned(fields),
    }
}
