//! A spooled event's fields, read in place.
//!
//! An exporter that lags reads its events back from the spool, writes each once (as
//! JSON, RowBinary, protobuf) and drops it. Decoding every field into owned values
//! first cost three allocations per event, a copy of every string and as many frees
//! on the way out; here the event keeps the bytes it was read from (a window of the
//! segment shared by the batch) and its fields are walked when an exporter visits
//! them. The walk is checked once, when the event is read: a record that does not
//! match its schema is refused there, like any undecodable record. Events the
//! gateway receives keep their fields the same way from the start (written by a
//! [`FieldBuffer`](super::FieldBuffer), type-checked as they were pushed, so not
//! walked again).

use super::codec::{CodecError, RawField, Reader};
use crate::event::kind::EventData;
use crate::event::schema::{FieldType, Schema};
use crate::event::value::{finite_or_zero, Value};
use std::any::Any;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The fields of one spooled event: its schema and the encoded field bytes, which
/// live in a window of the segment shared with the other events read with it.
#[doc(hidden)]
#[derive(Clone)]
pub struct SpooledFields {
    schema: Arc<Schema>,
    window: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl SpooledFields {
    /// The fields in `window[range]`, checked against `schema` (every field present,
    /// strings UTF-8, nothing left over). `None` when the schema has a string map,
    /// which visitors borrow as owned pairs: such an event is decoded instead.
    pub(crate) fn new(
        schema: &Arc<Schema>,
        window: &Arc<Vec<u8>>,
        range: Range<usize>,
    ) -> Result<Option<Self>, CodecError> {
        let bytes = window
            .get(range.clone())
            .ok_or_else(|| CodecError("field bytes outside the record".into()))?;
        let mut r = Reader::new(bytes);
        for def in schema.fields.iter() {
            match r.field(def.ty, def.nullable)? {
                RawField::Str(s) if crate::receive::utf8(s).is_none() => {
                    return Err(CodecError(format!("field `{}` is not UTF-8", def.name)))
                }
                RawField::Map(_) => return Ok(None),
                _ => {}
            }
        }
        r.done()?;
        Ok(Some(SpooledFields {
            schema: schema.clone(),
            window: window.clone(),
            start: range.start,
            end: range.end,
        }))
    }

    /// Fields a [`FieldBuffer`](super::FieldBuffer) wrote for `schema` into
    /// `window[range]`: every field was pushed with its type checked and every string
    /// came from a `&str`, which is what `new` would check.
    pub(crate) fn written(schema: Arc<Schema>, window: Arc<Vec<u8>>, range: Range<usize>) -> Self {
        SpooledFields {
            schema,
            window,
            start: range.start,
            end: range.end,
        }
    }

    /// The encoded fields.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.window.get(self.start..self.end).unwrap_or_default()
    }

    /// Calls `f` with each field's value until it returns false.
    fn walk<'a>(&'a self, f: &mut dyn FnMut(Value<'a>) -> bool) {
        let mut r = Reader::new(self.bytes());
        for def in self.schema.fields.iter() {
            // Checked when the event was read: an error or a map here cannot happen,
            // and would end the walk rather than yield a wrong value.
            let value = match r.field(def.ty, def.nullable) {
                Ok(RawField::Null) => Value::Null,
                Ok(RawField::Str(s)) => {
                    debug_assert!(std::str::from_utf8(s).is_ok());
                    // SAFETY: `new` checked that this field's bytes are UTF-8, reading
                    // the same immutable bytes (`window` is shared read-only and the
                    // range is fixed) with the same schema and reader, so this walk
                    // finds the same slices; for `written` fields, a `FieldBuffer`
                    // wrote each string field from a `&str` in this layout for this
                    // schema. Checking again cost a tenth of reading events back.
                    Value::Str(unsafe { std::str::from_utf8_unchecked(s) })
                }
                Ok(RawField::Word(w)) => match def.ty {
                    FieldType::I64 => Value::I64(w as i64),
                    FieldType::F64 => Value::F64(finite_or_zero(f64::from_bits(w))),
                    _ => Value::U64(w),
                },
                Ok(RawField::Bool(b)) => Value::Bool(b),
                Ok(RawField::Map(_)) | Err(_) => return,
            };
            if !f(value) {
                return;
            }
        }
    }
}

impl EventData for SpooledFields {
    fn dyn_schema(&self) -> &Schema {
        &self.schema
    }

    fn shared_schema(&self) -> Option<&Arc<Schema>> {
        Some(&self.schema)
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Value<'a>)) {
        self.walk(&mut |v| {
            f(v);
            true
        });
    }

    fn field_at(&self, index: usize) -> Option<Value<'_>> {
        let mut i = 0;
        let mut found = None;
        self.walk(&mut |v| {
            if i == index {
                found = Some(v);
                return false;
            }
            i += 1;
            true
        });
        found
    }

    /// The field bytes (the window they live in is shared by the events read with it).
    fn heap_bytes(&self) -> usize {
        self.end - self.start
    }

    fn clone_boxed(&self) -> Box<dyn EventData> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl fmt::Debug for SpooledFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        let mut names = self.schema.fields.iter();
        self.visit(&mut |v| {
            if let Some(def) = names.next() {
                m.entry(&def.name, &v);
            }
        });
        m.finish()
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
pub(super) mod tests;
