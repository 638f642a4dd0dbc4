//! Rows in ClickHouse's RowBinary format, driven by the table's columns.

use crate::ddl::{Column, Flavor, Source};
use usage_core::{json, Event, Resource, Value};

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends one row per event.
pub fn encode<'a>(
    out: &mut Vec<u8>,
    events: impl IntoIterator<Item = &'a Event>,
    columns: &[Column],
    flavor: Flavor,
    resource: &Resource,
) {
    // Read off each column's type once per call, not once per row and column.
    let nullable: Vec<bool> = columns.iter().map(|c| c.ty.contains("Nullable(")).collect();
    let mut values = Vec::new();
    let mut scratch = Vec::new();
    for e in events {
        let res = e.resource().map_or(resource, |r| r.as_ref());
        values.clear();
        e.visit(|v| values.push(v));
        for (c, &nullable) in columns.iter().zip(&nullable) {
            match c.source {
                Source::Id => {
                    // UUID: the two 64-bit halves, each little-endian.
                    let id = e.id();
                    let b = id.as_bytes();
                    let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
                    out.extend_from_slice(&hi.to_le_bytes());
                    out.extend_from_slice(&lo.to_le_bytes());
                }
                Source::Ts => match flavor {
                    Flavor::Modern => out.extend_from_slice(&e.ts().as_micros().to_le_bytes()),
                    Flavor::Legacy => {
                        let secs = e.ts().as_micros().div_euclid(1_000_000).clamp(0, i64::from(u32::MAX)) as u32;
                        out.extend_from_slice(&secs.to_le_bytes());
                    }
                },
                Source::TsMicros => out.extend_from_slice(&(e.ts().as_micros().max(0) as u64).to_le_bytes()),
                Source::ServiceName => string(out, res.service_name.as_bytes()),
                Source::ServiceInstanceId => string(out, res.service_instance_id.as_bytes()),
                Source::Field(i) => {
                    let v = values.get(i).copied().unwrap_or(Value::Null);
                    if nullable {
                        out.push(u8::from(v == Value::Null));
                    }
                    match v {
                        Value::Null if nullable => {}
                        // A null in a non-nullable column: the type's default.
                        Value::Null => default_for(out, &c.ty),
                        Value::Str(s) => string(out, s.as_bytes()),
                        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
                        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
                        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
                        Value::Bool(x) => out.push(u8::from(x)),
                        Value::StrMap(m) => match flavor {
                            Flavor::Modern => {
                                varint(out, m.len() as u64);
                                for (k, v) in m {
                                    string(out, k.as_bytes());
                                    string(out, v.as_bytes());
                                }
                            }
                            Flavor::Legacy => {
                                scratch.clear();
                                json::write_value(&mut scratch, v);
                                string(out, &scratch);
                            }
                        },
                    }
                }
            }
        }
    }
}

fn default_for(out: &mut Vec<u8>, ty: &str) {
    match ty.trim_start_matches("LowCardinality(") {
        t if t.starts_with("String") || t.starts_with("Map(") => out.push(0),
        t if t.starts_with("UInt8") || t.starts_with("Bool") => out.push(0),
        _ => out.extend_from_slice(&[0u8; 8]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_leb128() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        v.clear();
        varint(&mut v, 5);
        assert_eq!(v, [5]);
    }

    #[test]
    fn nullable_columns_carry_a_null_flag_and_others_a_default() {
        let e = |data: Option<&str>| {
            Event::new(usage_core::NetworkEvent {
                data: data.map(usage_core::Text::new),
                ..Default::default()
            })
        };
        let schema = e(None).schema().clone();
        let field = schema
            .fields
            .iter()
            .position(|f| f.name == "data")
            .expect("NetworkEvent has `data`");
        let data = crate::ddl::columns(&schema, Flavor::Modern)
            .into_iter()
            .find(|c| c.source == Source::Field(field))
            .expect("a column for `data`");
        assert!(data.ty.contains("Nullable("), "{}", data.ty);
        let plain = Column {
            ty: "String".into(),
            ..data.clone()
        };
        let rows = |cols: &[Column]| {
            let mut out = Vec::new();
            encode(
                &mut out,
                &[e(None), e(Some("ab"))],
                cols,
                Flavor::Modern,
                &Resource::default(),
            );
            out
        };
        assert_eq!(
            rows(std::slice::from_ref(&data)),
            [1, 0, 2, b'a', b'b'],
            "null, then not null"
        );
        assert_eq!(rows(&[plain]), [0, 2, b'a', b'b'], "a null in a String column is ''");
    }

    #[test]
    fn uuid_halves_are_little_endian() {
        let id: usage_core::EventId = "61f0c404-5cb3-11e7-907b-a6006ad3dba0".parse().unwrap();
        let e = Event::new(usage_core::NetworkEvent::default()).with_id(id);
        let cols = [Column {
            name: "id".into(),
            ty: "UUID".into(),
            source: Source::Id,
        }];
        let mut out = Vec::new();
        encode(&mut out, &[e], &cols, Flavor::Modern, &Resource::default());
        assert_eq!(
            out,
            [0xe7, 0x11, 0xb3, 0x5c, 0x04, 0xc4, 0xf0, 0x61, 0xa0, 0xdb, 0xd3, 0x6a, 0x00, 0xa6, 0x7b, 0x90]
        );
    }
}
