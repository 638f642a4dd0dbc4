//! Binary encoding of events inside spool records.
//!
//! A spool is self-describing: schema records (kind, field names, types) and resource
//! records travel with the events, so any binary can replay any segment, including
//! kinds it was not compiled with.
//!
//! Event payload, format 2: `schema ref u64 | id [16] | ts i64 | resource`, where the
//! resource is `0` (none), `1 | name | instance` (inline) or `2 | resource ref u64`;
//! references are fingerprints of a schema or resource record (see `catalog`).
//! Format 1 had `schema index u16` first (a schema record's position in the same
//! segment) and `0` meant the segment's resource record.
//! Then each field in schema order: nullable fields start with a presence byte;
//! strings are `u32 length | bytes`, integers and floats 8 bytes little-endian,
//! bools 1 byte, string maps `u32 count | (key, value)*`.

use super::catalog::{fingerprint, Catalog};
use super::fields::SpooledFields;
use crate::event::id::EventId;
use crate::event::record::Record;
use crate::event::resource::Resource;
use crate::event::schema::{FieldDef, FieldType, Schema};
use crate::event::time::Timestamp;
use crate::event::value::{OwnedValue, Text, Value};
use crate::event::Event;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// Why encoded fields or a spool payload could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub(crate) String);

fn err<T>(msg: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(msg.into()))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_code(t: FieldType) -> u8 {
    match t {
        FieldType::Str => 1,
        FieldType::I64 => 2,
        FieldType::U64 => 3,
        FieldType::F64 => 4,
        FieldType::Bool => 5,
        FieldType::StrMap => 6,
    }
}

fn field_type(code: u8) -> Result<FieldType, CodecError> {
    Ok(match code {
        1 => FieldType::Str,
        2 => FieldType::I64,
        3 => FieldType::U64,
        4 => FieldType::F64,
        5 => FieldType::Bool,
        6 => FieldType::StrMap,
        other => return err(format!("unknown field type code {other}")),
    })
}

/// Encodes a schema record payload.
pub(crate) fn encode_schema(out: &mut Vec<u8>, s: &Schema) {
    put_str(out, &s.kind);
    out.extend_from_slice(&(s.fields.len() as u16).to_le_bytes());
    for f in s.fields.iter() {
        put_str(out, &f.name);
        out.push(type_code(f.ty));
        out.push(u8::from(f.nullable));
    }
}

/// Encodes a resource record payload.
pub(crate) fn encode_resource(out: &mut Vec<u8>, r: &Resource) {
    put_str(out, &r.service_name);
    put_str(out, &r.service_instance_id);
}

/// Encodes a format-2 event record payload. `schema_ref` names its schema record;
/// an event without its own resource refers to `default_resource`.
pub(crate) fn encode_event(out: &mut Vec<u8>, schema_ref: u64, default_resource: u64, e: &Event) {
    out.extend_from_slice(&schema_ref.to_le_bytes());
    out.extend_from_slice(e.id().as_bytes());
    out.extend_from_slice(&e.ts().as_micros().to_le_bytes());
    match e.resource() {
        Some(r) => {
            out.push(1);
            encode_resource(out, r);
        }
        None => {
            out.push(2);
            out.extend_from_slice(&default_resource.to_le_bytes());
        }
    }
    // Fields already in this layout (read back, or received into a field buffer)
    // are copied as they are.
    if let Some(fields) = e.encoded_fields() {
        out.extend_from_slice(fields);
        return;
    }
    let schema = e.schema();
    let mut defs = schema.fields.iter();
    e.visit(|v| put_field(out, defs.next().is_some_and(|d| d.nullable), v));
}

