//! Which headers each message carries (`headers = [...]`).
//!
//! Every header is written per message by the producer and stored by the broker:
//! with one message per event, the default two (`kind`, `event-id`) add about 65
//! bytes and most of a record's encoding work (each header is four more writes into
//! the record batch). A consumer that reads the id and kind from the value, where
//! every message has them too, needs neither.

use std::ffi::CStr;
use usage_core::ConfigError;

/// The headers of one message per event.
const PER_EVENT: [&str; 2] = ["kind", "event-id"];
/// The headers of a packed (NDJSON) message.
const PACKED: [&str; 3] = ["kind", "event-count", "content-type"];

/// The headers chosen for this exporter's messages, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSet {
    kind: bool,
    event_id: bool,
    event_count: bool,
    content_type: bool,
}

impl HeaderSet {
    /// The set `names` gives (every header of the message shape when `None`); a
    /// name the shape does not write is an error naming `<prefix>.headers`.
    pub(crate) fn from_config(names: Option<&[String]>, packed: bool, prefix: &str) -> Result<Self, ConfigError> {
        let known: &[&str] = if packed { &PACKED } else { &PER_EVENT };
        let mut set = HeaderSet {
            kind: false,
            event_id: false,
            event_count: false,
            content_type: false,
        };
        let all: Vec<String> = known.iter().map(|n| n.to_string()).collect();
        for name in names.unwrap_or(&all) {
            let flag = match name.as_str() {
                "kind" => &mut set.kind,
                "event-id" if !packed => &mut set.event_id,
                "event-count" if packed => &mut set.event_count,
                "content-type" if packed => &mut set.content_type,
                _ => {
                    let shape = if packed {
                        "a packed message (events_per_message > 1)"
                    } else {
                        "one message per event"
                    };
                    return Err(ConfigError::key(
                        format!("{prefix}.headers"),
                        format!("{name:?} is not a header of {shape}: choose from {}", known.join(", ")),
                    ));
                }
            };
            *flag = true;
        }
        Ok(set)
    }

    /// The headers of one event's message.
    pub(crate) fn per_event<'a>(&self, kind: &'a str, id: &'a str) -> Headers<'a> {
        let mut h = Headers::default();
        h.push_if(self.kind, c"kind", kind.as_bytes());
        h.push_if(self.event_id, c"event-id", id.as_bytes());
        h
    }

    /// The headers of a packed message of `count` events (`count` in decimal).
    pub(crate) fn packed<'a>(&self, kind: &'a str, count: &'a str) -> Headers<'a> {
        let mut h = Headers::default();
        h.push_if(self.kind, c"kind", kind.as_bytes());
        h.push_if(self.event_count, c"event-count", count.as_bytes());
        h.push_if(self.content_type, c"content-type", b"application/x-ndjson");
        h
    }
}

/// One message's headers, at most three: names as C strings (what librdkafka
/// takes), values borrowed. librdkafka copies both when the message is produced.
#[derive(Default, Clone, Copy)]
pub(crate) struct Headers<'a> {
    list: [(&'static CStr, &'a [u8]); 3],
    len: usize,
}

impl<'a> Headers<'a> {
    fn push_if(&mut self, chosen: bool, name: &'static CStr, value: &'a [u8]) {
        if chosen && self.len < self.list.len() {
            self.list[self.len] = (name, value);
            self.len += 1;
        }
    }

    /// The headers, in the order written.
    pub(crate) fn as_slice(&self) -> &[(&'static CStr, &'a [u8])] {
        &self.list[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: Headers<'_>) -> Vec<(String, String)> {
        h.as_slice()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn every_header_of_the_shape_by_default() {
        let per_event = HeaderSet::from_config(None, false, "exporters.k").unwrap();
        assert_eq!(
            names(per_event.per_event("relay_usage", "id-1")),
            [
                ("kind".into(), "relay_usage".into()),
                ("event-id".into(), "id-1".into())
            ]
        );
        let packed = HeaderSet::from_config(None, true, "exporters.k").unwrap();
        assert_eq!(
            names(packed.packed("relay_usage", "7")),
            [
                ("kind".into(), "relay_usage".into()),
                ("event-count".into(), "7".into()),
                ("content-type".into(), "application/x-ndjson".into())
            ]
        );
    }

    #[test]
    fn only_the_chosen_headers_and_none_at_all() {
        let chosen = ["event-id".to_string()];
        let set = HeaderSet::from_config(Some(&chosen), false, "exporters.k").unwrap();
        assert_eq!(
            names(set.per_event("relay_usage", "id-1")),
            [("event-id".into(), "id-1".into())]
        );
        let none = HeaderSet::from_config(Some(&[]), false, "exporters.k").unwrap();
        assert!(none.per_event("relay_usage", "id-1").as_slice().is_empty());
        let none = HeaderSet::from_config(Some(&[]), true, "exporters.k").unwrap();
        assert!(none.packed("relay_usage", "7").as_slice().is_empty());
    }

    #[test]
    fn a_header_the_shape_does_not_write_is_named_in_the_error() {
        let e = HeaderSet::from_config(Some(&["event-count".to_string()]), false, "exporters.k").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("exporters.k.headers"), "{text}");
        assert!(
            text.contains("\"event-count\" is not a header of one message per event"),
            "{text}"
        );
        assert!(text.contains("kind, event-id"), "{text}");
        let e = HeaderSet::from_config(Some(&["event-id".to_string()]), true, "exporters.k").unwrap_err();
        assert!(e.to_string().contains("kind, event-count, content-type"), "{e}");
    }
}
