//! Binary encoding of events inside spool records.
//!
//! A segment is self-describing: a schema record (kind, field names, types) is
//! written before the first event of that kind in the segment, and a resource
//! record before the first event, so any binary can replay any segment, including
//! kinds it was not compiled with.
//!
//! Event payload: `schema index u16 | id [16] | ts i64 | resource flag u8 [| name | instance]`
//! then each field in schema order: nullable fields start with a presence byte;
//! strings are `u32 length | bytes`, integers and floats 8 bytes little-endian,
//! bools 1 byte, string maps `u32 count | (key, value)*`.

use crate::event::id::EventId;
use crate::event::record::Record;
use crate::event::schema::{FieldDef, FieldType, Schema};
use crate::event::time::Timestamp;
use crate::event::value::{OwnedValue, Text, Value};
use crate::event::Event;
use crate::resource::Resource;
use std::borrow::Cow;
use std::sync::Arc;

/// Why a payload could not be decoded.
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

/// Encodes an event record payload; `schema_index` refers to a schema record
/// already written in the same segment.
pub(crate) fn encode_event(out: &mut Vec<u8>, schema_index: u16, e: &Event) {
    out.extend_from_slice(&schema_index.to_le_bytes());
    out.extend_from_slice(e.id().as_bytes());
    out.extend_from_slice(&e.ts().as_micros().to_le_bytes());
    match e.resource() {
        Some(r) => {
            out.push(1);
            encode_resource(out, r);
        }
        None => out.push(0),
    }
    let schema = e.schema();
    let mut defs = schema.fields.iter();
    e.visit(|v| {
        let nullable = defs.next().is_some_and(|d| d.nullable);
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
    });
}

/// A cursor over a payload.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
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
        std::str::from_utf8(self.take(n)?).map_err(|_| CodecError("string is not UTF-8".into()))
    }

    fn done(&self) -> Result<(), CodecError> {
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

/// Decodes an event record payload given the segment's schemas and resource.
pub(crate) fn decode_event(
    payload: &[u8],
    schemas: &[Option<Arc<Schema>>],
    resource: Option<&Arc<Resource>>,
) -> Result<Event, CodecError> {
    let mut r = Reader { b: payload };
    let idx = r.u16()? as usize;
    let Some(schema) = schemas.get(idx).and_then(Option::as_ref) else {
        return err(format!(
            "event refers to schema {idx}, which this segment does not hold intact"
        ));
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(r.take(16)?);
    let ts = Timestamp::from_micros(r.u64()? as i64);
    let own_resource = match r.u8()? {
        0 => None,
        1 => Some(Arc::new(read_resource(&mut r)?)),
        other => return err(format!("bad resource flag {other}")),
    };
    let mut values = Vec::with_capacity(schema.fields.len());
    for def in schema.fields.iter() {
        if def.nullable && r.u8()? == 0 {
            values.push(OwnedValue::Null);
            continue;
        }
        values.push(match def.ty {
            FieldType::Str => OwnedValue::Str(Text::new(r.str()?)),
            FieldType::I64 => OwnedValue::I64(r.u64()? as i64),
            FieldType::U64 => OwnedValue::U64(r.u64()?),
            FieldType::F64 => OwnedValue::F64(f64::from_bits(r.u64()?)),
            FieldType::Bool => OwnedValue::Bool(r.u8()? != 0),
            FieldType::StrMap => {
                let n = r.u32()? as usize;
                let mut m = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    m.push((Text::new(r.str()?), Text::new(r.str()?)));
                }
                OwnedValue::StrMap(m)
            }
        });
    }
    r.done()?;
    let record = Record::new(schema.clone(), values).map_err(|e| CodecError(e.to_string()))?;
    let mut event = Event::from_record(record)
        .with_id(EventId::from_uuid(uuid::Uuid::from_bytes(id)))
        .with_ts(ts);
    if let Some(res) = own_resource.or_else(|| resource.cloned()) {
        event = event.with_resource(res);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, NetworkEvent, OptimizerQos, RelayUsage};

    #[test]
    fn events_round_trip_with_ids_times_values_and_resources() {
        let schemas: Vec<Option<Arc<Schema>>> = [RelayUsage::schema(), OptimizerQos::schema(), NetworkEvent::schema()]
            .iter()
            .map(|s| Some(Arc::new((*s).clone())))
            .collect();
        let res = Arc::new(Resource::new("svc").with_instance_id("h-1"));
        let events = [
            Event::new(RelayUsage {
                project: "p".into(),
                cu: u64::MAX,
                success: true,
                ..Default::default()
            }),
            Event::new(OptimizerQos {
                selection_latency: -0.25,
                epoch: 9,
                ..Default::default()
            }),
            Event::new(NetworkEvent {
                attributes: vec![("a".into(), "b".into())],
                ..Default::default()
            })
            .with_resource(Arc::new(Resource::new("other"))),
        ];
        for (i, e) in events.iter().enumerate() {
            let mut buf = Vec::new();
            encode_event(&mut buf, i as u16, e);
            let back = decode_event(&buf, &schemas, Some(&res)).unwrap();
            assert_eq!((back.id(), back.ts(), back.kind()), (e.id(), e.ts(), e.kind()));
            assert_eq!(back.values(), e.values());
            let want = e.resource().cloned().unwrap_or_else(|| res.clone());
            assert_eq!(back.resource().unwrap().as_ref(), want.as_ref());
            // every strict prefix is rejected, never misread
            for cut in 0..buf.len() {
                assert!(decode_event(&buf[..cut], &schemas, Some(&res)).is_err());
            }
        }
        let mut s = Vec::new();
        encode_schema(&mut s, NetworkEvent::schema());
        assert_eq!(&decode_schema(&s).unwrap(), NetworkEvent::schema());
    }
}
