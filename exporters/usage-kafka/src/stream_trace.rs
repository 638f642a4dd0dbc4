//! The envelope Daydream's consumers of `network_events` read (shared/interop.md):
//! `{"id":"<uuid>","type":"stream_trace","timestamp":"<ms>","data":{...}}`, so
//! replacing their API with `usage gateway` breaks no downstream consumer.

use serde_json::value::RawValue;
use std::io::Write as _;
use usage_core::{json, Event, Value};

/// Appends `e` (a `network_event`) as the envelope. `data` is the producer's payload
/// byte for byte when it sent one; otherwise it is built from the event's fields:
/// `type`, then `stream_id` and `pipeline` when set, then the string attributes.
pub(crate) fn write(out: &mut Vec<u8>, e: &Event, id: &str) {
    out.extend_from_slice(b"{\"id\":");
    json::write_str(out, id);
    out.extend_from_slice(b",\"type\":\"stream_trace\",\"timestamp\":\"");
    // Written straight into the message: no string per event.
    let _ = write!(out, "{}", e.ts().as_millis());
    out.extend_from_slice(b"\",\"data\":");
    match e.field("data") {
        // Verbatim only if it is JSON: a payload set by hand might not be.
        Some(Value::Str(raw)) if serde_json::from_str::<&RawValue>(raw).is_ok() => {
            out.extend_from_slice(raw.as_bytes())
        }
        _ => write_data_from_fields(out, e),
    }
    out.push(b'}');
}

fn write_data_from_fields(out: &mut Vec<u8>, e: &Event) {
    out.extend_from_slice(b"{\"type\":");
    let text = |name: &str| match e.field(name) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    json::write_str(out, text("event_type").unwrap_or("unknown"));
    for name in ["stream_id", "pipeline"] {
        if let Some(v) = text(name) {
            out.push(b',');
            json::write_str(out, name);
            out.push(b':');
            json::write_str(out, v);
        }
    }
    if let Some(Value::StrMap(attrs)) = e.field("attributes") {
        for (k, v) in attrs.iter() {
            if ["type", "stream_id", "pipeline"].contains(&k.as_str()) {
                continue; // the fields above win: keys must not repeat
            }
            out.push(b',');
            json::write_str(out, k);
            out.push(b':');
            json::write_str(out, v);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::{NetworkEvent, Text, Timestamp};

    fn parse(e: &Event) -> serde_json::Value {
        let mut out = Vec::new();
        write(&mut out, e, "0b9d1c5e-2f3a-4c1e-9a7b-1d2e3f4a5b6c");
        serde_json::from_slice(&out).expect("the envelope is JSON")
    }

    #[test]
    fn a_reporter_event_keeps_its_payload_byte_for_byte() {
        let data = r#"{"type":"stream_started","client_source":"scope","session_id":"s-9","pipeline_ids":["longlive"],"connection_info":{"ice":[1,{"a":null}]}}"#;
        let e = Event::new(NetworkEvent {
            event_type: Text::new("stream_started"),
            data: Some(Text::new(data)),
            ..Default::default()
        })
        .with_ts(Timestamp::from_micros(1_764_633_600_123_000));
        let v = parse(&e);
        assert_eq!(v["id"], "0b9d1c5e-2f3a-4c1e-9a7b-1d2e3f4a5b6c");
        assert_eq!(v["type"], "stream_trace");
        assert_eq!(v["timestamp"], "1764633600123");
        assert_eq!(v["data"], serde_json::from_str::<serde_json::Value>(data).unwrap());
        let mut out = Vec::new();
        write(&mut out, &e, "x");
        assert!(String::from_utf8(out).unwrap().contains(data), "verbatim");
    }

    #[test]
    fn without_a_payload_data_is_built_from_the_fields() {
        let e = Event::new(NetworkEvent {
            event_type: Text::new("stream_stopped"),
            stream_id: Text::new("s-1"),
            attributes: vec![("codec".into(), "h264".into()), ("type".into(), "forged".into())],
            data: Some(Text::new("not json {")),
            ..Default::default()
        });
        let v = parse(&e);
        assert_eq!(
            v["data"],
            serde_json::json!({"type": "stream_stopped", "stream_id": "s-1", "codec": "h264"})
        );
    }
}
