//! Daydream's reporter events on `/v1/metrics` (`{"type","data","id","timestamp"}`,
//! shared/interop.md) as `network_event`s: `data` kept verbatim, `app`/`host` as the
//! resource. The mapping is documented in docs/http.md ("Stream events").

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value as J;
use std::sync::Arc;
use usage_core::receive::RejectReason;
use usage_core::{Event, EventId, NetworkEvent, Resource, Text, Timestamp};

/// One reporter event as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamEvent<'a> {
    #[serde(rename = "type")]
    ty: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<J>,
    #[serde(default)]
    timestamp: Option<J>,
}

/// The body's `app` and `host`, shared by its events.
pub(crate) struct Origin {
    pub resource: Option<Arc<Resource>>,
    /// Seeds content-derived ids (`app`, `host`).
    pub seed: u64,
}

impl Origin {
    pub(crate) fn new(app: Option<&str>, host: Option<&str>) -> Self {
        let resource = (app.is_some() || host.is_some()).then(|| {
            Arc::new(Resource {
                service_name: Text::new(app.unwrap_or("unknown_service")),
                service_instance_id: Text::new(host.unwrap_or_default()),
            })
        });
        let seed = EventId::content_seed(&[app.unwrap_or_default().as_bytes(), host.unwrap_or_default().as_bytes()]);
        Origin { resource, seed }
    }
}

/// A reporter event as a `network_event`, or why it cannot be one.
pub(crate) fn decode(raw: &RawValue, origin: &Origin) -> Result<Event, (RejectReason, String)> {
    let ev: StreamEvent<'_> =
        serde_json::from_str(raw.get()).map_err(|e| (RejectReason::Malformed, format!("stream event: {e}")))?;
    let ts = match &ev.timestamp {
        None | Some(J::Null) => None,
        Some(t) => Some(timestamp(t).ok_or_else(|| {
            (
                RejectReason::BadTime,
                format!("field `timestamp`: {t} is neither milliseconds since the epoch nor RFC 3339"),
            )
        })?),
    };
    let id = match &ev.id {
        None | Some(J::Null) => EventId::from_content(ts, origin.seed, raw.get().as_bytes()),
        Some(J::String(s)) => s
            .parse()
            .map_err(|e| (RejectReason::BadId, format!("field `id`: not a UUID: {e}")))?,
        Some(other) => return Err((RejectReason::BadId, format!("field `id`: {other} is not a UUID string"))),
    };
    let (mut stream_id, mut pipeline, mut attributes) = (Text::default(), Text::default(), Vec::new());
    if let Some(data) = ev.data {
        let J::Object(fields) = serde_json::from_str::<J>(data.get())
            .map_err(|e| (RejectReason::Malformed, format!("field `data`: {e}")))?
        else {
            return Err((RejectReason::WrongType, "field `data` must be an object".into()));
        };
        stream_id = first_string(&fields, &["session_id", "connection_id", "stream_id"]);
        pipeline = pipelines(&fields);
        for (k, v) in &fields {
            let text = match v {
                J::String(s) => Text::new(s),
                J::Number(n) => Text::new(n.to_string()),
                J::Bool(b) => Text::new_static(if *b { "true" } else { "false" }),
                _ => continue,
            };
            if k != "type" {
                attributes.push((Text::new(k), text));
            }
        }
    }
    let mut event = Event::new(NetworkEvent {
        event_type: Text::new(&ev.ty),
        stream_id,
        pipeline,
        attributes,
        data: ev.data.map(|d| Text::new(d.get())),
    })
    .with_id(id);
    // No timestamp: the time it arrived (the id does not depend on it).
    event = event.with_ts(ts.unwrap_or_else(Timestamp::now));
    if let Some(r) = &origin.resource {
        event = event.with_resource(r.clone());
    }
    Ok(event)
}

/// Milliseconds since the epoch (a decimal string or a number), or RFC 3339.
fn timestamp(t: &J) -> Option<Timestamp> {
    let millis = match t {
        J::Number(n) => n.as_i64()?,
        J::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
        J::String(s) => return Timestamp::parse_rfc3339(s).ok(),
        _ => return None,
    };
    Some(Timestamp::from_micros(millis.checked_mul(1000)?))
}

