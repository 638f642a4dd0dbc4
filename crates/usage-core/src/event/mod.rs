//! The event model: envelope (id, time, kind), typed payloads and schemas.

pub(crate) mod builtin;
pub(crate) mod clock;
pub(crate) mod id;
pub(crate) mod kind;
pub(crate) mod record;
pub(crate) mod resource;
pub(crate) mod schema;
pub(crate) mod text;
pub(crate) mod time;
pub(crate) mod value;

use crate::spool::fields::SpooledFields;
use builtin::RelayUsage;
use id::EventId;
use kind::{EventData, EventKind};
use record::Record;
use resource::Resource;
use schema::Schema;
use std::fmt;
use std::sync::Arc;
use time::Timestamp;
use value::Value;

/// Where an event's payload lives. `relay_usage` is stored inline so the hot path
/// allocates nothing; other kinds are boxed.
#[doc(hidden)]
#[derive(Debug)]
// Inline on purpose: a box would be an allocation per emit and a free on another thread.
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    Relay(RelayUsage),
    Boxed(Box<dyn EventData>),
    /// Read back from the spool: the fields stay encoded in the bytes read.
    Spooled(SpooledFields),
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        match self {
            Payload::Relay(r) => Payload::Relay(r.clone()),
            Payload::Boxed(b) => Payload::Boxed(b.clone_boxed()),
            Payload::Spooled(s) => Payload::Spooled(s.clone()),
        }
    }
}

/// One usage event: an idempotency key, the event time, and a typed payload.
///
/// Events own all their data, so nothing a request borrowed can change after emit.
///
/// ```
/// use usage_core::{Event, EventId, RelayUsage, Timestamp};
/// let ts = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
/// let ev = Event::at(ts, RelayUsage { cu: 5, ..Default::default() });
/// assert_eq!(ev.kind(), "relay_usage");
/// assert_eq!(ev.ts(), ts);
/// // Re-sending keeps the id: that is what backends dedup on.
/// let id = ev.id();
/// assert_eq!(ev.clone().id(), id);
/// ```
#[derive(Clone)]
pub struct Event {
    id: EventId,
    ts: Timestamp,
    resource: Option<Arc<Resource>>,
    payload: Payload,
}

impl Event {
    /// An event that happens now, with a fresh UUIDv7.
    #[inline(always)]
    pub fn new<T: EventKind>(data: T) -> Self {
        Self::at(Timestamp::now(), data)
    }

    /// An event that happened at `ts`, with a fresh UUIDv7.
    #[inline(always)]
    pub fn at<T: EventKind>(ts: Timestamp, mut data: T) -> Self {
        data.sanitize();
        Event {
            id: EventId::new_v7(ts),
            ts,
            resource: None,
            payload: data.__into_payload(),
        }
    }

    /// An event from a run-time [`Record`], happening now.
    pub fn from_record(record: Record) -> Self {
        Self::from_record_at(Timestamp::now(), record)
    }

    /// An event from a run-time [`Record`] that happened at `ts`, with a fresh
    /// UUIDv7 (receivers, which know the time, need not read the clock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use usage_core::{kind_schema, Event, OwnedValue, Record, Timestamp};
    /// let schema = Arc::new(kind_schema("network_event").unwrap().clone());
    /// let values = vec![OwnedValue::Str("stream_started".into()), OwnedValue::Str("s-1".into()),
    ///     OwnedValue::Str("ingest".into()), OwnedValue::StrMap(vec![]), OwnedValue::Null];
    /// let ts = Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
    /// let e = Event::from_record_at(ts, Record::new(schema, values).unwrap());
    /// assert_eq!(e.ts(), ts);
    /// let b = *e.id().as_bytes();
    /// let millis = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
    /// assert_eq!(millis as i64, ts.as_micros() / 1000); // a UUIDv7 of the event's time
    /// ```
    pub fn from_record_at(ts: Timestamp, record: Record) -> Self {
        Event {
            id: EventId::new_v7(ts),
            ts,
            resource: None,
            payload: Payload::Boxed(Box::new(record)),
        }
    }

    /// A spooled event read back with its fields in place.
    #[inline]
    pub(crate) fn from_spooled(
        id: EventId,
        ts: Timestamp,
        resource: Option<Arc<Resource>>,
        fields: SpooledFields,
    ) -> Self {
        Event {
            id,
            ts,
            resource,
            payload: Payload::Spooled(fields),
        }
    }