/// One field's value in the layout of the module docs.
#[inline]
pub(crate) fn put_field(out: &mut Vec<u8>, nullable: bool, v: Value<'_>) {
    if nullable {
        out.push(u8::from(v != Value::Null));
    }
    match v {
        Value::Null => {}
        Value::Str(s) => put_str(out, s),
        Value::I64(i) => out.extend_from_slice(&i.to_le_bytes()),
        Value::U64(u) => out.extend_from_slice(&u.to_le_bytes()),
        Value::F64(f) => out.extend_from_slice(&f.to_le_bytes()),
        Value::Bool(b) => out.push(u8::from(b)),
        Value::StrMap(m) => {
            out.extend_from_slice(&(m.len() as u32).to_le_bytes());
            for (k, v) in m {
                put_str(out, k);
                put_str(out, v);
            }
        }
    }
}

/// A cursor over a payload.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
}

/// One encoded field, not yet interpreted: a string's bytes are not yet checked as
/// UTF-8, a string map's entries not yet read.
pub(crate) enum RawField<'a> {
    Null,
    Str(&'a [u8]),
    /// An `i64`, `u64` or `f64`'s 8 bytes.
    Word(u64),
    Bool(bool),
    /// A string map of this many entries; they follow.
    Map(usize),
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }

    /// The next field of type `ty`, in the layout of the module docs.
    pub(crate) fn field(&mut self, ty: FieldType, nullable: bool) -> Result<RawField<'a>, CodecError> {
        if nullable && self.u8()? == 0 {
            return Ok(RawField::Null);
        }
        Ok(match ty {
            FieldType::Str => {
                let n = self.u32()? as usize;
                RawField::Str(self.take(n)?)
            }
            FieldType::I64 | FieldType::U64 | FieldType::F64 => RawField::Word(self.u64()?),
            FieldType::Bool => RawField::Bool(self.u8()? != 0),
            FieldType::StrMap => RawField::Map(self.u32()? as usize),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.b.len() < n {
            return err("payload ends early");
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let n = self.u32()? as usize;
        utf8(self.take(n)?)
    }

    fn skip_str(&mut self) -> Result<(), CodecError> {
        let n = self.u32()? as usize;
        self.take(n).map(drop)
    }

    pub(crate) fn done(&self) -> Result<(), CodecError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            err(format!("{} unexpected trailing bytes", self.b.len()))
        }
    }
}

/// Decodes a schema record payload.
pub(crate) fn decode_schema(payload: &[u8]) -> Result<Schema, CodecError> {
    let mut r = Reader { b: payload };
    let kind = r.str()?.to_string();
    let n = r.u16()? as usize;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str()?.to_string();
        let ty = field_type(r.u8()?)?;
        let nullable = r.u8()? != 0;
        fields.push(FieldDef {
            name: Cow::Owned(name),
            ty,
            nullable,
        });
    }
    r.done()?;
    Ok(Schema {
        kind: Cow::Owned(kind),
        fields: Cow::Owned(fields),
    })
}

/// Decodes a resource record payload.
pub(crate) fn decode_resource(payload: &[u8]) -> Result<Resource, CodecError> {
    let mut r = Reader { b: payload };
    let res = read_resource(&mut r)?;
    r.done()?;
    Ok(res)
}

fn read_resource(r: &mut Reader<'_>) -> Result<Resource, CodecError> {
    Ok(Resource {
        service_name: Text::new(r.str()?),
        service_instance_id: Text::new(r.str()?),
    })
}

/// How a segment's event records name their schema and resource.
#[derive(Clone, Copy)]
pub(crate) enum Refs<'a> {
    /// Format 1: schemas by index within the segment; events without their own
    /// resource take the segment's.
    Segment {
        schemas: &'a [Option<Arc<Schema>>],
        resource: Option<&'a Arc<Resource>>,
    },
    /// Format 2: by fingerprint, from any copy in the spool.
    Catalog(&'a Catalog),
}

/// Offset of the resource flag in an event payload.
const fn resource_flag_at(refs: &Refs<'_>) -> usize {
    match refs {
        Refs::Segment { .. } => 2 + 16 + 8,
        Refs::Catalog(_) => 8 + 16 + 8,
    }
}

