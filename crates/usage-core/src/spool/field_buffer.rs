//! Events whose fields are encoded once, as they are received.
//!
//! A receiver (the gateway's OTLP endpoint) turns each record into an event that
//! is spooled and dropped. Building a [`Record`](crate::Record) for it cost a vector
//! of values, a box, a copy of every string, a walk of those values to encode them
//! for the spool and as many frees. Here the receiver writes each record's fields
//! straight into one buffer for its whole request, in the spool's field layout; the
//! events share that buffer, the spool copies their fields as they are, and an
//! exporter walks them in place like events read back from the spool.

use super::codec::{put_field, CodecError};
use super::fields::SpooledFields;
use crate::event::id::EventId;
use crate::event::resource::Resource;
use crate::event::schema::{FieldType, Schema};
use crate::event::time::Timestamp;
use crate::event::value::Value;
use crate::event::Event;
use std::ops::Range;
use std::sync::Arc;

/// Field values of many events, written one event after another into one buffer:
/// [`begin`](Self::begin) an event, [`push`](Self::push) each of its fields in
/// schema order, [`finish`](Self::finish) it; then [`share`](Self::share) the
/// buffer and build the events.
///
/// ```
/// use std::sync::Arc;
/// use usage_core::receive::absent_value;
/// use usage_core::{kind_schema, EventId, FieldBuffer, Timestamp, Value};
/// let schema = Arc::new(kind_schema("optimizer_qos").unwrap().clone());
/// let mut buf = FieldBuffer::with_capacity(4096);
/// buf.begin(&schema);
/// for def in schema.fields.iter() {
///     let absent = absent_value(&schema.kind, def);
///     let value = match def.name.as_ref() {
///         "provider" => Value::Str("lava@1abc"),
///         "chain_id" => Value::Str("LAV1"),
///         // A value of the wrong type is refused, naming the field.
///         "epoch" => {
///             let err = buf.push(Value::Str("7")).unwrap_err();
///             assert!(err.to_string().contains("`epoch`"));
///             Value::I64(7)
///         }
///         _ => absent.as_ref().unwrap().as_value(),
///     };
///     buf.push(value).unwrap();
/// }
/// let written = buf.finish().unwrap();
/// let shared = buf.share();
/// let ts = Timestamp::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
/// let e = shared.event(written, EventId::new_v7(ts), ts).unwrap();
/// assert_eq!(e.kind(), "optimizer_qos");
/// assert_eq!(e.field("provider"), Some(Value::Str("lava@1abc")));
/// assert_eq!(e.field("epoch"), Some(Value::I64(7)));
/// ```
#[derive(Debug, Default)]
pub struct FieldBuffer {
    bytes: Vec<u8>,
    finished: Vec<(Arc<Schema>, Range<usize>)>,
    /// The event being written: its schema, where it starts, fields pushed so far.
    open: Option<(Arc<Schema>, usize, usize)>,
}

/// One event [`finish`](FieldBuffer::finish)ed in a field buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenFields(usize);

/// A [`FieldBuffer`] once written: shared, read-only, by the events built from it.
#[derive(Debug, Clone)]
pub struct SharedFields {
    window: Arc<Vec<u8>>,
    finished: Vec<(Arc<Schema>, Range<usize>)>,
}

impl FieldBuffer {
    /// An empty buffer with room for `bytes` bytes of fields.
    pub fn with_capacity(bytes: usize) -> Self {
        FieldBuffer {
            bytes: Vec::with_capacity(bytes),
            ..Default::default()
        }
    }

    /// Starts an event of `schema`, forgetting one begun and not finished.
    pub fn begin(&mut self, schema: &Arc<Schema>) {
        self.abandon();
        self.open = Some((schema.clone(), self.bytes.len(), 0));
    }

