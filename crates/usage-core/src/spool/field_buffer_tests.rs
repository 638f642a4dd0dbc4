//! Events built from a field buffer: the same values, and the same spool bytes, as
//! the same events built from records.
use super::*;
use crate::event::value::OwnedValue;
use crate::spool::codec::encode_event;
use crate::spool::fields::tests::mixed_schema;
use crate::{kind_schema, Record};

fn values(i: u64) -> Vec<OwnedValue> {
    vec![
        OwnedValue::Str(format!("name-{i}-é").as_str().into()),
        if i.is_multiple_of(2) {
            OwnedValue::Null
        } else {
            OwnedValue::Str("n".into())
        },
        OwnedValue::I64(-(i as i64)),
        if i.is_multiple_of(3) {
            OwnedValue::Null
        } else {
            OwnedValue::U64(i)
        },
        OwnedValue::F64(i as f64 / 4.0),
        OwnedValue::Bool(i % 2 == 1),
    ]
}

fn ts() -> Timestamp {
    Timestamp::from_micros(1_764_000_000_000_000)
}

fn write(buf: &mut FieldBuffer, schema: &Arc<Schema>, i: u64) -> WrittenFields {
    buf.begin(schema);
    for v in values(i) {
        buf.push(v.as_value()).unwrap();
    }
    buf.finish().unwrap()
}

/// Three events written into one buffer (a refused one between them), and the
/// same three as records.
fn both() -> (Vec<Event>, Vec<Event>) {
    let schema = mixed_schema();
    let mut buf = FieldBuffer::with_capacity(64);
    let mut written = vec![write(&mut buf, &schema, 0)];
    buf.begin(&schema);
    buf.push(Value::Str("refused half-way")).unwrap();
    assert!(buf.push(Value::I64(1)).is_err(), "a non-nullable string is not null");
    buf.abandon();
    written.push(write(&mut buf, &schema, 1));
    written.push(write(&mut buf, &schema, 2));
    let shared = buf.share();
    let mut from_buffer = Vec::new();
    let mut from_records = Vec::new();
    for (i, w) in written.into_iter().enumerate() {
        let id = EventId::new_v7(ts());
        from_buffer.push(shared.event(w, id, ts()).unwrap());
        let record = Record::new(schema.clone(), values(i as u64)).unwrap();
        from_records.push(Event::from_record_at(ts(), record).with_id(id));
    }
    (from_buffer, from_records)
}

#[test]
fn events_share_one_buffer_and_read_as_their_records() {
    let (from_buffer, from_records) = both();
    assert_eq!(from_buffer, from_records);
    for (b, r) in from_buffer.iter().zip(&from_records) {
        assert_eq!(b.field("count"), r.field("count"));
        assert_eq!(b.field("name"), r.field("name"));
        assert_eq!(b.field("ok"), r.field("ok"));
    }
}

#[test]
fn the_spool_copies_the_fields_as_a_record_would_encode_them() {
    let (from_buffer, from_records) = both();
    for (b, r) in from_buffer.iter().zip(&from_records) {
        let (mut copied, mut encoded) = (Vec::new(), Vec::new());
        encode_event(&mut copied, 9, 7, b);
        encode_event(&mut encoded, 9, 7, r);
        assert_eq!(copied, encoded);
    }
}

#[test]
fn push_refuses_a_value_its_field_cannot_hold() {
    let schema = mixed_schema();
    let mut buf = FieldBuffer::default();
    assert!(buf
        .push(Value::Null)
        .unwrap_err()
        .to_string()
        .contains("no event begun"));
    // (fields pushed before, value refused)
    let cases: [(&[Value<'_>], Value<'_>); 6] = [
        (&[], Value::Null),
        (&[], Value::U64(1)),
        (&[Value::Str("a"), Value::Null], Value::U64(1)),
        (
            &[Value::Str("a"), Value::Null, Value::I64(1), Value::Null],
            Value::I64(1),
        ),
        (
            &[
                Value::Str("a"),
                Value::Null,
                Value::I64(1),
                Value::Null,
                Value::F64(1.0),
            ],
            Value::Str("true"),
        ),
        (&[Value::Str("a")], Value::StrMap(&[])),
    ];
    for (before, refused) in cases {
        buf.begin(&schema);
        for v in before {
            buf.push(*v).unwrap();
        }
        let len = buf.len();
        let err = buf.push(refused).unwrap_err().to_string();
        let name = &schema.fields[before.len()].name;
        assert!(err.contains(&format!("`{name}`")), "{err}");
        assert_eq!(buf.len(), len, "a refused value writes nothing");
        buf.abandon();
        assert!(buf.is_empty(), "abandoning forgets the event's fields");
    }
}

#[test]
fn finish_refuses_an_event_missing_fields_or_with_one_too_many() {
    let schema = mixed_schema();
    let mut buf = FieldBuffer::default();
    assert!(buf.finish().is_err(), "nothing begun");
    buf.begin(&schema);
    buf.push(Value::Str("a")).unwrap();
    let err = buf.finish().unwrap_err().to_string();
    assert!(err.contains("6 fields, 1 pushed"), "{err}");
    assert!(buf.is_empty(), "a refused event is forgotten");
    let w = write(&mut buf, &schema, 1);
    assert!(buf.push(Value::Null).is_err(), "finished: nothing begun");
    buf.begin(&schema);
    for v in values(2) {
        buf.push(v.as_value()).unwrap();
    }
    assert!(buf.push(Value::Null).unwrap_err().to_string().contains("one more"));
    let shared = buf.share();
    let id = EventId::new_v7(ts());
    assert!(shared.event(w, id, ts()).is_some());
    assert!(
        shared.event(WrittenFields(1), id, ts()).is_none(),
        "the unfinished event is not kept"
    );
    // Appended in place, with its resource; nothing for the unfinished one.
    let mut out = Vec::new();
    let resource = Arc::new(crate::Resource::new("svc"));
    assert!(shared.push_event(w, (id, ts()), Some(resource), &mut out));
    assert!(!shared.push_event(WrittenFields(1), (id, ts()), None, &mut out));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].resource().map(|r| r.service_name.as_str()), Some("svc"));
    assert_eq!(out[0].values(), shared.event(w, id, ts()).unwrap().values());
}

#[test]
fn a_kind_with_a_string_map_cannot_be_written() {
    let schema = Arc::new(kind_schema("network_event").unwrap().clone());
    let mut buf = FieldBuffer::default();
    buf.begin(&schema);
    let mut refused = None;
    for def in schema.fields.iter() {
        let v = match (def.ty, def.nullable) {
            (FieldType::StrMap, _) => Value::StrMap(&[]),
            (_, true) => Value::Null,
            _ => Value::Str("x"),
        };
        if let Err(e) = buf.push(v) {
            refused = Some(e.to_string());
            break;
        }
    }
    let err = refused.expect("the map is refused");
    assert!(err.contains("`attributes`"), "{err}");
}
