//! Fields read in place: the same values as the event written, checked once.
use super::*;
use crate::event::schema::FieldDef;
use crate::event::value::OwnedValue;
use crate::spool::codec::{decode_event, encode_event, InlineResources, Refs};
use crate::{Event, Record, RelayUsage, Resource};
use std::borrow::Cow;

/// One field of every type, nullable and not (also used by the field buffer tests).
pub(crate) fn mixed_schema() -> Arc<Schema> {
    let fields = vec![
        FieldDef::new("name", FieldType::Str, false),
        FieldDef::new("note", FieldType::Str, true),
        FieldDef::new("delta", FieldType::I64, false),
        FieldDef::new("count", FieldType::U64, true),
        FieldDef::new("ratio", FieldType::F64, false),
        FieldDef::new("ok", FieldType::Bool, true),
    ];
    Arc::new(Schema {
        kind: Cow::Borrowed("mixed"),
        fields: Cow::Owned(fields),
    })
}

fn mixed(note: Option<&str>, count: Option<u64>) -> Event {
    let values = vec![
        OwnedValue::Str("héllo".into()),
        note.map_or(OwnedValue::Null, |n| OwnedValue::Str(n.into())),
        OwnedValue::I64(-7),
        count.map_or(OwnedValue::Null, OwnedValue::U64),
        OwnedValue::F64(0.5),
        OwnedValue::Bool(true),
    ];
    Event::from_record(Record::new(mixed_schema(), values).unwrap())
}

/// The encoded fields of `e` (the payload after its envelope and resource flag 0).
fn field_bytes(e: &Event) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_event(&mut buf, 0, 0, e);
    buf.split_off(8 + 16 + 8 + 9)
}

fn read(schema: Arc<Schema>, bytes: Vec<u8>) -> Result<SpooledFields, CodecError> {
    let n = bytes.len();
    SpooledFields::new(&schema, &Arc::new(bytes), 0..n).map(|f| f.expect("read in place"))
}

#[test]
fn every_type_reads_back_as_written_and_each_field_alone() {
    for e in [
        mixed(Some("n"), Some(3)),
        mixed(None, None),
        mixed(Some(""), Some(u64::MAX)),
    ] {
        let fields = read(mixed_schema(), field_bytes(&e)).unwrap();
        let mut values = Vec::new();
        fields.visit(&mut |v| values.push(v));
        assert_eq!(values, e.values());
        for (i, v) in values.iter().enumerate() {
            assert_eq!(fields.field_at(i).as_ref(), Some(v), "field {i}");
        }
        assert_eq!(fields.field_at(values.len()), None);
    }
}

#[test]
fn a_record_that_does_not_match_its_schema_is_refused_naming_the_field() {
    let good = field_bytes(&mixed(Some("n"), Some(3)));
    let mut bad = good.clone();
    bad[4] = 0xff; // the first byte of `name`
    let e = read(mixed_schema(), bad).unwrap_err().to_string();
    assert!(e.contains("`name` is not UTF-8"), "{e}");
    let mut long = good.clone();
    long.push(0);
    assert!(read(mixed_schema(), long).unwrap_err().to_string().contains("trailing"));
    for cut in 0..good.len() {
        assert!(read(mixed_schema(), good[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    assert!(SpooledFields::new(&mixed_schema(), &Arc::new(good.clone()), 0..good.len() + 1).is_err());
}

#[test]
fn floats_that_are_not_finite_read_as_zero() {
    let mut bytes = field_bytes(&mixed(None, None));
    let at = 4 + "héllo".len() + 1 + 8 + 1;
    bytes[at..at + 8].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
    let fields = read(mixed_schema(), bytes).unwrap();
    assert_eq!(fields.field_at(4), Some(Value::F64(0.0)));
}

#[test]
fn string_maps_are_not_read_in_place() {
    let e = Event::new(crate::NetworkEvent {
        attributes: vec![("a".into(), "b".into())],
        ..Default::default()
    });
    let bytes = field_bytes(&e);
    let schema = Arc::new(e.schema().clone());
    let n = bytes.len();
    assert!(SpooledFields::new(&schema, &Arc::new(bytes), 0..n).unwrap().is_none());
}

#[test]
fn one_senders_events_share_its_resource_and_another_sender_gets_its_own() {
    let a = Arc::new(Resource::new("relay").with_instance_id("h-1"));
    let b = Arc::new(Resource::new("relay").with_instance_id("h-2"));
    let schema = Arc::new(<RelayUsage as crate::EventKind>::schema().clone());
    let mut s = Vec::new();
    crate::spool::codec::encode_schema(&mut s, &schema);
    let mut catalog = crate::spool::catalog::Catalog::default();
    catalog.insert_schema(crate::spool::catalog::fingerprint(&s), schema.clone());
    let mut inline = InlineResources::default();
    let mut decoded = Vec::new();
    for r in [&a, &a, &b, &a] {
        let e = Event::new(RelayUsage::default()).with_resource(r.clone());
        let mut buf = Vec::new();
        encode_event(&mut buf, crate::spool::catalog::fingerprint(&s), 0, &e);
        let n = buf.len();
        let back =
            crate::spool::codec::decode_event_in(&Arc::new(buf), 0..n, &schema, Refs::Catalog(&catalog), &mut inline);
        decoded.push(back.unwrap().resource().unwrap().clone());
    }
    assert!(Arc::ptr_eq(&decoded[0], &decoded[1]));
    assert_eq!(decoded[2].as_ref(), b.as_ref());
    assert_eq!(decoded[3].as_ref(), a.as_ref());
    assert!(!Arc::ptr_eq(&decoded[1], &decoded[3]));
    // the test-only path (a fresh cache per event) agrees
    let e = Event::new(RelayUsage::default()).with_resource(b.clone());
    let mut buf = Vec::new();
    encode_event(&mut buf, crate::spool::catalog::fingerprint(&s), 0, &e);
    assert_eq!(
        decode_event(&buf, Refs::Catalog(&catalog))
            .unwrap()
            .resource()
            .unwrap()
            .as_ref(),
        b.as_ref()
    );
}