impl<'a> Refs<'a> {
    /// The schema an event payload refers to, if it is held intact.
    pub(crate) fn schema_of(&self, payload: &[u8]) -> Option<&'a Arc<Schema>> {
        match *self {
            Refs::Segment { schemas, .. } => {
                let b = payload.get(..2)?;
                schemas.get(usize::from(u16::from_le_bytes([b[0], b[1]])))?.as_ref()
            }
            Refs::Catalog(c) => c.schema(le_u64(payload.get(..8)?)),
        }
    }

    /// The payload's schema when everything it refers to is held intact (its schema
    /// and, in format 2, a referenced resource). Events without were counted as
    /// unreadable when the spool was recovered.
    pub(crate) fn resolve(&self, payload: &[u8]) -> Option<&'a Arc<Schema>> {
        let schema = self.schema_of(payload)?;
        match self {
            Refs::Segment { .. } => Some(schema),
            Refs::Catalog(c) => match references(payload)? {
                (_, Some(r)) if c.resource(r).is_none() => None,
                _ => Some(schema),
            },
        }
    }
}

/// What a format-2 event payload refers to: its schema and, if it has one, its
/// resource. `None` when the payload is too short to say.
pub(crate) fn references(payload: &[u8]) -> Option<(u64, Option<u64>)> {
    let schema = le_u64(payload.get(..8)?);
    let at = 8 + 16 + 8;
    let resource = match payload.get(at)? {
        2 => Some(le_u64(payload.get(at + 1..at + 9)?)),
        _ => None,
    };
    Some((schema, resource))
}

fn utf8(b: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(b).map_err(|_| CodecError("string is not UTF-8".into()))
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes an event record payload (tests; the reader uses [`decode_event_in`]).
#[cfg(test)]
pub(crate) fn decode_event(payload: &[u8], refs: Refs<'_>) -> Result<Event, CodecError> {
    let Some(schema) = refs.schema_of(payload) else {
        return err("the event's schema record is not held intact anywhere in the spool");
    };
    let window = Arc::new(payload.to_vec());
    decode_event_in(&window, 0..payload.len(), schema, refs, &mut InlineResources::default())
}

/// The last resource an event carried inline, so that one sender's events share
/// one `Arc` instead of allocating one each.
#[derive(Default)]
pub(crate) struct InlineResources {
    bytes: Vec<u8>,
    resource: Option<Arc<Resource>>,
}

impl InlineResources {
    fn read(&mut self, r: &mut Reader<'_>) -> Result<Arc<Resource>, CodecError> {
        let mut probe = Reader { b: r.b };
        probe.skip_str()?;
        probe.skip_str()?;
        let raw = r.take(r.b.len() - probe.b.len())?;
        match &self.resource {
            Some(res) if self.bytes == raw => Ok(res.clone()),
            _ => {
                let res = Arc::new(read_resource(&mut Reader { b: raw })?);
                self.bytes.clear();
                self.bytes.extend_from_slice(raw);
                self.resource = Some(res.clone());
                Ok(res)
            }
        }
    }
}

/// Decodes the event record at `window[payload]`, whose schema the caller already
/// resolved. Fields of kinds without string maps stay in the window, checked
/// ([`SpooledFields`]); the rest are decoded into a [`Record`].
pub(crate) fn decode_event_in(
    window: &Arc<Vec<u8>>,
    payload: Range<usize>,
    schema: &Arc<Schema>,
    refs: Refs<'_>,
    inline: &mut InlineResources,
) -> Result<Event, CodecError> {
    let Some(bytes) = window.get(payload.clone()) else {
        return err("payload outside the bytes read");
    };
    let mut r = Reader { b: bytes };
    r.take(resource_flag_at(&refs) - 24)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(r.take(16)?);
    let id = EventId::from_uuid(uuid::Uuid::from_bytes(id));
    let ts = Timestamp::from_micros(r.u64()? as i64);
    let own_resource = match (r.u8()?, refs) {
        (0, Refs::Segment { resource, .. }) => resource.cloned(),
        (0, Refs::Catalog(_)) => None,
        (1, _) => Some(inline.read(&mut r)?),
        (2, Refs::Catalog(c)) => match c.resource(r.u64()?) {
            Some(res) => Some(res.clone()),
            None => return err("the event's resource record is not held intact anywhere in the spool"),
        },
        (other, _) => return err(format!("bad resource flag {other}")),
    };
    let fields = payload.end - r.b.len()..payload.end;
    let event = match SpooledFields::new(schema, window, fields)? {
        Some(fields) => return Ok(Event::from_spooled(id, ts, own_resource, fields)),
        None => Event::from_record_at(ts, read_record(&mut r, schema)?).with_id(id),
    };
    Ok(match own_resource {
        Some(res) => event.with_resource(res),
        None => event,
    })
}

/// Decodes the fields that follow an event's envelope into a [`Record`].
fn read_record(r: &mut Reader<'_>, schema: &Arc<Schema>) -> Result<Record, CodecError> {
    let mut values = Vec::with_capacity(schema.fields.len());
    for def in schema.fields.iter() {
        values.push(match (r.field(def.ty, def.nullable)?, def.ty) {
            (RawField::Null, _) => OwnedValue::Null,
            (RawField::Str(b), _) => OwnedValue::Str(Text::new(utf8(b)?)),
            (RawField::Word(w), FieldType::I64) => OwnedValue::I64(w as i64),
            (RawField::Word(w), FieldType::F64) => OwnedValue::F64(f64::from_bits(w)),
            (RawField::Word(w), _) => OwnedValue::U64(w),
            (RawField::Bool(b), _) => OwnedValue::Bool(b),
            (RawField::Map(n), _) => {
                let mut m = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    m.push((Text::new(r.str()?), Text::new(r.str()?)));
                }
                OwnedValue::StrMap(m)
            }
        });
    }
    r.done()?;
    Record::new(schema.clone(), values).map_err(|e| CodecError(e.to_string()))
}

