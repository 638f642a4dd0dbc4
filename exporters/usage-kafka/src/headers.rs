//! Which headers each message carries (`headers = [...]`).
//!
//! Every header is written per message by the producer and stored by the broker:
//! with one message per event, the default two (`kind`, `event-id`) add about 65
//! bytes and most of a record's encoding work (each header is four more writes into
//! the record batch). A consumer that reads the id and kind from the value, where
//! every message has them too, needs neither.

use rdkafka::message::{Header, OwnedHeaders};
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

    /// The headers of one event's message, or `None` when none are chosen (the
    /// message then carries no header block to allocate or write).
    pub(crate) fn per_event(&self, kind: &str, id: &str) -> Option<OwnedHeaders> {
        if !self.kind && !self.event_id {
            return None;
        }
        let mut h = OwnedHeaders::new_with_capacity(2);
        if self.kind {
            h = h.insert(Header {
                key: "kind",
                value: Some(kind),
            });
        }
        if self.event_id {
            h = h.insert(Header {
                key: "event-id",
                value: Some(id),
            });
        }
        Some(h)
    }

    /// The headers of a packed message of `count` events.
    pub(crate) fn packed(&self, kind: &str, count: usize) -> Option<OwnedHeaders> {
        if !self.kind && !self.event_count && !self.content_type {
            return None;
        }
        let mut h = OwnedHeaders::new_with_capacity(3);
        if self.kind {
            h = h.insert(Header {
                key: "kind",
                value: Some(kind),
            });
        }
        if self.event_count {
            h = h.insert(Header {
                key: "event-count",
                value: Some(&count.to_string()),
            });
        }
        if self.content_type {
            h = h.insert(Header {
                key: "content-type",
                value: Some("application/x-ndjson"),
            });
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn names(h: Option<OwnedHeaders>) -> Vec<(String, String)> {
        h.map(|h| {
            h.iter()
                .map(|x| {
                    (
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
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
            names(packed.packed("relay_usage", 7)),
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
        assert!(none.per_event("relay_usage", "id-1").is_none());
        let none = HeaderSet::from_config(Some(&[]), true, "exporters.k").unwrap();
        assert!(none.packed("relay_usage", 7).is_none());
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