fn first_string(fields: &serde_json::Map<String, J>, keys: &[&str]) -> Text {
    keys.iter()
        .find_map(|k| fields.get(*k).and_then(J::as_str))
        .map(Text::new)
        .unwrap_or_default()
}

/// `pipeline_ids` joined with `,`, or `pipeline_id`.
fn pipelines(fields: &serde_json::Map<String, J>) -> Text {
    match fields.get("pipeline_ids") {
        Some(J::Array(ids)) => Text::new(ids.iter().filter_map(J::as_str).collect::<Vec<_>>().join(",")),
        _ => first_string(fields, &["pipeline_id"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::Value;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn a_reporter_event_maps_onto_network_event_with_data_verbatim() {
        let data = r#"{"type":"stream_started","client_source":"scope","session_id":"s-1","pipeline_ids":["a","b"],"error":{"code":3,"trace":[1,2]},"n":1.5}"#;
        let text = format!(
            r#"{{"type":"stream_started","data":{data},"id":"6f1c2a4e-8b7d-4c3e-9a2b-1d0e5f6a7b8c","timestamp":"1764633600123"}}"#
        );
        let origin = Origin::new(Some("scope"), Some("host-1"));
        let e = decode(&raw(&text), &origin).unwrap();
        assert_eq!(e.kind(), "network_event");
        assert_eq!(e.id().to_string(), "6f1c2a4e-8b7d-4c3e-9a2b-1d0e5f6a7b8c");
        assert_eq!(e.ts(), Timestamp::from_micros(1_764_633_600_123_000));
        assert_eq!(e.field("event_type"), Some(Value::Str("stream_started")));
        assert_eq!(e.field("stream_id"), Some(Value::Str("s-1")));
        assert_eq!(e.field("pipeline"), Some(Value::Str("a,b")));
        assert_eq!(e.field("data"), Some(Value::Str(data)));
        let Some(Value::StrMap(attrs)) = e.field("attributes") else {
            panic!()
        };
        let keys: Vec<&str> = attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["client_source", "n", "session_id"]);
        let r = e.resource().unwrap();
        assert_eq!(
            (r.service_name.as_str(), r.service_instance_id.as_str()),
            ("scope", "host-1")
        );
    }

    #[test]
    fn timestamps_ids_and_their_errors() {
        let origin = Origin::new(Some("scope"), None);
        let rfc = decode(&raw(r#"{"type":"x","timestamp":"2025-12-02T00:00:00.5Z"}"#), &origin).unwrap();
        assert_eq!(rfc.ts(), Timestamp::parse_rfc3339("2025-12-02T00:00:00.5Z").unwrap());
        // Without an id: derived from the bytes, the same on a re-send.
        let text = r#"{"type":"x","data":{"session_id":"s"},"timestamp":1764633600000}"#;
        let (a, b) = (
            decode(&raw(text), &origin).unwrap(),
            decode(&raw(text), &origin).unwrap(),
        );
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().uuid().get_version_num(), 8);
        let untimed = r#"{"type":"x"}"#;
        assert_eq!(
            decode(&raw(untimed), &origin).unwrap().id(),
            decode(&raw(untimed), &origin).unwrap().id()
        );
        let err = |t: &str| decode(&raw(t), &origin).unwrap_err();
        assert_eq!(err(r#"{"type":"x","timestamp":"soon"}"#).0, RejectReason::BadTime);
        assert_eq!(err(r#"{"type":"x","id":"nope"}"#).0, RejectReason::BadId);
        assert_eq!(err(r#"{"type":"x","data":[1]}"#).0, RejectReason::WrongType);
        let unknown = err(r#"{"type":"x","extra":1}"#);
        assert_eq!(unknown.0, RejectReason::Malformed);
        assert!(unknown.1.contains("unknown field `extra`"), "{}", unknown.1);
        assert_eq!(err(r#"{"data":{}}"#).0, RejectReason::Malformed);
    }
}
