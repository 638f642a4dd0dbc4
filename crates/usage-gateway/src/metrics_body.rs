//! The `/v1/metrics` body, `{"app"?, "host"?, "events": [...]}`, read without
//! building a tree: each event stays a borrowed slice of the body, and the read stops
//! at `max_events + 1` events, so an oversized request is refused before it costs
//! memory in proportion to its element count.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The body's parts; other top-level keys are ignored.
pub(crate) struct Body<'a> {
    pub app: Option<Cow<'a, str>>,
    pub host: Option<Cow<'a, str>>,
    pub events: Vec<&'a RawValue>,
}

/// Why a body cannot be taken as a whole.
pub(crate) enum BodyError {
    /// More than the limit of events.
    TooMany(usize),
    /// Not a body at all.
    Invalid(String),
}

/// Marker in the serde error for "too many events" (never shown to a client).
const TOO_MANY: &str = "\u{0}too many events";

/// Parses a body, refusing at the first event beyond `max_events`.
pub(crate) fn parse(raw: &[u8], max_events: usize) -> Result<Body<'_>, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let body = BodySeed { max_events }
        .deserialize(&mut de)
        .and_then(|b| de.end().map(|()| b));
    body.map_err(|e| {
        if e.to_string().starts_with(TOO_MANY) {
            BodyError::TooMany(max_events)
        } else {
            BodyError::Invalid(format!("body: expected {{\"events\": [...]}}: {e}"))
        }
    })
}

struct BodySeed {
    max_events: usize,
}

impl<'de> DeserializeSeed<'de> for BodySeed {
    type Value = Body<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with an `events` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut app, mut host, mut events) = (None, None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "app" => app = map.next_value::<Option<Cow<'de, str>>>()?,
                "host" => host = map.next_value::<Option<Cow<'de, str>>>()?,
                "events" => {
                    events = Some(map.next_value_seed(EventsSeed {
                        max_events: self.max_events,
                    })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let events = events.ok_or_else(|| de::Error::missing_field("events"))?;
        Ok(Body { app, host, events })
    }
}

struct EventsSeed {
    max_events: usize,
}

impl<'de> DeserializeSeed<'de> for EventsSeed {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max_events).min(1024));
        while let Some(event) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max_events {
                return Err(de::Error::custom(TOO_MANY));
            }
            out.push(event);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_borrowed_and_other_keys_ignored() {
        let raw = br#"{"app":"scope","extra":{"x":[1]},"host":"h","events":[{"type":"a"}, 7]}"#;
        let Ok(b) = parse(raw, 10) else { panic!("parses") };
        assert_eq!((b.app.as_deref(), b.host.as_deref()), (Some("scope"), Some("h")));
        let texts: Vec<&str> = b.events.iter().map(|e| e.get()).collect();
        assert_eq!(texts, [r#"{"type":"a"}"#, "7"]);
    }

    #[test]
    fn the_read_stops_at_the_limit_and_bad_bodies_say_why() {
        let many = format!("{{\"events\":[{}]}}", vec!["0"; 1_000_000].join(","));
        assert!(matches!(parse(many.as_bytes(), 500), Err(BodyError::TooMany(500))));
        assert!(parse(b"{\"events\":[0,0]}", 2).is_ok());
        for bad in [
            &b"{\"evts\":[]}"[..],
            b"[]",
            b"{\"events\":3}",
            b"{\"events\":[]} x",
            b"nope",
        ] {
            match parse(bad, 10) {
                Err(BodyError::Invalid(m)) => assert!(m.starts_with("body: expected {\"events\": [...]}"), "{m}"),
                _ => panic!("{:?} accepted", String::from_utf8_lossy(bad)),
            }
        }
    }
}