/// Filling a catalog from records (their encoding is this module's).
impl Catalog {
    /// A catalog that already knows every kind linked into this binary.
    pub(crate) fn with_compiled_kinds() -> Catalog {
        let mut c = Catalog::default();
        let mut buf = Vec::new();
        for s in crate::event::kind::registered_kinds() {
            buf.clear();
            encode_schema(&mut buf, s);
            c.insert_schema(fingerprint(&buf), Arc::new(s.clone()));
        }
        c
    }

    /// Adds a schema record's payload. False when it does not decode or does not
    /// match its reference (damage the record checksum did not catch).
    pub(crate) fn add_schema_record(&mut self, reference: u64, payload: &[u8]) -> bool {
        if fingerprint(payload) != reference {
            return false;
        }
        if self.schema(reference).is_none() {
            let Ok(s) = decode_schema(payload) else {
                return false;
            };
            self.insert_schema(reference, Arc::new(s));
        }
        true
    }

    /// Adds a resource record's payload; false as for schemas.
    pub(crate) fn add_resource_record(&mut self, reference: u64, payload: &[u8]) -> bool {
        if fingerprint(payload) != reference {
            return false;
        }
        if self.resource(reference).is_none() {
            let Ok(r) = decode_resource(payload) else {
                return false;
            };
            self.insert_resource(reference, Arc::new(r));
        }
        true
    }
}

/// A format-1 payload from a format-2 one (tests of reading old spools): the schema
/// index in front, and an event without its own resource takes the segment's.
#[cfg(test)]
pub(crate) fn to_format_1(v2: &[u8], schema_index: u16) -> Vec<u8> {
    let mut out = schema_index.to_le_bytes().to_vec();
    let flag_at = 8 + 16 + 8;
    out.extend_from_slice(&v2[8..flag_at]);
    if v2[flag_at] == 2 {
        out.push(0);
        out.extend_from_slice(&v2[flag_at + 9..]);
    } else {
        out.extend_from_slice(&v2[flag_at..]);
    }
    out
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
