//! The one JSON encoding shared by the file, S3, Kafka and HTTP exporters.
//!
//! A flat object: `id` (UUID), `ts` (RFC 3339, microseconds, UTC), `kind`, every
//! field of the kind under its own name (null for an absent optional, an object for
//! a string map), then `service_name` and `service_instance_id`. See `docs/encoding.md`.
//!
//! ```
//! use usage_core::{json, Event, RelayUsage, Resource, Timestamp};
//! let ts = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
//! let ev = Event::at(ts, RelayUsage { project: "acme".into(), cu: 10, ..Default::default() });
//! let text = json::to_string(&ev, &Resource::new("relay").with_instance_id("h-1"));
//! assert!(text.starts_with(&format!("{{\"id\":\"{}\",\"ts\":\"2026-11-21T10:00:00.000000Z\",\"kind\":\"relay_usage\",\"project\":\"acme\"", ev.id())));
//! assert!(text.ends_with("\"service_name\":\"relay\",\"service_instance_id\":\"h-1\"}"));
//! let back = json::decode_event(text.as_bytes()).unwrap();
//! assert_eq!(back.id(), ev.id());
//! assert_eq!(back.values(), ev.values());
//! ```

use crate::event::resource::Resource;
use crate::event::value::Value;
use crate::event::Event;
use escape::{needs_escape, write_escaped};
use std::borrow::Cow;

mod decode;
mod escape;
mod keys;
mod shape;

pub use decode::{decode_event, DecodeError, Decoder};
pub use shape::{container_count, decoded_bytes_bound, value_count, within_decode_budget, VALUE_BYTES};

/// Appends one event as a JSON object (no trailing newline).
pub fn write_event(out: &mut Vec<u8>, event: &Event, resource: &Resource) {
    let resource = event.resource().map_or(resource, |r| r.as_ref());
    out.extend_from_slice(b"{\"id\":\"");
    event.id().write_str(out);
    out.extend_from_slice(b"\",\"ts\":\"");
    event.ts().write_rfc3339(out);
    out.extend_from_slice(b"\",\"kind\":");
    write_str(out, event.kind());
    write_fields(out, event);
    out.extend_from_slice(b",\"service_name\":");
    write_str(out, &resource.service_name);
    out.extend_from_slice(b",\"service_instance_id\":");
    write_str(out, &resource.service_instance_id);
    out.push(b'}');
}

/// The event id a line written by [`write_event`] starts with, read back from the
/// line: for a caller that needs the id beside the line (a Kafka key) and would
/// otherwise format it a second time. `None` for anything else.
///
/// ```
/// use usage_core::{json, Event, RelayUsage, Resource};
/// let event = Event::new(RelayUsage::default());
/// let mut line = Vec::new();
/// json::write_event(&mut line, &event, &Resource::default());
/// assert_eq!(json::written_id(&line), Some(event.id().to_string().as_str()));
/// assert_eq!(json::written_id(b"{\"ts\":1}"), None);
/// ```
pub fn written_id(line: &[u8]) -> Option<&str> {
    const HYPHENATED: usize = 36;
    let rest = line.strip_prefix(b"{\"id\":\"")?;
    if rest.get(HYPHENATED) != Some(&b'"') {
        return None;
    }
    std::str::from_utf8(&rest[..HYPHENATED]).ok()
}

/// Every field of `event` as `,"name":value`; a static schema's keys come
/// written (see [`keys`]).
#[inline]
fn write_fields(out: &mut Vec<u8>, event: &Event) {
    let schema = event.schema();
    if let Cow::Borrowed(fields) = &schema.fields {
        let written = keys::with(fields, |keys| {
            let mut index = 0;
            event.visit(|v| {
                if let Some(key) = keys.get(index) {
                    out.extend_from_slice(key);
                    write_value(out, v);
                }
                index += 1;
            });
        });
        if written.is_some() {
            return;
        }
    }
    let mut fields = schema.fields.iter();
    event.visit(|v| {
        if let Some(def) = fields.next() {
            write_key(out, &def.name);
            write_value(out, v);
        }
    });
}

/// One event as a JSON string.
pub fn to_string(event: &Event, resource: &Resource) -> String {
    let mut out = Vec::with_capacity(512);
    write_event(&mut out, event, resource);
    // The encoder only writes valid UTF-8 (escaped strings and ASCII).
    String::from_utf8(out).unwrap_or_default()
}

/// Appends events as newline-delimited JSON (one object per line).
pub fn write_ndjson<'a>(out: &mut Vec<u8>, events: impl IntoIterator<Item = &'a Event>, resource: &Resource) {
    for e in events {
        write_event(out, e, resource);
        out.push(b'\n');
    }
}

/// Appends one value.
pub fn write_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Str(s) => write_str(out, s),
        Value::I64(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::U64(u) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
        Value::F64(f) if f.is_finite() => out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes()),
        Value::F64(_) => out.push(b'0'),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::StrMap(m) => {
            out.push(b'{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_str(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Appends a JSON string literal with escaping. A string without special bytes
/// (the usual case: ids, names, hashes) is checked a word at a time and copied whole.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    }
}

/// Appends `,"name":`, the key of an object member after the first.
#[inline]
fn write_key(out: &mut Vec<u8>, name: &str) {
    let bytes = name.as_bytes();
    if needs_escape(bytes) {
        out.push(b',');
        write_escaped(out, bytes);
        out.push(b':');
    } else {
        out.reserve(bytes.len() + 4);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\":");
    }
}

#[cfg(test)]
#[path = "json/tests.rs"]
mod tests;