    /// Appends the next field of the event begun. The value must have the field's
    /// type (null only for a nullable field); string maps are not kept here.
    #[inline]
    pub fn push(&mut self, value: Value<'_>) -> Result<(), CodecError> {
        let def = match &mut self.open {
            Some((schema, _, next)) => schema.fields.get(*next).filter(|def| match value {
                Value::Null => def.nullable,
                Value::StrMap(_) => false,
                v => v.field_type() == Some(def.ty),
            }),
            None => None,
        };
        let Some(def) = def else {
            return Err(self.refused(value));
        };
        put_field(&mut self.bytes, def.nullable, value);
        if let Some((_, _, next)) = &mut self.open {
            *next += 1;
        }
        Ok(())
    }

    /// Why `push` refused `value`.
    #[cold]
    #[inline(never)]
    fn refused(&self, value: Value<'_>) -> CodecError {
        let Some((schema, _, next)) = &self.open else {
            return CodecError("a field pushed with no event begun".into());
        };
        match schema.fields.get(*next) {
            Some(def) => CodecError(format!(
                "field `{}` ({}) cannot hold {} here",
                def.name,
                def.ty,
                value.field_type().map_or("null", FieldType::name)
            )),
            None => CodecError(format!(
                "kind `{}` has {} fields, one more pushed",
                schema.kind,
                schema.fields.len()
            )),
        }
    }

    /// Ends the event begun; refused (and the event forgotten) unless every field
    /// was pushed.
    pub fn finish(&mut self) -> Result<WrittenFields, CodecError> {
        let Some((schema, start, pushed)) = self.open.take() else {
            return Err(CodecError("no event begun".into()));
        };
        if pushed != schema.fields.len() {
            self.bytes.truncate(start);
            return Err(CodecError(format!(
                "kind `{}` has {} fields, {pushed} pushed",
                schema.kind,
                schema.fields.len()
            )));
        }
        self.finished.push((schema, start..self.bytes.len()));
        Ok(WrittenFields(self.finished.len() - 1))
    }

    /// Forgets the event begun and not finished (one refused half-way).
    pub fn abandon(&mut self) {
        if let Some((_, start, _)) = self.open.take() {
            self.bytes.truncate(start);
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Freezes the buffer (an event begun and not finished is forgotten) so the
    /// finished events can share it.
    pub fn share(mut self) -> SharedFields {
        self.abandon();
        // Events account for their own bytes only: give back room reserved and unused.
        if self.bytes.capacity() - self.bytes.len() > self.bytes.len() / 8 {
            self.bytes.shrink_to_fit();
        }
        SharedFields {
            window: Arc::new(self.bytes),
            finished: self.finished,
        }
    }
}

impl SharedFields {
    /// The event whose fields were `written` by the buffer this was shared from,
    /// with its id and time. `written` is a position: one from another buffer names
    /// this buffer's event at that position, or `None` past its last.
    pub fn event(&self, written: WrittenFields, id: EventId, ts: Timestamp) -> Option<Event> {
        Some(Event::from_spooled(id, ts, None, self.fields(written)?))
    }

    /// Appends [`SharedFields::event`] with `resource` to `out`, built where it
    /// lands (an event is a few hundred bytes: a receiver appending thousands per
    /// request saves a copy of each). Returns false, appending nothing, where
    /// `event` returns `None`.
    #[inline]
    pub fn push_event(
        &self,
        written: WrittenFields,
        (id, ts): (EventId, Timestamp),
        resource: Option<Arc<Resource>>,
        out: &mut Vec<Event>,
    ) -> bool {
        match self.fields(written) {
            Some(fields) => {
                out.push(Event::from_spooled(id, ts, resource, fields));
                true
            }
            None => false,
        }
    }

    #[inline]
    fn fields(&self, written: WrittenFields) -> Option<SpooledFields> {
        let (schema, range) = self.finished.get(written.0)?;
        Some(SpooledFields::written(
            schema.clone(),
            self.window.clone(),
            range.clone(),
        ))
    }
}

#[cfg(test)]
#[path = "field_buffer_tests.rs"]
mod tests;