    /// Replaces the id: for events received over the wire or re-sent, which must keep theirs.
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// Replaces the event time (the id keeps its original time prefix).
    pub fn with_ts(mut self, ts: Timestamp) -> Self {
        self.ts = ts;
        self
    }

    /// Attaches resource attributes that override the pipeline's (e.g. an event
    /// forwarded by the gateway keeps the sending service's name).
    pub fn with_resource(mut self, resource: Arc<Resource>) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The idempotency key.
    #[inline]
    pub fn id(&self) -> EventId {
        self.id
    }

    /// Event time.
    #[inline]
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// The event's own resource, if it overrides the pipeline's.
    pub fn resource(&self) -> Option<&Arc<Resource>> {
        self.resource.as_ref()
    }

    /// The payload, for encoders.
    #[inline]
    pub fn data(&self) -> &dyn EventData {
        match &self.payload {
            Payload::Relay(r) => r,
            Payload::Boxed(b) => b.as_ref(),
            Payload::Spooled(s) => s,
        }
    }

    /// The fields in the spool's encoding, when the event keeps them that way.
    #[inline]
    pub(crate) fn encoded_fields(&self) -> Option<&[u8]> {
        match &self.payload {
            Payload::Spooled(s) => Some(s.bytes()),
            _ => None,
        }
    }

    /// Kind name, e.g. `relay_usage`.
    #[inline]
    pub fn kind(&self) -> &str {
        &self.schema().kind
    }

    /// The kind's schema.
    #[inline]
    pub fn schema(&self) -> &Schema {
        self.data().dyn_schema()
    }

    /// Calls `f` once per field, in schema order.
    pub fn visit<'a>(&'a self, mut f: impl FnMut(Value<'a>)) {
        self.data().visit(&mut f)
    }

    /// Field values in schema order, collected (convenient in tests and encoders
    /// that need random access).
    pub fn values(&self) -> Vec<Value<'_>> {
        let mut v = Vec::with_capacity(self.schema().fields.len());
        self.data().visit(&mut |x| v.push(x));
        v
    }

    /// One field's value by name (works for typed kinds and decoded records alike).
    ///
    /// ```
    /// use usage_core::{Event, RelayUsage, Value};
    /// let e = Event::new(RelayUsage { cu: 7, ..Default::default() });
    /// assert_eq!(e.field("cu"), Some(Value::U64(7)));
    /// assert_eq!(e.field("nope"), None);
    /// ```
    pub fn field(&self, name: &str) -> Option<Value<'_>> {
        let index = self.schema().index_of(name)?;
        self.data().field_at(index)
    }

    /// The concrete payload, if it is a `T` built in this process and not yet
    /// written to the spool and read back.
    ///
    /// Events read back from the spool (after a restart, or by an exporter that fell
    /// behind) and events the gateway received keep their fields encoded: for them
    /// this is `None` whatever their kind. An exporter must read values with
    /// [`Event::field`], [`Event::visit`] or [`Event::values`], which work for every
    /// event, never with this.
    ///
    /// ```
    /// use usage_core::{Event, RelayUsage, Value};
    /// let e = Event::new(RelayUsage { cu: 7, ..Default::default() });
    /// assert_eq!(e.downcast_ref::<RelayUsage>().map(|r| r.cu), Some(7));
    /// assert_eq!(e.field("cu"), Some(Value::U64(7))); // what an exporter reads
    /// ```
    pub fn downcast_ref<T: EventKind>(&self) -> Option<&T> {
        self.data().as_any().downcast_ref::<T>()
    }

    /// Approximate memory the queued event holds: the envelope plus payload heap bytes.
    #[inline]
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Event>()
            + match &self.payload {
                Payload::Relay(r) => r.heap_bytes(),
                Payload::Boxed(b) => std::mem::size_of_val(b.as_ref()) + b.heap_bytes(),
                Payload::Spooled(s) => s.heap_bytes(),
            }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("ts", &format_args!("{}", self.ts))
            .field("kind", &self.kind())
            .field("data", &self.data())
            .finish()
    }
}

impl PartialEq for Event {
    /// Events are equal when id, time, kind and every value are equal.
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.ts == other.ts
            && self.kind() == other.kind()
            && self.resource.as_deref() == other.resource.as_deref()
            && self.values() == other.values()
    }
}
