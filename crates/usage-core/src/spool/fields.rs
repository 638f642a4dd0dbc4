//! A spooled event's fields, read in place.
//!
//! An exporter that lags reads its events back from the spool, writes each once (as
//! JSON, RowBinary, protobuf) and drops it. Decoding every field into owned values
//! first cost three allocations per event, a copy of every string and as many frees
//! on the way out; here the event keeps the bytes it was read from (a window of the
//! segment shared by the batch) and its fields are walked when an exporter visits
//! them. The walk is checked once, when the event is read: a record that does not
//! match its schema is refused there, like any undecodable record.

use super::codec::CodecError;
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
    /// Whether fields of this schema can be read in place: every type but string
    /// maps, which visitors borrow as owned pairs.
    pub(crate) fn supports(schema: &Schema) -> bool {
        schema.fields.iter().all(|f| f.ty != FieldType::StrMap)
    }

    /// The fields in `window[range]`, checked against `schema` (every field present,
    /// strings UTF-8, nothing left over). The schema must be [supported](Self::supports).
    pub(crate) fn new(schema: Arc<Schema>, window: Arc<Vec<u8>>, range: Range<usize>) -> Result<Self, CodecError> {
        let bytes = window
            .get(range.clone())
            .ok_or_else(|| CodecError("field bytes outside the record".into()))?;
        let mut walk = Walk { b: bytes };
        for def in schema.fields.iter() {
            match walk.next(def.ty, def.nullable)? {
                Raw::Str(s) => {
                    std::str::from_utf8(s).map_err(|_| CodecError(format!("field `{}` is not UTF-8", def.name)))?;
                }
                Raw::Unsupported => return Err(CodecError(format!("field `{}` cannot be read in place", def.name))),
                _ => {}
            }
        }
        if !walk.b.is_empty() {
            return Err(CodecError(format!("{} unexpected trailing bytes", walk.b.len())));
        }
        Ok(SpooledFields {
            schema,
            window,
            start: range.start,
            end: range.end,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.window.get(self.start..self.end).unwrap_or_default()
    }

    /// Calls `f` with each field's value until it returns false.
    fn walk<'a>(&'a self, f: &mut dyn FnMut(Value<'a>) -> bool) {
        let mut walk = Walk { b: self.bytes() };
        for def in self.schema.fields.iter() {
            // Checked when the event was read: an error here cannot happen, and would
            // end the walk rather than yield a wrong value.
            let Ok(raw) = walk.next(def.ty, def.nullable) else {
                return;
            };
            let value = match raw {
                Raw::Null | Raw::Unsupported => Value::Null,
                Raw::Str(s) => {
                    debug_assert!(std::str::from_utf8(s).is_ok());
                    // SAFETY: `new` checked that this field's bytes are UTF-8, walking
                    // the same immutable bytes (`window` is shared read-only and the
                    // range is fixed) with the same schema, so the walk finds the same
                    // slices. Checking again cost a tenth of reading events back.
                    Value::Str(unsafe { std::str::from_utf8_unchecked(s) })
                }
                Raw::Word(w) => match def.ty {
                    FieldType::I64 => Value::I64(w as i64),
                    FieldType::F64 => Value::F64(finite_or_zero(f64::from_bits(w))),
                    _ => Value::U64(w),
                },
                Raw::Bool(b) => Value::Bool(b),
            };
            if !f(value) {
                return;
            }
        }
    }
}

/// One encoded field, not yet interpreted.
enum Raw<'a> {
    Null,
    Str(&'a [u8]),
    Word(u64),
    Bool(bool),
    Unsupported,
}

/// A cursor over encoded fields (the layout is `codec`'s: a presence byte before a
/// nullable field, `u32` length and bytes for strings, 8 bytes for numbers, 1 for bools).
struct Walk<'a> {
    b: &'a [u8],
}

impl<'a> Walk<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.b.len() < n {
            return Err(CodecError("payload ends early".into()));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn word(&mut self) -> Result<u64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn next(&mut self, ty: FieldType, nullable: bool) -> Result<Raw<'a>, CodecError> {
        if nullable && self.take(1)?[0] == 0 {
            return Ok(Raw::Null);
        }
        Ok(match ty {
            FieldType::Str => {
                let mut a = [0u8; 4];
                a.copy_from_slice(self.take(4)?);
                Raw::Str(self.take(u32::from_le_bytes(a) as usize)?)
            }
            FieldType::I64 | FieldType::U64 | FieldType::F64 => Raw::Word(self.word()?),
            FieldType::Bool => Raw::Bool(self.take(1)?[0] != 0),
            FieldType::StrMap => Raw::Unsupported,
        })
    }
}

impl EventData for SpooledFields {
    fn dyn_schema(&self) -> &Schema {
        &self.schema
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
mod tests;
